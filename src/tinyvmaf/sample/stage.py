"""The sample stage: ``labels.parquet`` → ``samples.parquet``, teacher-labelled feature vectors.

Output contract (one row per vector; the train stage reads it):

============= =================================================================
adm2 ...      canonical-6 features, float32 (what the student is fed)
``label``     the teacher's score of exactly those float32 values (float64,
              clipped like libvmaf's)
``split``     ``train`` (``sample.count`` rows, the mix) or ``val``
              (``sample.val_count`` rows, the uniform and quality generators
              only, its own random stream): the dense part of validation
``generator`` ``uniform`` / ``quality`` / ``jitter``
============= =================================================================

Jitter is drawn around ``train`` frames only.  The output is a function of
the labels' train frames and the ``sample`` config: the same seed gives the
same bytes.

Before sampling, the stage proves the callable teacher is the teacher: it
scores every labelled frame from its six features and compares with the
score libvmaf logged for that frame (``golden.teacher_tolerance``, 2e-4:
libvmaf logs six decimals).  A teacher that drifted from libvmaf would
teach the student a different function; this stops the pipeline instead.
The counts and that deviation go to ``metrics/sample.json``.
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
from ..teacher import load_teacher
from .generators import GENERATORS, allocate, draw

log = logging.getLogger(__name__)

SAMPLE_COLUMNS = (*FEATURES, "label", "split", "generator")
VAL_GENERATORS = ("uniform", "quality")


class TeacherMismatch(RuntimeError):
    """The callable teacher does not reproduce libvmaf's logged scores; the message names the worst frame."""


@dataclass
class SampleSummary:
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    teacher_check: dict[str, Any] = field(default_factory=dict)


def check_teacher(labels: pd.DataFrame, teacher: str, tolerance: float) -> dict[str, Any]:
    """Max |teacher(features) − libvmaf's score| over every labelled frame; raises past ``tolerance``.

    Fails closed: a NaN deviation (a NaN feature or logged score) and an
    empty table raise too, naming the frame or the teacher.

    A teacher whose model sets feature-extraction options (NEG's gain
    limits) is scored by libvmaf on *other* features than the default ones
    in the table, so the comparison does not apply and is reported skipped.
    """
    model = load_teacher(teacher)
    if any(model.feature_opts):
        return {"teacher": teacher, "skipped": "its features are extracted with other options (feature_opts_dicts)"}
    if teacher not in labels.columns:
        return {"teacher": teacher, "skipped": f"no {teacher!r} column in the labels"}
    if labels.empty:
        raise TeacherMismatch(f"teacher {teacher}: no labelled frames to check it against libvmaf on")
    x = labels[list(FEATURES)].to_numpy(np.float64)
    dev = np.abs(model.predict(x) - labels[teacher].to_numpy(np.float64))
    worst = int(np.argmax(dev))  # the first NaN, if any: NaN > tolerance is False, so test "not <="
    if not dev[worst] <= tolerance:
        row = labels.iloc[worst]
        raise TeacherMismatch(
            f"teacher {teacher} from the features differs from libvmaf's logged score by {dev[worst]:.3g} "
            f"(> {tolerance:g}) on pair {row['key']!r} frame {int(row['frame'])}: the model file and libvmaf disagree"
        )
    return {"teacher": teacher, "frames": int(len(dev)), "max_abs_dev": float(dev[worst])}


def make_samples(
    train_frames: np.ndarray, cfg: SampleConfig, teacher: str
) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """The sample table (see the module docstring) and its row counts per split and generator."""
    model = load_teacher(teacher)
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
        df["label"] = model.predict(x32.astype(np.float64))
        df["split"] = split
        df["generator"] = names
        frames.append(df)
        counts[split] = {g: int(c) for g, c in alloc.items()}
    out = pd.concat(frames, ignore_index=True)
    out["split"] = out["split"].astype("category")
    out["generator"] = out["generator"].astype("category")
    return out, counts


def run_sample(
    labels_path: str | Path,
    out: str | Path,
    metrics: str | Path,
    cfg: SampleConfig,
    *,
    teacher: str,
    tolerance: float,
) -> SampleSummary:
    """The stage: check the teacher on every frame, draw, label, write ``out`` and ``metrics`` atomically."""
    labels = pd.read_parquet(labels_path)
    missing = [c for c in (*FEATURES, "split") if c not in labels.columns]
    if missing:
        raise KeyError(f"{labels_path}: missing column(s) {missing} (run the label stage)")
    summary = SampleSummary(teacher_check=check_teacher(labels, teacher, tolerance))
    train = labels.loc[labels["split"] == "train", list(FEATURES)].to_numpy(np.float64)
    samples, summary.rows = make_samples(train, cfg, teacher)
    with atomic_path(out) as tmp:
        samples.to_parquet(tmp, index=False)
    doc = {"rows": summary.rows, "teacher_check": summary.teacher_check}
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
