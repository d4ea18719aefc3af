"""Agreement between a student and its teacher: PLCC, SROCC, RMSE, max |error|.

One implementation for training (val metrics every epoch), export and the
gate, so a model card's number and a gate's threshold measure the same
thing.  SROCC is the Pearson correlation of average ranks (scipy's
definition), computed with NumPy/pandas: importing ``scipy.stats`` costs
seconds per process.
"""

from __future__ import annotations

import math

import numpy as np


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


def fidelity_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Frame-level agreement of a student with the teacher: PLCC, SROCC, RMSE, max |error|, n."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    n = int(len(pred))
    if n < 2:
        raise ValueError(f"need at least 2 frames to compute correlations, got {n}")
    err = pred - target
    return {
        "plcc": pearson(pred, target),
        "srocc": spearman(pred, target),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "max_abs": float(np.max(np.abs(err))),
        "n": n,
    }
