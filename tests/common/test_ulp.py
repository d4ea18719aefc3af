"""ULP arithmetic on known float32 pairs (tinyvmaf.ulp)."""

from __future__ import annotations

import numpy as np
import pytest

from tinyvmaf.common.ulp import NAN_DISTANCE, max_ulp, ordered_int, ulp_distance

F32 = np.float32


def nxt(x: float, toward: float = np.inf) -> np.float32:
    return np.nextafter(F32(x), F32(toward))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (F32(1.0), nxt(1.0), 1),  # the next float32 after 1.0
        (F32(1.0), nxt(1.0, 0.0), 1),  # the one before (half the spacing, still one step)
        (F32(0.0), F32(-0.0), 0),  # signed zeros are the same point
        (F32(0.0), nxt(0.0), 1),  # smallest subnormal
        (nxt(0.0, -1.0), nxt(0.0), 2),  # -denorm_min .. +denorm_min crosses zero: 2 steps
        (F32(-1.0), F32(1.0), 2 * 0x3F800000),  # across zero: both magnitudes
        (F32(np.finfo(np.float32).max), F32(np.inf), 1),
        (F32(-np.inf), F32(np.inf), 2 * 0x7F800000),
        (F32(2.0), F32(1.0), 1 << 23),  # one binade holds 2**23 floats
        (F32(100.0), F32(100.0), 0),
    ],
)
def test_known_pairs(a: np.float32, b: np.float32, expected: int) -> None:
    assert int(ulp_distance(a, b)) == expected
    assert int(ulp_distance(b, a)) == expected  # symmetric


def test_ordering_is_monotonic() -> None:
    x = np.sort(np.array([-np.inf, -3.5, -1e-40, -0.0, 0.0, 1e-45, 1.0, 7.25, np.inf], dtype=np.float32))
    k = ordered_int(x)
    assert np.all(np.diff(k) >= 0)
    assert k[3] == k[4] == 0  # -0.0 and +0.0


def test_float64_inputs_are_compared_as_float32() -> None:
    # 0.1 in float64 rounds to one float32; the distance is about that float32, not the float64.
    assert int(ulp_distance(0.1, np.float32(0.1))) == 0


def test_nan_is_explicit() -> None:
    with pytest.raises(ValueError, match="NaN"):
        ulp_distance(np.float32(np.nan), np.float32(1.0))
    d = ulp_distance(np.array([np.nan, np.nan, 1.0], F32), np.array([np.nan, 1.0, np.nan], F32), nan="propagate")
    assert d.tolist() == [0, NAN_DISTANCE, NAN_DISTANCE]
    assert int(ulp_distance(F32(-np.inf), F32(np.inf))) < NAN_DISTANCE
    with pytest.raises(ValueError, match="nan must be"):
        ulp_distance(1.0, 1.0, nan="ignore")  # type: ignore[arg-type]


def test_arrays_broadcast_and_max() -> None:
    a = np.array([1.0, 2.0, 3.0], F32)
    b = a.copy()
    b[1] = np.nextafter(b[1], F32(10), dtype=F32)
    b[1] = np.nextafter(b[1], F32(10), dtype=F32)
    assert ulp_distance(a, b).tolist() == [0, 2, 0]
    assert max_ulp(a, b) == 2
    assert max_ulp(np.zeros(0, F32), np.zeros(0, F32)) == 0
    assert ulp_distance(a, F32(1.0)).tolist() == [0, 1 << 23, (1 << 23) + (1 << 22)]
