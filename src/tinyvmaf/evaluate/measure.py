"""Figures of a model on the evaluation sets: the six numbers per set, and pooled errors per pair.

The same function measures our student (through ONNX Runtime, the file that
ships), the libvmaf fork's peers on the very same rows, and each
leave-one-content-out fold, so every table compares like with like.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..common.metrics import FIGURES, figures, rounded, worst
from .sets import EvalSet

Predict = Callable[[np.ndarray], np.ndarray]


def pooled_errors(pred: np.ndarray, s: EvalSet) -> dict[str, dict[str, float]]:
    """Per pair: the mean of the model's frame scores, the teacher's, and their difference."""
    assert s.groups is not None
    out = {}
    for g in dict.fromkeys(s.groups):  # first-appearance order
        rows = s.groups == g
        student, teacher = float(np.mean(pred[rows])), float(np.mean(s.y[rows]))
        out[str(g)] = {"student": student, "teacher": teacher, "diff": student - teacher}
    return out


#: The fewest rows a set is measured on (a correlation needs two).
MIN_ROWS = 2


def measure(predict: Predict, s: EvalSet, *, within: float) -> dict[str, Any]:
    """Frame figures of ``predict`` on ``s``; with pooled per-pair errors where the set has pairs.

    A NaN anywhere (a prediction, a teacher score) makes every figure that
    aggregates it NaN, the worst pooled error included, so no check built on
    them can pass.  A set of fewer than :data:`MIN_ROWS` rows is an error naming it.
    """
    if len(s) < MIN_ROWS:
        raise ValueError(f"evaluation set {s.name!r} has {len(s)} row(s): nothing to measure (needs >= {MIN_ROWS})")
    pred = np.asarray(predict(s.x), dtype=np.float64)
    out: dict[str, Any] = rounded(figures(pred, s.y, within=within))
    if s.groups is not None:
        pairs = pooled_errors(pred, s)
        out["pooled_abs_max"] = round(worst(abs(p["diff"]) for p in pairs.values()), 6)
        out["pooled"] = {k: rounded(v) for k, v in pairs.items()}
    return out


def unmeasured(s: EvalSet) -> dict[str, Any]:
    """The figures of a set too small to measure: every one ``None`` (so a check on it fails), ``n`` its rows."""
    out: dict[str, Any] = {k: None for k in FIGURES}
    out["n"] = len(s)
    if s.groups is not None:
        out["pooled_abs_max"] = None
    return out


def measure_models(
    models: Mapping[str, Predict], sets: Sequence[EvalSet], *, within: float
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{model: {set: figures}}`` for every model on every set."""
    return {name: {s.name: measure(fn, s, within=within) for s in sets} for name, fn in models.items()}


def comparison_table(results: Mapping[str, Mapping[str, Mapping[str, Any]]], set_name: str) -> list[str]:
    """Markdown rows: one model per row, the six figures (and the worst pooled error) of one set."""
    cols = ["rmse", "max_abs", "p99_abs", "plcc", "srocc", "within"]
    pooled = any("pooled_abs_max" in r[set_name] for r in results.values())
    sized = any("n_params" in r for r in results.values())
    head = ["model", *(["params"] if sized else []), *cols, *(["max pooled"] if pooled else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        f = r[set_name]
        size = [f"{r['n_params']:,}" if "n_params" in r else ""] if sized else []
        cells = [name, *size, *(f"{f[c]:.4f}" if c != "within" else f"{100 * f[c]:.2f} %" for c in cols)]
        if pooled:
            cells.append(f"{f.get('pooled_abs_max', float('nan')):.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines
