"""Frames in memory as tensors, batched by slicing: the data side of training.

A corpus is a few thousand to a few hundred thousand 6-float rows, so the
whole split lives in one tensor and a batch is one fancy-index — no
``Dataset.__getitem__`` per sample, no worker processes, nothing that
makes a 2-core CI box slower than the model itself.

Normalisation statistics come from ``train`` only (val/test must not leak
into the model, not even through a mean) and are handed to the student,
which stores them as buffers.  Augmentations apply to ``train`` batches
only; val and test batches are the raw rows, always in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch

from .libvmaf import FEATURES

NOISE_SIGMA_MAX = 0.01  # the design calls Gaussian noise on normalised features safe up to here
VIF_COLUMNS = [FEATURES.index(f"vif_scale{s}") for s in range(4)]


@dataclass(frozen=True)
class AugmentConfig:
    """Train-only, feature-space augmentations (``train.augment`` in the config)."""

    noise_sigma: float = 0.0
    subsample: float = 1.0
    vif_flip: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise_sigma <= NOISE_SIGMA_MAX:
            raise ValueError(
                f"train.augment.noise_sigma must be in [0, {NOISE_SIGMA_MAX}] "
                f"(larger noise changes what the teacher would say), got {self.noise_sigma}"
            )
        if not 0.0 < self.subsample <= 1.0:
            raise ValueError(f"train.augment.subsample must be in (0, 1], got {self.subsample}")

    @classmethod
    def from_mapping(cls, cfg) -> AugmentConfig:
        cfg = cfg or {}
        return cls(
            noise_sigma=float(cfg.get("noise_sigma", 0.0)),
            subsample=float(cfg.get("subsample", 1.0)),
            vif_flip=bool(cfg.get("vif_flip", False)),
        )


@dataclass
class SplitTensors:
    """One split: features ``x [N, 6]``, labels ``y [N]``, pair index ``group [N]``, per-pair ``mos100 [G]``."""

    x: torch.Tensor
    y: torch.Tensor
    group: torch.Tensor
    mos100: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


def split_tensors(labels: pd.DataFrame, split: str) -> SplitTensors:
    part = labels[labels["split"] == split]
    if part.empty:
        raise ValueError(f"labels have no {split!r} rows")
    codes, uniques = pd.factorize(part["key"], sort=False)
    mos = part.groupby("key", sort=False)["mos100"].first().reindex(uniques).to_numpy(np.float64)
    return SplitTensors(
        x=torch.tensor(part[list(FEATURES)].to_numpy(np.float32)),
        y=torch.tensor(part["label"].to_numpy(np.float32)),
        group=torch.tensor(codes.astype(np.int64)),
        mos100=torch.tensor(mos.astype(np.float32)),
    )


class TrainBatches:
    """A re-iterable of augmented train batches; each ``iter`` is one epoch with a fresh, seeded draw.

    The draw for epoch ``e`` uses a generator seeded with ``(seed, e)``, so it
    does not depend on the global RNG (which model init and dropout use):
    two runs with one seed see identical batches.
    """

    def __init__(self, data: SplitTensors, std: torch.Tensor, batch_size: int, aug: AugmentConfig, seed: int) -> None:
        self.data, self.std, self.batch_size, self.aug, self.seed = data, std, batch_size, aug, seed
        self.epoch = 0

    def n_frames(self) -> int:
        return max(1, round(self.aug.subsample * len(self.data)))

    def __len__(self) -> int:
        return -(-self.n_frames() // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.data), generator=gen)[: self.n_frames()]
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
    return {"x": x, "y": data.y[idx], "group": data.group[idx]}


class EvalBatches:
    """Val/test batches: raw rows in file order, never augmented.

    A class rather than a list: Lightning reads a list of batches as a list of dataloaders.
    """

    def __init__(self, data: SplitTensors, batch_size: int) -> None:
        self.data, self.batch_size = data, batch_size

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        d, b = self.data, self.batch_size
        for s in range(0, len(d), b):
            yield {"x": d.x[s : s + b], "y": d.y[s : s + b], "group": d.group[s : s + b]}


class FrameDataModule(pl.LightningDataModule):
    """``labels.parquet`` → train/val(/test) tensors, train-only statistics and augmentations."""

    def __init__(
        self,
        labels: str | Path | pd.DataFrame,
        *,
        batch_size: int = 256,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        eval_batch_size: int = 8192,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {batch_size}")
        self.labels_source = labels
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.augment = augment or AugmentConfig()
        self.seed = int(seed)
        self.splits: dict[str, SplitTensors] = {}
        self.mean = torch.zeros(len(FEATURES))
        self.std = torch.ones(len(FEATURES))
        self._train_batches: TrainBatches | None = None

    def setup(self, stage: str | None = None) -> None:
        """Load once (idempotent: Lightning calls this per stage)."""
        if self.splits:
            return
        src = self.labels_source
        labels = src if isinstance(src, pd.DataFrame) else pd.read_parquet(src)
        missing = [c for c in (*FEATURES, "label", "key", "split", "mos100") if c not in labels.columns]
        if missing:
            raise ValueError(f"labels lack column(s) {missing} (run the label stage)")
        self.splits = {"train": split_tensors(labels, "train"), "val": split_tensors(labels, "val")}
        if (labels["split"] == "test").any():
            self.splits["test"] = split_tensors(labels, "test")
        x = self.splits["train"].x.double()
        self.mean = x.mean(0).float()
        self.std = x.std(0, unbiased=False).float()
        self._train_batches = TrainBatches(self.splits["train"], self.std, self.batch_size, self.augment, self.seed)

    def train_dataloader(self) -> TrainBatches:
        assert self._train_batches is not None, "setup() first"
        return self._train_batches

    def val_dataloader(self) -> EvalBatches:
        return EvalBatches(self.splits["val"], self.eval_batch_size)

    def test_dataloader(self) -> EvalBatches:
        return EvalBatches(self.splits["test"], self.eval_batch_size)

    def has_mos(self, split: str = "train") -> bool:
        return bool(torch.isfinite(self.splits[split].mos100).any())
