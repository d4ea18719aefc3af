"""The rows a student is measured on, beyond the corpus it was fitted to.

dense    ``evaluate.dense.count`` feature vectors from a Gaussian copula
         (its own correlation, bounds and seed): *not* one of the training
         generators, so the figures are generalisation, not recall.  Labels
         from the callable teacher (clipped, as libvmaf reports).
test     the frames of the ``test`` contents (``labels.parquet``): content
         no training row came from; labels are libvmaf's logged scores.
golden   Netflix's golden pairs (``golden.parquet``, the golden stage's
         frames): real 10-bit content outside any corpus; figures per frame
         and pooled per pair (a clip's score is the mean of its frames).

Every set is canonical-6 float32 rows ``x`` and float64 teacher scores
``y``; ``groups`` names the pair of each row where pooling means something.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config.schema import DenseEvalConfig
from ..contract import FEATURES

SETS = ("dense", "test", "golden")
_N_QUALITY = len(FEATURES) - 1


@dataclass(frozen=True)
class EvalSet:
    name: str
    x: np.ndarray  # [N, 6] float32, canonical-6
    y: np.ndarray  # [N] float64, the teacher
    groups: np.ndarray | None = None  # [N] pair names, for pooled figures

    def __len__(self) -> int:
        return int(len(self.x))


def dense_rows(cfg: DenseEvalConfig) -> np.ndarray:
    """The held-out dense vectors: a Gaussian copula over the quality features, log-uniform motion2."""
    from scipy.special import ndtr

    rng = np.random.default_rng(cfg.seed)
    corr = np.full((_N_QUALITY, _N_QUALITY), cfg.correlation)
    np.fill_diagonal(corr, 1.0)
    z = rng.standard_normal((cfg.count, _N_QUALITY)) @ np.linalg.cholesky(corr).T
    u = ndtr(z) ** cfg.skew
    lo, hi = np.asarray(cfg.lo), np.asarray(cfg.hi)
    motion = np.exp(rng.uniform(np.log(cfg.motion2[0]), np.log(cfg.motion2[1]), cfg.count))
    motion[rng.random(cfg.count) < cfg.motion2_zero] = 0.0
    return np.column_stack([lo + (hi - lo) * u, motion])


def dense_set(cfg: DenseEvalConfig, teacher: str) -> EvalSet:
    from ..teacher import load_teacher

    x = dense_rows(cfg).astype(np.float32)
    return EvalSet("dense", x, load_teacher(teacher).predict(x.astype(np.float64)))


def teacher_column(df: pd.DataFrame, teacher: str, where: str) -> str:
    """The column holding the teacher's per-frame score: the teacher's own, else ``label``."""
    for col in (teacher, "label"):
        if col in df.columns:
            return col
    raise KeyError(f"{where}: neither a {teacher!r} nor a 'label' column (columns: {list(df.columns)})")


def frames_set(name: str, df: pd.DataFrame, teacher: str, where: str, group: str) -> EvalSet:
    missing = [c for c in FEATURES if c not in df.columns]
    if missing:
        raise KeyError(f"{where}: missing column(s) {missing}")
    col = teacher_column(df, teacher, where)
    return EvalSet(
        name,
        df[list(FEATURES)].to_numpy(np.float32),
        df[col].to_numpy(np.float64),
        df[group].astype(str).to_numpy(),
    )


def split_set(labels: str | Path | pd.DataFrame, split: str, teacher: str) -> EvalSet:
    """The frames of one split of ``labels.parquet`` (``test``: contents no training row came from)."""
    df = labels if isinstance(labels, pd.DataFrame) else pd.read_parquet(labels)
    if "split" not in df.columns:
        raise KeyError(f"{labels}: no 'split' column (run the label stage)")
    return frames_set(split, df[df["split"] == split].reset_index(drop=True), teacher, str(labels), "key")


def golden_set(golden_frames: str | Path, teacher: str) -> EvalSet:
    df = pd.read_parquet(golden_frames)
    return frames_set("golden", df[df["set"] == "netflix"].reset_index(drop=True), teacher, str(golden_frames), "pair")


def content_set(labels: pd.DataFrame, content: str, teacher: str) -> EvalSet:
    """The frames of one content (leave-one-content-out)."""
    return frames_set(content, labels[labels["content"] == content].reset_index(drop=True), teacher, content, "key")


def standard_sets(
    cfg: DenseEvalConfig, *, teacher: str, labels: str | Path | pd.DataFrame, golden_frames: str | Path
) -> list[EvalSet]:
    """dense, test and golden, in report order."""
    return [dense_set(cfg, teacher), split_set(labels, "test", teacher), golden_set(golden_frames, teacher)]
