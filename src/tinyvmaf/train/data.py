"""Rows in memory as tensors, batched by slicing: the data side of training.

What the student learns from:

* ``train``: the real frames of the ``train`` contents (``labels.parquet``)
  plus the teacher-labelled vectors of ``samples.parquet`` (``split ==
  train``), each weighted ``train.sample_weight`` relative to a frame;
* ``val``: the real frames of the ``val`` contents plus the dense
  validation vectors (``split == val``): the set that picks the epoch.

Even 1.5 M rows of six floats are 36 MB, so a split lives in one tensor and
a batch is one fancy-index: no ``Dataset.__getitem__`` per sample, no
worker processes, nothing that makes a 2-core box slower than the model
(Lightning over per-sample collate runs at a third of a bare loop's speed).

Normalisation statistics come from the training rows only (val and test
must not leak into the model, not even through a mean) and are handed to
the student, which stores them as buffers.  Augmentations apply to train
batches only; val and test batches are the raw rows, always in the same
order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch

from ..config.schema import AugmentConfig
from ..contract import FEATURES

VIF_COLUMNS = [FEATURES.index(f"vif_scale{s}") for s in range(4)]


@dataclass
class SplitTensors:
    """One split: features ``x [N, 6]``, labels ``y [N]``, loss weights ``w [N]``, pair index ``group [N]``
    (``-1`` for a sampled vector, which belongs to no pair), per-pair ``mos100 [G]``, and ``n_frames``:
    the first ``n_frames`` rows are real frames, the rest sampled vectors."""

    x: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor
    group: torch.Tensor
    mos100: torch.Tensor
    n_frames: int

    def __len__(self) -> int:
        return int(self.x.shape[0])


def split_tensors(
    labels: pd.DataFrame,
    split: str,
    samples: pd.DataFrame | None = None,
    weight: float = 1.0,
    order: tuple[str, ...] = FEATURES,
    targets: tuple[str, ...] = ("label",),
):
    """The rows of ``split`` (columns ``order``): real frames first, then its sampled vectors (weight ``weight``).

    ``y`` is ``[N]`` for one target column (``label``), ``[N, H]`` for several (a bootstrap's heads).
    """
    part = labels[labels["split"] == split]
    extra = samples[samples["split"] == split] if samples is not None else None
    if part.empty and (extra is None or extra.empty):
        raise ValueError(f"no {split!r} rows in the labels (or samples)")
    codes, uniques = pd.factorize(part["key"], sort=False)
    mos = part.groupby("key", sort=False)["mos100"].first().reindex(uniques).to_numpy(np.float64)
    x = [part[list(order)].to_numpy(np.float32)]
    y = [_targets(part, targets)]
    w = [np.ones(len(part), np.float32)]
    g = [codes.astype(np.int64)]
    if extra is not None and not extra.empty:
        x.append(extra[list(order)].to_numpy(np.float32))
        y.append(_targets(extra, targets))
        w.append(np.full(len(extra), weight, np.float32))
        g.append(np.full(len(extra), -1, np.int64))
    return SplitTensors(
        x=torch.from_numpy(np.concatenate(x)),
        y=torch.from_numpy(np.concatenate(y)),
        w=torch.from_numpy(np.concatenate(w)),
        group=torch.from_numpy(np.concatenate(g)),
        mos100=torch.tensor(mos.astype(np.float32)),
        n_frames=len(part),
    )


def _targets(df: pd.DataFrame, targets: tuple[str, ...]) -> np.ndarray:
    y = df[list(targets)].to_numpy(np.float32)
    return y[:, 0].copy() if len(targets) == 1 else y


class TrainBatches:
    """A re-iterable of augmented train batches; each ``iter`` is one epoch with a fresh, seeded draw.

    The draw for epoch ``e`` uses a generator seeded with ``(seed, e)``, so it
    does not depend on the global RNG (which model init uses): two runs with
    one seed see identical batches.
    """

    def __init__(self, data: SplitTensors, std: torch.Tensor, batch_size: int, aug: AugmentConfig, seed: int) -> None:
        self.data, self.std, self.batch_size, self.aug, self.seed = data, std, batch_size, aug, seed
        self.epoch = 0

    def n_rows(self) -> int:
        return max(1, round(self.aug.subsample * len(self.data)))

    def __len__(self) -> int:
        return -(-self.n_rows() // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.data), generator=gen)[: self.n_rows()]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield augment_batch(self.data, idx, self.std, self.aug, gen)


def augment_batch(
    data: SplitTensors, idx: torch.Tensor, std: torch.Tensor, aug: AugmentConfig, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """One train batch with the configured augmentations.

    Noise is σ on the *normalised* features, i.e. ``σ · std`` in raw units
    (the student normalises inside, so adding it here is the same thing).
    The VIF flip reverses the four VIF scales of a random half of the rows;
    the teacher would not score a flipped vector the same (the label is
    kept, so it teaches the student a wrong answer), hence off by default;
    it exists to measure exactly that.
    """
    x = data.x[idx]
    if aug.vif_flip:
        rows = (torch.rand(x.shape[0], generator=gen) < 0.5).nonzero(as_tuple=True)[0][:, None]
        cols = torch.tensor(VIF_COLUMNS)
        x = x.clone()
        x[rows, cols] = x[rows, cols.flip(0)]
    if aug.noise_sigma > 0:
        x = x + aug.noise_sigma * std * torch.randn(x.shape, generator=gen)
    return {"x": x, "y": data.y[idx], "w": data.w[idx], "group": data.group[idx]}


class EvalBatches:
    """Val/test batches: raw rows in order, never augmented.

    A class rather than a list: Lightning reads a list of batches as a list of dataloaders.
    """

    def __init__(self, data: SplitTensors, batch_size: int) -> None:
        self.data, self.batch_size = data, batch_size

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        d, b = self.data, self.batch_size
        for s in range(0, len(d), b):
            yield {"x": d.x[s : s + b], "y": d.y[s : s + b], "w": d.w[s : s + b], "group": d.group[s : s + b]}


def read_table(src: str | Path | pd.DataFrame | None) -> pd.DataFrame | None:
    if src is None or isinstance(src, pd.DataFrame):
        return src
    return pd.read_parquet(src)


class FrameDataModule(pl.LightningDataModule):
    """Labels (+ samples) → train/val(/test) tensors, train-only statistics and augmentations."""

    #: Val/test rows per batch: inference only, as large as memory allows without mattering.
    EVAL_BATCH = 65536

    def __init__(
        self,
        labels: str | Path | pd.DataFrame,
        *,
        samples: str | Path | pd.DataFrame | None,
        order: tuple[str, ...] = FEATURES,
        targets: tuple[str, ...] = ("label",),
        batch_size: int,
        augment: AugmentConfig,
        sample_weight: float,
        seed: int,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {batch_size}")
        self.labels_source, self.samples_source = labels, samples
        self.order = tuple(order)
        self.targets = tuple(targets)
        self.batch_size = int(batch_size)
        self.augment, self.sample_weight, self.seed = augment, float(sample_weight), int(seed)
        self.splits: dict[str, SplitTensors] = {}
        self.mean = torch.zeros(len(self.order))
        self.std = torch.ones(len(self.order))
        self._train_batches: TrainBatches | None = None

    def setup(self, stage: str | None = None) -> None:
        """Load once (idempotent: Lightning calls this per stage)."""
        if self.splits:
            return
        labels = read_table(self.labels_source)
        samples = read_table(self.samples_source)
        assert labels is not None
        missing = [c for c in (*self.order, *self.targets, "key", "split", "mos100") if c not in labels.columns]
        if missing:
            raise ValueError(f"labels lack column(s) {missing} (run the label stage)")
        if samples is not None:
            missing = [c for c in (*self.order, *self.targets, "split") if c not in samples.columns]
            if missing:
                raise ValueError(f"samples lack column(s) {missing} (run the sample stage)")
        for split in ("train", "val"):
            self.splits[split] = split_tensors(labels, split, samples, self.sample_weight, self.order, self.targets)
        if (labels["split"] == "test").any():
            self.splits["test"] = split_tensors(labels, "test", order=self.order, targets=self.targets)
        x = self.splits["train"].x.double()
        self.mean = x.mean(0).float()
        self.std = x.std(0, unbiased=False).float()
        self._train_batches = TrainBatches(self.splits["train"], self.std, self.batch_size, self.augment, self.seed)

    def train_dataloader(self) -> TrainBatches:
        assert self._train_batches is not None, "setup() first"
        return self._train_batches

    def val_dataloader(self) -> EvalBatches:
        return EvalBatches(self.splits["val"], self.EVAL_BATCH)

    def test_dataloader(self) -> EvalBatches:
        return EvalBatches(self.splits["test"], self.EVAL_BATCH)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Batches are slices of tensors already on the CPU: nothing to move (Lightning would walk the dict)."""
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def has_mos(self, split: str = "train") -> bool:
        return bool(torch.isfinite(self.splits[split].mos100).any())
