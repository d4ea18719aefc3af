"""Agreement between a student and its teacher: PLCC, SROCC, RMSE, max and p99 |error|, share within ±d.

One implementation for training (val metrics every epoch), export, the
evaluation and the gate, so a model card's number and a gate's threshold
measure the same thing.  SROCC is the Pearson correlation of average ranks
(scipy's definition; the tests check against ``scipy.stats``), computed
with NumPy/pandas: importing ``scipy.stats`` costs seconds per process.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

#: The keys of :func:`figures`, in report order.
FIGURES = ("rmse", "max_abs", "p99_abs", "plcc", "srocc", "within", "n")


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r in float64; NaN when either side is constant (r is undefined)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    return float(np.dot(a, b) / denom) if denom > 0 else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho: Pearson of average ranks (ties share their mean rank)."""
    import pandas as pd

    ranks = [pd.Series(np.asarray(v, dtype=np.float64)).rank(method="average").to_numpy() for v in (a, b)]
    return pearson(*ranks)


def figures(pred: np.ndarray, target: np.ndarray, *, within: float) -> dict[str, float]:
    """Frame-level agreement: RMSE, max and 99th-percentile |error|, PLCC, SROCC, share with |error| <= ``within``.

    ``n`` is the number of rows.  Correlations of a constant side are NaN
    (undefined), never silently 0.
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} differ in shape")
    n = int(pred.size)
    if n < 2:
        raise ValueError(f"need at least 2 rows to compute correlations, got {n}")
    err = np.abs(pred - target)
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "max_abs": float(err.max()),
        "p99_abs": float(np.percentile(err, 99)),
        "plcc": pearson(pred, target),
        "srocc": spearman(pred, target),
        "within": float(np.mean(err <= within)),
        "n": n,
    }


def worst(values: Iterable[float]) -> float:
    """The largest of ``values``; NaN when any of them is NaN or there is none.

    Python's ``max()`` skips a NaN unless it comes first (``max([1.0, nan])``
    is 1.0) and raises on an empty sequence; an aggregate a check compares
    with a threshold must instead carry the NaN, so the check fails.
    """
    a = np.asarray(list(values), dtype=np.float64)
    return float(a.max()) if a.size else float("nan")  # ndarray.max propagates NaN


def rounded(d: dict, places: int = 6) -> dict:
    """Metric floats rounded: written files must not depend on a last-bit BLAS difference."""
    return {k: round(v, places) if isinstance(v, float) else v for k, v in d.items()}
