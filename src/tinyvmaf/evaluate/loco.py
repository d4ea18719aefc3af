"""Leave-one-content-out: retrain without each content in turn, measure on that content.

One held-out content per fold: the fold's training set is every *other*
content's frames plus a fresh sample (jitter drawn around those frames only,
so the held-out content leaks through no neighbourhood), validated on the
dense validation vectors alone; the student is exported to ONNX and run by
ONNX Runtime on the held-out content's frames, against libvmaf's scores.
With a dozen demo contents this is the estimate of "content it never saw"
that one test content cannot give.

It costs one training per content, so it is its own target (``make loco``,
``tinyvmaf eval --loco``), not part of ``dvc repro``; it writes
``metrics/loco.json`` with the data version and a hash of the config it ran
with, and the model card shows it (stale when the data moved on).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..common.atomic import atomic_write_text
from ..common.provenance import data_version, file_sha256
from ..config.schema import Config
from ..contract import FEATURES, TEACHER
from .measure import measure
from .sets import content_set

log = logging.getLogger(__name__)


def config_digest(params: Config, teacher: str = TEACHER) -> str:
    """sha256 of what a fold's result depends on: seed, sample, train, the arch, the teacher."""
    from ..config.params import as_dict

    parts = {k: as_dict(getattr(params, k)) for k in ("sample", "train", "arch", "label")}
    parts["seed"] = params.seed
    parts["teacher"] = teacher
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def fold_labels(labels: pd.DataFrame, held_out: str) -> pd.DataFrame:
    """Every other content is ``train``; the held-out one ``test``; no real ``val`` frames."""
    out = labels.copy()
    out["split"] = np.where(out["content"].astype(str) == held_out, "test", "train")
    return out


def run_fold(params: Config, labels: pd.DataFrame, held_out: str, teacher: str = TEACHER) -> dict[str, Any]:
    """Sample around the remaining contents, train, export, measure on ``held_out`` (a worker process)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..export.graph import student_predictor
    from ..sample.stage import make_generic_samples, make_samples
    from ..student.checkpoint import load_student
    from ..teacher.spec import load_spec, v061_family
    from ..train.loop import fit_one

    t0 = time.perf_counter()
    spec = load_spec(teacher)
    fl = fold_labels(labels, held_out)
    if v061_family(spec):
        train = fl.loc[fl["split"] == "train", list(FEATURES)].to_numpy(np.float64)
        samples, _ = make_samples(train, params.sample, teacher)
    else:  # the box from the remaining contents only: the held-out one must not shape it
        samples, _, _ = make_generic_samples(fl[fl["split"] == "train"], None, params.sample, spec)
    with tempfile.TemporaryDirectory(prefix=f"tinyvmaf-loco-{held_out}-") as tmp:
        res = fit_one(params, fl, samples, workdir=Path(tmp), progress=False, teacher=teacher)
        student, _ = load_student(res.ckpt_path)
    s = content_set(labels, held_out, teacher)
    figs = measure(student_predictor(student), s, within=params.evaluate.within)
    figs.pop("pooled", None)
    figs["best_epoch"] = res.best_epoch
    log.info("loco %s: RMSE %.4f max %.4f (%.0fs)", held_out, figs["rmse"], figs["max_abs"], time.perf_counter() - t0)
    return figs


def run_loco(
    params: Config,
    labels_path: Path,
    out: Path,
    *,
    data_dvc: Path,
    contents: list[str] | None = None,
    jobs: int | None = None,
    student: str | None = None,
) -> dict[str, Any]:
    """Every fold (``evaluate.loco.jobs`` at a time), then ``out`` (atomic).

    The arch is ``evaluate.loco.arch`` when the student sweeps it, else the student's first arch.
    """
    from ..config.params import arch_config

    st = params.student(student)
    teacher = st.teacher
    labels = pd.read_parquet(labels_path)
    arch_name = params.evaluate.loco.arch if params.evaluate.loco.arch in st.archs else st.archs[0]
    arch = params.arch if params.arch.name == arch_name else arch_config(arch_name)
    cfg = replace(params, arch=arch)
    every = sorted(labels["content"].astype(str).unique())
    todo = contents or every
    unknown = sorted(set(todo) - set(every))
    if unknown:
        raise KeyError(f"{labels_path}: no content(s) {unknown} (known: {every})")
    jobs = jobs or params.evaluate.loco.jobs
    t0 = time.perf_counter()
    folds: dict[str, dict[str, Any]] = {}
    if jobs <= 1:
        for c in todo:
            folds[c] = run_fold(cfg, labels, c, teacher)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {c: pool.submit(run_fold, cfg, labels, c, teacher) for c in todo}
            folds = {c: f.result() for c, f in futures.items()}
    doc = {
        "about": "leave-one-content-out: one retraining per held-out content (tinyvmaf eval --loco)",
        "arch": arch.name,
        "teacher": teacher,
        "data_version": data_version(data_dvc),
        "labels_sha256": file_sha256(labels_path),
        "config_sha256": config_digest(cfg, teacher),
        "folds": {c: folds[c] for c in todo},
        "worst": {
            "rmse": max(f["rmse"] for f in folds.values()),
            "max_abs": max(f["max_abs"] for f in folds.values()),
            "content_by_rmse": max(folds, key=lambda c: folds[c]["rmse"]),
        },
    }
    atomic_write_text(out, json.dumps(doc, indent=2) + "\n")
    log.info("wrote %s (%d folds, %.0fs)", out, len(folds), time.perf_counter() - t0)
    return doc
