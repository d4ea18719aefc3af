"""The sample stage, per student: ``labels/<teacher>.parquet`` → ``samples/<teacher>.parquet``.

Teacher-labelled feature vectors.  Output contract (one row per vector; the
train stage reads it):

============= =================================================================
features      the teacher's features in its spec's order, float32 (what the
              student is fed)
``label``     the teacher's score of exactly those float32 values (float64,
              clipped like libvmaf's)
``head_kk``   a bootstrap teacher only: each component's raw, unclipped
              score of those values (what the student's heads learn)
``split``     ``train`` (``sample.count`` rows, the mix) or ``val``
              (``sample.val_count`` rows, the uniform and quality generators
              only, its own random stream): the dense part of validation
``generator`` ``uniform`` / ``quality`` / ``jitter`` (the v0.6.1 family:
              :mod:`.generators`), or ``uniform`` / ``jitter`` / ``corner``
              (any other teacher: :mod:`.spec_box`, the box from the model
              file and the extractors' bounds, exact zeros of
              ``speed_chroma_uv`` and motion at least at the corpus' share)
============= =================================================================

Jitter is drawn around ``train`` frames only.  The output is a function of
the labels' train frames and the ``sample`` config: the same seed gives the
same bytes.

Before sampling, the stage proves the callable teacher is the teacher: it
scores every labelled frame from its features and compares with the score
libvmaf logged for that frame.  The deviation must lie within the bound
that six-decimal logging of each feature gives through the model
(:meth:`TeacherSpec.rounding_bound`: the ratio is <= 1), and for the v0.6.1
family also within ``golden.teacher_tolerance`` (2e-4).  A teacher that
drifted from libvmaf would teach the student a different function; this
stops the pipeline instead.  The counts, the deviation and the box go to
``metrics/<teacher>/sample.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..common.atomic import atomic_path, atomic_write_text
from ..config.schema import SampleConfig
from ..contract import FEATURES
from ..teacher.spec import TeacherSpec, load_spec, v061_family
from .generators import GENERATORS, allocate, draw
from .parallel import score_rows

log = logging.getLogger(__name__)

SAMPLE_COLUMNS = (*FEATURES, "label", "split", "generator")
VAL_GENERATORS = ("uniform", "quality")
GENERIC_VAL_GENERATORS = ("uniform", "corner")


class TeacherMismatch(RuntimeError):
    """The callable teacher does not reproduce libvmaf's logged scores; the message names the worst frame."""


@dataclass
class SampleSummary:
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    teacher_check: dict[str, Any] = field(default_factory=dict)


def check_teacher(labels: pd.DataFrame, spec: TeacherSpec, tolerance: float) -> dict[str, Any]:
    """The callable teacher against libvmaf's logged score on every labelled frame; raises past the bound.

    Per frame, |teacher(features) − libvmaf| over the bound six-decimal
    logging gives through the model (:meth:`TeacherSpec.rounding_bound`)
    must be <= 1; for the v0.6.1 family the deviation must also be <=
    ``tolerance``.  Fails closed: a NaN deviation and an empty table raise
    too, naming the frame or the teacher.
    """
    teacher = spec.name
    if teacher not in labels.columns:
        return {"teacher": teacher, "skipped": f"no {teacher!r} column in the labels"}
    if labels.empty:
        raise TeacherMismatch(f"teacher {teacher}: no labelled frames to check it against libvmaf on")
    x = labels[list(spec.order)].to_numpy(np.float64)
    # A plain teacher: its score column; a bootstrap one: each component's (key 0's is the score).
    cols = list(spec.log_columns)
    absent = [c for c in cols if c not in labels.columns]
    if absent:
        raise TeacherMismatch(f"teacher {teacher}: the labels lack its logged column(s) {absent[:3]}")
    if spec.bootstrap is None:
        cols = [teacher]
    dev = np.abs(spec.logged(x) - labels[cols].to_numpy(np.float64))
    ratio = dev / spec.logged_rounding_bound(x)
    limit = tolerance if v061_family(spec) else np.inf
    bad = ~((ratio <= 1.0) & (dev <= limit))  # NaN fails both
    if bad.any():
        i, k = (int(v[0]) for v in np.nonzero(bad))
        row = labels.iloc[i]
        tol = f", tolerance {tolerance:g}" if limit < np.inf else ""
        what = "score" if len(cols) == 1 else f"component {cols[k]!r}"
        raise TeacherMismatch(
            f"teacher {teacher} from the features differs from libvmaf's logged {what} by {dev[i, k]:.3g} "
            f"({ratio[i, k]:.3g} x the six-decimal rounding bound{tol}) "
            f"on pair {row['key']!r} frame {int(row['frame'])}: the model file and libvmaf disagree"
        )
    out = {
        "teacher": teacher,
        "frames": int(len(dev)),
        "max_abs_dev": float(dev.max()),
        "max_rounding_ratio": round(float(ratio.max()), 6),
    }
    if len(cols) > 1:
        out["components"] = len(cols)
    return out


def make_generic_samples(
    labels: pd.DataFrame, golden: pd.DataFrame | None, cfg: SampleConfig, spec: TeacherSpec
) -> tuple[pd.DataFrame, dict[str, dict[str, int]], dict[str, Any]]:
    """Samples of a teacher outside the v0.6.1 family (:mod:`.spec_box`), their counts and the box."""
    from . import spec_box

    order = list(spec.order)
    frames = labels[order].to_numpy(np.float64)
    gold = golden[order].to_numpy(np.float64) if golden is not None and len(golden) else None
    box = spec_box.box_for(spec, frames, golden=gold, margin=cfg.spec.margin, zero_share_min=cfg.spec.zero_share_min)
    spec_box.check_box(box, frames, "corpus")
    if gold is not None:
        spec_box.check_box(box, gold, "golden")
    train = labels.loc[labels["split"] == "train", order].to_numpy(np.float64)
    parts: list[pd.DataFrame] = []
    counts: dict[str, dict[str, int]] = {}
    for split, n, gens, stream in (
        ("train", cfg.count, spec_box.GENERIC_GENERATORS, 0),
        ("val", cfg.val_count, GENERIC_VAL_GENERATORS, 1),
    ):
        alloc = allocate(n, cfg.spec.mix, gens) if n else {}
        rng = np.random.default_rng([cfg.seed, stream])
        x, names = spec_box.draw_generic(rng, alloc, train, box, jitter_sigma=cfg.spec.jitter_sigma)
        parts.append(_labelled(x, names, split, spec))
        counts[split] = {g: int(c) for g, c in alloc.items()}
    out = pd.concat(parts, ignore_index=True)
    out["split"] = out["split"].astype("category")
    out["generator"] = out["generator"].astype("category")
    box_doc = {
        name: {"lo": float(lo), "hi": float(hi), "from": src}
        for name, lo, hi, src in zip(box.order, box.lo, box.hi, box.source, strict=True)
    }
    box_doc["zero_share"] = {k: round(float(v), 6) for k, v in dict(box.zero_share).items()}
    return out, counts, box_doc


def _labelled(x: np.ndarray, names: np.ndarray, split: str, spec: TeacherSpec) -> pd.DataFrame:
    x32 = x.astype(np.float32)
    df = pd.DataFrame(x32, columns=list(spec.order))
    df["label"] = score_rows(spec.name, x32.astype(np.float64))
    add_heads(df, spec, x32)
    df["split"] = split
    df["generator"] = names
    return df


def add_heads(df: pd.DataFrame, spec: TeacherSpec, x32: np.ndarray) -> None:
    """A bootstrap teacher's raw component scores of exactly these float32 rows (``head_00`` …): the
    targets of the student's heads (``label`` stays the score)."""
    if spec.bootstrap is None:
        return
    raw = score_rows(spec.name, x32.astype(np.float64), "components")
    for k, head in enumerate(spec.heads):
        df[head] = raw[:, k]


def make_samples(
    train_frames: np.ndarray, cfg: SampleConfig, teacher: str
) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """The sample table of a v0.6.1-family teacher (see the module docstring) and its row counts."""
    model = load_spec(teacher)
    frames: list[pd.DataFrame] = []
    counts: dict[str, dict[str, int]] = {}
    for split, n, gens, stream in (
        ("train", cfg.count, GENERATORS, 0),
        ("val", cfg.val_count, VAL_GENERATORS, 1),
    ):
        alloc = allocate(n, cfg.mix, gens) if n else {}
        rng = np.random.default_rng([cfg.seed, stream])
        x, names = draw(rng, alloc, train_frames, cfg.bounds, cfg.quality, cfg.jitter)
        x32 = x.astype(np.float32)
        df = pd.DataFrame(x32, columns=list(FEATURES))
        df["label"] = score_rows(teacher, x32.astype(np.float64))
        add_heads(df, model, x32)
        df["split"] = split
        df["generator"] = names
        frames.append(df)
        counts[split] = {g: int(c) for g, c in alloc.items()}
    out = pd.concat(frames, ignore_index=True)
    out["split"] = out["split"].astype("category")
    out["generator"] = out["generator"].astype("category")
    return out, counts


def golden_frames_of(path: str | Path | None, spec: TeacherSpec) -> pd.DataFrame | None:
    """The golden frames that ``spec``'s teacher scored, its features renamed to the spec's short names."""
    if path is None or not Path(path).is_file():
        return None
    from ..extract.plan import golden_frames_for

    return golden_frames_for(path, spec.name)


def run_sample(
    labels_path: str | Path,
    out: str | Path,
    metrics: str | Path,
    cfg: SampleConfig,
    *,
    teacher: str,
    tolerance: float,
    golden_frames: str | Path | None = None,
) -> SampleSummary:
    """The stage: check the teacher on every frame, draw, label, write ``out`` and ``metrics`` atomically."""
    spec = load_spec(teacher)
    labels = pd.read_parquet(labels_path)
    missing = [c for c in (*spec.order, "split") if c not in labels.columns]
    if missing:
        raise KeyError(f"{labels_path}: missing column(s) {missing} (run the label stage)")
    summary = SampleSummary(teacher_check=check_teacher(labels, spec, tolerance))
    doc: dict[str, Any] = {}
    if v061_family(spec):
        train = labels.loc[labels["split"] == "train", list(FEATURES)].to_numpy(np.float64)
        samples, summary.rows = make_samples(train, cfg, teacher)
    else:
        golden = golden_frames_of(golden_frames, spec)
        samples, summary.rows, doc["box"] = make_generic_samples(labels, golden, cfg, spec)
    with atomic_path(out) as tmp:
        samples.to_parquet(tmp, index=False)
    doc.update({"rows": summary.rows, "teacher_check": summary.teacher_check})
    atomic_write_text(metrics, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    log.info(
        "wrote %s: %d train + %d val vectors labelled by %s; teacher vs libvmaf %s",
        out,
        sum(summary.rows["train"].values()),
        sum(summary.rows["val"].values()),
        teacher,
        summary.teacher_check,
    )
    return summary
