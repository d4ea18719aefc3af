"""A bootstrap model's heads measured as libvmaf reports them: each head, and the five statistics.

A student of ``vmaf_b_v0.6.3`` (and the teacher's exact graph) outputs the
21 raw component scores; libvmaf's score, bagging, stddev and 95% interval
derive from them (:func:`tinyvmaf.teacher.bootstrap.statistics_from_components`),
the same way for the model and for the teacher.  So a model is measured

* per head, against the teacher's raw component (``heads``): the worst
  head's RMSE and max error, and every head's by name;
* per statistic, against the teacher's statistic: ``score``, ``bagging``,
  ``ci_p95_lo`` and ``ci_p95_hi`` on every row; ``stddev`` and the interval
  ``width`` (hi − lo) on the rows whose raw bagging mean (the teacher's) is
  at least :data:`EDGE` from 0 and from 100.  Within ±0.01 of a bound
  libvmaf's stddev slope ``(tc(m+0.01) − tc(m−0.01))/0.02`` halves or
  vanishes, so a student a hundredth off there differs by half the stddev:
  those rows are counted (``n_edge``) and measured apart (``edge_rmse``),
  not hidden;
* pooled per pair where the set has pairs: a clip's statistic is the mean
  of its frame values (``vmaf_score_pooled_model_collection``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..teacher.bootstrap import STATISTICS, BootstrapTeacher, raw_bagging, statistics_from_components

#: Rows whose raw bagging mean lies within this of 0 or 100 are measured apart for stddev and width.
EDGE = 0.05
#: The statistics measured on every row, and those measured away from the bounds.
ALL_ROWS: tuple[str, ...] = ("score", "bagging", "ci_p95_lo", "ci_p95_hi")
INTERIOR: tuple[str, ...] = ("stddev", "width")

Heads = Callable[[np.ndarray], np.ndarray]


def with_width(stats: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The five statistics plus ``width`` = hi − lo."""
    out = {k: np.asarray(stats[k], np.float64) for k in STATISTICS}
    out["width"] = out["ci_p95_hi"] - out["ci_p95_lo"]
    return out


def interior_rows(teacher_heads: np.ndarray) -> np.ndarray:
    """Rows whose raw bagging mean (the teacher's, components 1..n) is at least :data:`EDGE` from 0 and 100."""
    mean = raw_bagging(teacher_heads)
    return (mean >= EDGE) & (mean <= 100.0 - EDGE)


def _errors(pred: np.ndarray, want: np.ndarray) -> dict[str, Any]:
    if len(pred) == 0:
        return {"rmse": None, "max_abs": None}
    d = pred - want
    return {"rmse": round(float(np.sqrt(np.mean(d * d))), 6), "max_abs": round(float(np.max(np.abs(d))), 6)}


def interval_figures(
    boot: BootstrapTeacher,
    heads: np.ndarray,
    teacher_heads: np.ndarray,
    *,
    groups: np.ndarray | None = None,
) -> dict[str, Any]:
    """Heads and statistics of ``heads`` ``[N, n]`` against the teacher's raw components ``teacher_heads``."""
    heads = np.asarray(heads, np.float64)
    teacher_heads = np.asarray(teacher_heads, np.float64)
    if heads.shape != teacher_heads.shape:
        raise ValueError(f"heads {heads.shape} and the teacher's {teacher_heads.shape} differ in shape")
    names = [f"head_{k:02d}" for k in range(heads.shape[1])]
    per_head = {n: _errors(heads[:, k], teacher_heads[:, k]) for k, n in enumerate(names)}
    rmses = [h["rmse"] for h in per_head.values()]
    worst = names[int(np.argmax(rmses))] if rmses and None not in rmses else None
    ours, theirs = (
        with_width(statistics_from_components(boot, heads)),
        with_width(statistics_from_components(boot, teacher_heads)),
    )
    inner = interior_rows(teacher_heads)
    stats: dict[str, Any] = {}
    for s in ALL_ROWS:
        stats[s] = _errors(ours[s], theirs[s])
    for s in INTERIOR:
        fig = _errors(ours[s][inner], theirs[s][inner])
        edge = _errors(ours[s][~inner], theirs[s][~inner])
        stats[s] = {**fig, "n": int(inner.sum()), "n_edge": int((~inner).sum()), "edge_rmse": edge["rmse"]}
    if groups is not None:
        for s in (*ALL_ROWS, "stddev", "width"):
            stats[s]["pooled_abs_max"] = _pooled_abs_max(ours[s], theirs[s], groups)
    return {
        "n": int(len(heads)),
        "heads": {
            "rmse_max": None if worst is None else per_head[worst]["rmse"],
            "max_abs": max((h["max_abs"] for h in per_head.values()), default=None),
            "worst": worst,
            "each": per_head,
        },
        "statistics": stats,
    }


def _pooled_abs_max(a: np.ndarray, b: np.ndarray, groups: np.ndarray) -> float:
    """The worst |pooled a − pooled b| over pairs (a clip's value is the mean of its frames)."""
    worst = 0.0
    for g in dict.fromkeys(groups):
        rows = groups == g
        worst = max(worst, abs(float(np.mean(a[rows])) - float(np.mean(b[rows]))))
    return round(worst, 6)


def measure_intervals(
    models: Mapping[str, Heads], sets: list[Any], boot: BootstrapTeacher, *, order: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """``{model: {set: interval_figures}}``: each model's heads on each set against the teacher's components."""
    out: dict[str, dict[str, Any]] = {name: {} for name in models}
    for s in sets:
        teacher_heads = boot.components(np.asarray(s.x, np.float64), order=order)
        for name, heads in models.items():
            out[name][s.name] = interval_figures(boot, heads(s.x), teacher_heads, groups=s.groups)
    return out


def markdown_table(results: Mapping[str, Mapping[str, Any]], set_name: str) -> list[str]:
    """Rows: per model, the worst head and each statistic's RMSE / max on one set."""
    cols = [*ALL_ROWS, *INTERIOR]
    head = ["model", "worst head RMSE / max", *(f"{c} RMSE / max" for c in cols)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        f = r.get(set_name)
        if not f:
            continue
        h = f["heads"]
        cells = [name, f"{h['rmse_max']:.4f} / {h['max_abs']:.4f} ({h['worst']})"]
        for c in cols:
            st = f["statistics"][c]
            cells.append("—" if st["rmse"] is None else f"{st['rmse']:.4f} / {st['max_abs']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    n_edge = next((f[set_name]["statistics"]["stddev"]["n_edge"] for f in results.values() if f.get(set_name)), 0)
    lines.append("")
    lines.append(
        f"stddev and width on rows whose raw bagging mean is at least {EDGE} from 0 and 100; "
        f"{n_edge} row(s) of this set lie nearer and are measured apart (`edge_rmse` in eval.json)."
    )
    return lines
