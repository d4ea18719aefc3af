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

Every set is float32 rows ``x`` in the teacher's spec order (canonical-6
for v0.6.1) and float64 teacher scores ``y``; ``groups`` names the pair of
each row where pooling means something.

A teacher outside the v0.6.1 family gets its own dense set
(:func:`tinyvmaf.sample.spec_box.dense_generic`: its own distribution over
the box its model file and the corpus give, its own stream) and, where its
features have an exact-zero point mass that changes the score (the chroma
correction at ``speed_chroma_uv`` = 0), ``dense_zero``: the dense rows with
that feature at exactly 0, reported as a set of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config.schema import DenseEvalConfig, DenseSpecEvalConfig, SpecSampleConfig
from ..contract import FEATURES
from ..extract.plan import golden_frames_for, scored_by  # noqa: F401 - part of this module's API

SETS = ("dense", "test", "golden")  # and "dense_zero" for teachers with the chroma correction
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
    from ..teacher.spec import load_spec

    x = dense_rows(cfg).astype(np.float32)
    return EvalSet("dense", x, load_spec(teacher).predict(x.astype(np.float64)))


def generic_dense_sets(
    spec: Any, cfg: DenseSpecEvalConfig, sample: SpecSampleConfig, labels: pd.DataFrame, golden: pd.DataFrame | None
) -> list[EvalSet]:
    """``dense`` (and ``dense_zero``) of a teacher outside the v0.6.1 family: the box as the sampler draws it."""
    from ..sample.spec_box import box_for, dense_generic

    order = list(spec.order)
    gold = golden[order].to_numpy(np.float64) if golden is not None and len(golden) else None
    box = box_for(
        spec,
        labels[order].to_numpy(np.float64),
        golden=gold,
        margin=sample.margin,
        zero_share_min=sample.zero_share_min,
    )
    x = dense_generic(box, cfg.count, cfg.seed).astype(np.float32)
    y = spec.predict(x.astype(np.float64))
    out = [EvalSet("dense", x, y)]
    if spec.chroma_correction:
        j = [i for i, f in enumerate(spec.features) if f.extractor == "speed_chroma"][0]
        zero = x[:, j] == 0.0
        out.append(EvalSet("dense_zero", x[zero], y[zero]))
    return out


def teacher_column(df: pd.DataFrame, teacher: str, where: str) -> str:
    """The column holding the teacher's per-frame score: the teacher's own, else ``label``."""
    for col in (teacher, "label"):
        if col in df.columns:
            return col
    raise KeyError(f"{where}: neither a {teacher!r} nor a 'label' column (columns: {list(df.columns)})")


def frames_set(
    name: str, df: pd.DataFrame, teacher: str, where: str, group: str, order: tuple[str, ...] = FEATURES
) -> EvalSet:
    missing = [c for c in order if c not in df.columns]
    if missing:
        raise KeyError(f"{where}: missing column(s) {missing}")
    col = teacher_column(df, teacher, where)
    return EvalSet(
        name,
        df[list(order)].to_numpy(np.float32),
        df[col].to_numpy(np.float64),
        df[group].astype(str).to_numpy(),
    )


def _order(teacher: str) -> tuple[str, ...]:
    from ..teacher.spec import load_spec

    return load_spec(teacher).order


def split_set(labels: str | Path | pd.DataFrame, split: str, teacher: str) -> EvalSet:
    """The frames of one split of the student's labels (``test``: contents no training row came from)."""
    df = labels if isinstance(labels, pd.DataFrame) else pd.read_parquet(labels)
    if "split" not in df.columns:
        raise KeyError(f"{labels}: no 'split' column (run the label stage)")
    part = df[df["split"] == split].reset_index(drop=True)
    return frames_set(split, part, teacher, str(labels), "key", _order(teacher))


def golden_set(golden_frames: str | Path, teacher: str) -> EvalSet:
    df = golden_frames_for(golden_frames, teacher)
    part = df[df["set"] == "netflix"].reset_index(drop=True)
    return frames_set("golden", part, teacher, str(golden_frames), "pair", _order(teacher))


def content_set(labels: pd.DataFrame, content: str, teacher: str) -> EvalSet:
    """The frames of one content (leave-one-content-out)."""
    part = labels[labels["content"] == content].reset_index(drop=True)
    return frames_set(content, part, teacher, content, "key", _order(teacher))


def standard_sets(
    cfg: DenseEvalConfig,
    *,
    teacher: str,
    labels: str | Path | pd.DataFrame,
    golden_frames: str | Path,
    dense_spec: DenseSpecEvalConfig | None = None,
    sample_spec: SpecSampleConfig | None = None,
) -> list[EvalSet]:
    """dense (and dense_zero), test and golden, in report order.

    The v0.6.1 family is measured on :func:`dense_rows`; any other teacher on
    its own generic dense set (``dense_spec``/``sample_spec`` required).
    """
    from ..teacher.spec import load_spec, v061_family

    spec = load_spec(teacher)
    df = labels if isinstance(labels, pd.DataFrame) else pd.read_parquet(labels)
    if v061_family(spec):
        dense = [dense_set(cfg, teacher)]
    else:
        if dense_spec is None or sample_spec is None:
            raise ValueError(f"{teacher}: its dense set needs evaluate.dense_spec and sample.spec")
        dense = generic_dense_sets(spec, dense_spec, sample_spec, df, golden_frames_for(golden_frames, teacher))
    return [*dense, split_set(df, "test", teacher), golden_set(golden_frames, teacher)]


def student_sets(params: Any, student: Any) -> list[EvalSet]:
    """:func:`standard_sets` of a configured student (``params.student(key)``)."""
    return standard_sets(
        params.evaluate.dense,
        teacher=student.teacher,
        labels=student.paths.labels,
        golden_frames=student.paths.golden_frames,
        dense_spec=params.evaluate.dense_spec,
        sample_spec=params.sample.spec,
    )
