"""One metrics implementation (tinyvmaf.common.metrics), checked against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tinyvmaf.common.metrics import FIGURES, figures, pearson, rounded, spearman


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pearson_and_spearman_equal_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=500)
    b = a + rng.normal(scale=0.5, size=500)
    b[:50] = np.round(b[:50])  # ties
    assert pearson(a, b) == pytest.approx(stats.pearsonr(a, b).statistic, abs=1e-12)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    tied = np.repeat(np.arange(50.0), 10)  # many ties: average ranks, as scipy does
    assert spearman(tied, a) == pytest.approx(stats.spearmanr(tied, a).statistic, abs=1e-12)


def test_undefined_correlation_is_nan_not_zero() -> None:
    assert math.isnan(pearson(np.ones(5), np.arange(5.0)))
    assert math.isnan(spearman(np.ones(5), np.arange(5.0)))


def test_figures() -> None:
    target = np.linspace(0, 100, 201)
    pred = target.copy()
    pred[:10] += 1.0  # ten rows off by one point
    f = figures(pred, target, within=0.5)
    assert list(f) == list(FIGURES)
    assert f["rmse"] == pytest.approx(math.sqrt(10 / 201))
    assert f["max_abs"] == 1.0 and f["within"] == pytest.approx(191 / 201) and f["n"] == 201
    assert f["p99_abs"] == pytest.approx(np.percentile(np.abs(pred - target), 99))
    with pytest.raises(ValueError, match="at least 2"):
        figures(np.ones(1), np.ones(1), within=0.5)
    with pytest.raises(ValueError, match="shape"):
        figures(np.ones(3), np.ones(4), within=0.5)
    assert rounded({"a": 1 / 3, "n": 3}) == {"a": 0.333333, "n": 3}
