"""Float64 arithmetic whose bits do not depend on the CPU: only single IEEE roundings, in a fixed order.

Why: the teacher labels every row the student learns from, and those labels
are DVC outputs that a team shares by hash.  NumPy's ``exp`` has its own
AVX-512 kernel and otherwise calls glibc's, which glibc picks by CPU (an FMA
variant or an SSE2 one); ``x @ y`` goes to OpenBLAS, whose kernel (Haswell,
SkylakeX, Zen, ...) and so whose summation order depend on the CPU.  Each is
accurate to an ULP or so and each gives other bits on another machine, so
``labels.parquet`` and ``samples.parquet`` would differ between an Intel and
an AMD box.

Here every operation is an elementwise ``+ − × ÷``, ``rint`` or ``ldexp``
(each exactly rounded by IEEE 754, the same in any SIMD width, and never
fused by NumPy, which runs one ufunc at a time), and every reduction is
written out in an order this module fixes.  The price is speed (a few times
slower than BLAS + ``np.exp``); the accuracy is ~1 ULP, far below libvmaf's
six-decimal logs.
"""

from __future__ import annotations

import math

import numpy as np

_LN2_HI = 6.93147180369123816490e-01  # ln 2 with 20 trailing zero bits: k · _LN2_HI is exact for |k| < 2^20
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.0 / math.log(2.0)
#: Taylor coefficients 1/n! for exp on |r| ≤ ln2/2 (degree 13: truncation < 1e-18 relative).
_EXP_COEF = tuple(1.0 / math.factorial(n) for n in range(13, -1, -1))
#: Below this exp underflows to 0 in float64 (the smallest subnormal is 2^-1074).
_EXP_MIN = -745.2


def exp(x: np.ndarray) -> np.ndarray:
    """``e**x`` elementwise in float64, the same bits on every CPU (~1 ULP; NaN in, NaN out).

    Cody–Waite reduction ``x = k·ln2 + r`` with ``|r| ≤ ln2/2``, a degree-13
    Horner polynomial for ``e**r``, then ``ldexp`` by ``k`` (exact, including
    gradual underflow).
    """
    x = np.asarray(x, dtype=np.float64)
    xc = np.maximum(x, _EXP_MIN)  # NaN propagates through maximum
    k = np.rint(xc * _INV_LN2)
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    p = np.full_like(r, _EXP_COEF[0])
    for c in _EXP_COEF[1:]:
        p *= r
        p += c
    k_int = np.nan_to_num(k, nan=0.0).astype(np.int64)
    out = np.ldexp(p, k_int)
    out[x < _EXP_MIN] = 0.0
    out[np.isnan(x)] = np.nan
    return out


def sum_columns(a: np.ndarray) -> np.ndarray:
    """``a.sum(axis=1)`` for a 2-D float64 array, pairwise in an order fixed here (not by NumPy or BLAS).

    Columns are added in halves: ``[0, h) + [h, 2h)``, repeated, an odd last
    column carried to the next level.  Pairwise summation is also the more
    accurate order (error ~log2(n) ULPs instead of ~n).
    """
    cur = np.asarray(a, dtype=np.float64)
    if cur.ndim != 2:
        raise ValueError(f"sum_columns needs a 2-D array, got shape {cur.shape}")
    if cur.shape[1] == 0:
        return np.zeros(cur.shape[0])
    while cur.shape[1] > 1:
        h = cur.shape[1] // 2
        nxt = cur[:, :h] + cur[:, h : 2 * h]
        if cur.shape[1] % 2:
            nxt = np.concatenate([nxt, cur[:, 2 * h :]], axis=1)
        cur = nxt
    return cur[:, 0].copy()


def squared_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``‖x_i − c_j‖²`` as ``[N, M]``, features summed in index order: ``Σ_f (x_if − c_jf)²``."""
    x = np.asarray(x, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    d2 = np.zeros((x.shape[0], centres.shape[0]))
    for f in range(x.shape[1]):
        diff = x[:, f : f + 1] - centres[None, :, f]
        diff *= diff
        d2 += diff
    return d2
