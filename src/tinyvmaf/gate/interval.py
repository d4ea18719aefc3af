"""The interval check of a bootstrap teacher's student: every head by name, every statistic, with thresholds.

A student of ``vmaf_b_v0.6.3`` ships 21 heads, the raw component scores;
libvmaf's score, bagging, stddev and 95% interval derive from them.  The
``fidelity`` check already holds the score to the teacher; this one holds
the rest (``gate.interval``), on the evaluation sets
(:mod:`tinyvmaf.evaluate.sets`) through ONNX Runtime on the shipped file:

* each head against its own component on the dense set, criterion by name
  (``dense/head_07/rmse``): heads in the wrong order fail on the first
  swapped head, not as a vague "statistics are off";
* score, bagging, ``ci_p95_lo`` and ``ci_p95_hi`` against the teacher's on
  the dense set and the test contents (RMSE and max);
* stddev and the interval width (hi − lo) RMSE on the rows away from the
  bounds (:data:`tinyvmaf.evaluate.interval.EDGE`; the rows nearer are
  counted in the details);
* every statistic pooled per Netflix golden pair.

The figures are the eval stage's own (:func:`tinyvmaf.evaluate.interval.measure_intervals`),
so the gate and the model card cannot disagree.  Fails closed: a NaN or a
missing figure fails its criterion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..common.checks import CheckResult, Criterion
from ..config.schema import Config
from ..evaluate.interval import ALL_ROWS, INTERIOR, measure_intervals
from ..evaluate.sets import student_sets
from ..model.runtime import load_tiny_model

#: The sets whose statistics are held to ``gate.interval.statistics`` (the golden pairs: pooled only).
FRAME_SETS = ("dense", "test")


def interval_check(params: Config, model_path: Path, student: Any) -> CheckResult:
    """Heads and statistics of the shipped file against the teacher (see the module docstring)."""
    spec = student.spec
    if spec.bootstrap is None:
        raise ValueError(f"{student.teacher} is not a bootstrap teacher: its students have no heads to check")
    model = load_tiny_model(model_path, order=spec.order, keys=spec.keys)
    if not model.has_heads or model.n_outputs != len(spec.heads):
        raise ValueError(
            f"{model_path}: outputs {model.output_name!r} are not the {len(spec.heads)} heads of {spec.name}"
        )
    sets = student_sets(params, student)
    figs = measure_intervals({"model": model.predict_heads}, sets, spec.bootstrap, order=spec.order)["model"]
    th = params.gate.interval
    res = CheckResult("interval", details={"teacher": spec.name, "figures": figs})
    dense = figs["dense"]["heads"]["each"]
    for name, h in dense.items():
        res.criteria += [
            Criterion(f"dense/{name}/rmse", h["rmse"], th.heads.rmse_max, "<="),
            Criterion(f"dense/{name}/max_abs", h["max_abs"], th.heads.max_abs_max, "<="),
        ]
    for set_name in FRAME_SETS:
        st = figs[set_name]["statistics"]
        for s in ALL_ROWS:
            res.criteria += [
                Criterion(f"{set_name}/{s}/rmse", st[s]["rmse"], th.statistics.rmse_max, "<="),
                Criterion(f"{set_name}/{s}/max_abs", st[s]["max_abs"], th.statistics.max_abs_max, "<="),
            ]
        for s, bound in zip(INTERIOR, (th.stddev_rmse_max, th.width_rmse_max), strict=True):
            info = f"{st[s]['n']} rows away from the bounds; {st[s]['n_edge']} nearer (edge RMSE {st[s]['edge_rmse']})"
            res.criteria.append(Criterion(f"{set_name}/{s}/rmse", st[s]["rmse"], bound, "<=", info=info))
    golden = figs["golden"]["statistics"]
    for s in (*ALL_ROWS, *INTERIOR):
        res.criteria.append(
            Criterion(f"golden/{s}/pooled_abs_max", golden[s].get("pooled_abs_max"), th.golden_pooled_max, "<=")
        )
    return res
