"""The generic sampler: the box from the teacher spec, its generators and its held-out dense set.

Real feature values come from ``data/`` (committed fixtures, produced with
the project's FFmpeg and the carried ``vmaf_v1.0.16_3d0h.json``):
``vmaf_v1.0.16_3d0h_demo.csv`` holds every 12th frame of the 120 demo pairs
(480 frames), ``vmaf_v1.0.16_3d0h_golden.csv`` Netflix's golden src01 and
sparks pairs (8 frames); both with libvmaf's logged score.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from tinyvmaf.sample.spec_box import (
    GENERIC_GENERATORS,
    SMALLEST_LOGGED,
    Box,
    box_for,
    check_box,
    dense_generic,
    draw_generic,
    order_hash,
)
from tinyvmaf.teacher.spec import TeacherSpec, load_spec

from synth import synthetic_features

DATA = Path(__file__).parent / "data"
V1016 = "vmaf_v1.0.16_3d0h"
MARGIN, ZERO_MIN, SIGMA = 0.1, 0.1, 0.02


@pytest.fixture(scope="module")
def spec() -> TeacherSpec:
    return load_spec(V1016)


@pytest.fixture(scope="module")
def demo(spec: TeacherSpec) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{V1016}_demo.csv")


@pytest.fixture(scope="module")
def golden(spec: TeacherSpec) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{V1016}_golden.csv")


@pytest.fixture(scope="module")
def frames(spec: TeacherSpec, demo: pd.DataFrame) -> np.ndarray:
    return demo[list(spec.order)].to_numpy(np.float64)


@pytest.fixture(scope="module")
def box(spec: TeacherSpec, frames: np.ndarray, golden: pd.DataFrame) -> Box:
    gold = golden[list(spec.order)].to_numpy(np.float64)
    return box_for(spec, frames, golden=gold, margin=MARGIN, zero_share_min=ZERO_MIN)


def test_fixtures_are_the_teachers_features_in_spec_order(spec: TeacherSpec, demo: pd.DataFrame, golden) -> None:
    assert spec.order == ("cambi", "speed_chroma_uv", "adm3", "motion3")
    for df in (demo, golden):
        x = df[list(spec.order)].to_numpy(np.float64)
        assert (np.abs(spec.predict(x) - df["vmaf"].to_numpy()) <= spec.rounding_bound(x)).all()


def test_box_of_3d0h_comes_from_the_spec(spec: TeacherSpec, box: Box, frames: np.ndarray) -> None:
    assert box.order == spec.order
    np.testing.assert_array_equal(box.lo, [0.0, 0.0, 0.5, 0.0])
    np.testing.assert_array_equal(box.hi, [17.0, 45.0, 1.0, 18.0])
    assert "cambi_max_val (file)" in box.source[0]
    assert "speed_max_val (file)" in box.source[1]
    assert "adm_min_val (file)" in box.source[2] and "adm_enhn_gain_limit (file)" in box.source[2]
    assert "motion_max_val (file)" in box.source[3]
    assert not any("corpus" in s for s in box.source)
    # real content sits on every one of those bounds: nothing narrower would cover it
    np.testing.assert_array_equal(frames.min(axis=0)[:3], [0.0, 0.0, 0.5])
    np.testing.assert_array_equal(frames.max(axis=0)[[0, 1, 3]], [17.0, 45.0, 18.0])
    # tight bounds need no corpus
    bare = box_for(spec, None, margin=MARGIN, zero_share_min=ZERO_MIN)
    np.testing.assert_array_equal(bare.lo, box.lo)
    np.testing.assert_array_equal(bare.hi, box.hi)
    assert bare.zero_columns == ("speed_chroma_uv", "motion3")
    # the arrays cannot be edited behind the box's back
    with pytest.raises(ValueError):
        box.lo[0] = 1.0


def test_zero_columns_and_shares(spec: TeacherSpec, box: Box, frames: np.ndarray) -> None:
    # speed_chroma and motion by extractor; cambi because real frames hold exact zeros
    assert box.zero_columns == ("cambi", "speed_chroma_uv", "motion3")
    for name in box.zero_columns:
        share = float((frames[:, spec.order.index(name)] == 0.0).mean())
        assert box.zero_share[name] == max(share, ZERO_MIN)
    assert box.zero_share["cambi"] > ZERO_MIN  # 13.75 % of the fixture's frames
    many = frames.copy()
    many[: len(many) // 2, 1] = 0.0
    assert box_for(spec, many, margin=MARGIN, zero_share_min=ZERO_MIN).zero_share["speed_chroma_uv"] >= 0.5
    capped = box_for(spec, many, margin=MARGIN, zero_share_min=ZERO_MIN, zero_share_max=0.3)
    assert capped.zero_share["speed_chroma_uv"] == 0.3


def test_check_box_names_the_feature_the_value_and_the_set(spec: TeacherSpec, box: Box, frames: np.ndarray) -> None:
    check_box(box, frames, "corpus")
    bad = frames.copy()
    bad[7, 2] = 0.45
    with pytest.raises(ValueError, match=r"corpus frame 7: adm3 = .*0\.45.* outside the box \[0\.5, 1\]"):
        check_box(box, bad, "corpus")
    with pytest.raises(ValueError, match=r"golden frame 7: adm3 = .*0\.45"):
        box_for(spec, frames, golden=bad, margin=MARGIN, zero_share_min=ZERO_MIN)
    nan = frames.copy()
    nan[3, 0] = np.nan
    with pytest.raises(ValueError, match="golden frame 3: cambi = nan"):
        check_box(box, nan, "golden")
    with pytest.raises(ValueError, match=r"must be \[N, 4\]"):
        check_box(box, frames[:, :3], "corpus")


def test_any_teacher_a_corpus_bound_where_the_extractor_gives_none() -> None:
    """vmaf_v0.6.1: gain limit 100 and motion_max_val 10000 are no bounds; the corpus range plus margin is."""
    v061 = load_spec("vmaf_v0.6.1")
    df = synthetic_features(n_contents=4, n_hrcs=3, n_frames=8, seed=3, keys=False)
    x = df[list(v061.order)].to_numpy(np.float64)
    b = box_for(v061, x, margin=MARGIN, zero_share_min=0.02)
    for j in range(len(v061.order)):
        col = x[:, j]
        assert f"corpus max {col.max():.6g} + margin 0.1" in b.source[j]
        assert b.hi[j] == pytest.approx(col.max() + MARGIN * (col.max() - col.min()))
    assert b.lo[-1] == 0.0 and "extractor floor 0" in b.source[-1]  # motion2
    assert b.zero_columns == ("motion2",)
    assert b.zero_share["motion2"] == max(float((x[:, -1] == 0).mean()), 0.02)
    assert "clamped to extractor floor 0" in b.source[1]  # vif_scale0 reaches low enough to hit the floor
    with pytest.raises(ValueError, match=r"golden frame 0: motion2 = 40\.0 lies outside"):
        check_box(b, np.where(np.arange(6) == 5, 40.0, x[:1]), "golden")


def _draw(box: Box, frames: np.ndarray, seed: int, n: int = 6000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return draw_generic(rng, {g: n for g in GENERIC_GENERATORS}, frames, box, jitter_sigma=SIGMA)


def test_generators_are_deterministic_inside_the_box_with_exact_zeros(box: Box, frames: np.ndarray) -> None:
    x, names = _draw(box, frames, 1)
    x2, names2 = _draw(box, frames, 1)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(names, names2)
    assert not np.array_equal(x, _draw(box, frames, 2)[0])
    assert x.dtype == np.float64 and x.shape == (3 * 6000, 4)
    assert list(dict.fromkeys(names)) == list(GENERIC_GENERATORS)
    check_box(box, x, "drawn")
    for g in GENERIC_GENERATORS:
        xg = x[names == g]
        for j, share in box.zero_index():
            got = float((xg[:, j] == 0.0).mean())
            assert abs(got - share) < 4 * np.sqrt(share * (1 - share) / len(xg)) + 1e-9, (g, box.order[j], got)
        assert (xg[:, 2] != 0.0).all()  # adm3 is no zero column
    corner = x[names == "corner"]
    for j in range(4):
        assert (corner[:, j] == box.hi[j]).mean() > 0.25
    assert ((corner[:, 1] == SMALLEST_LOGGED).mean()) > 0.25  # the non-zero branch's edge of speed_chroma_uv


def test_jitter_stays_near_train_frames(box: Box, frames: np.ndarray) -> None:
    train = frames[:40]
    x, _ = draw_generic(np.random.default_rng(0), {"jitter": 2000}, train, box, jitter_sigma=SIGMA)
    dist = np.abs((x[:, None, :] - train[None, :, :]) / box.width)
    zero = np.isin(np.arange(4), [box.order.index(c) for c in box.zero_columns])
    dist[:, :, zero] = np.where(x[:, None, zero] == 0.0, 0.0, dist[:, :, zero])  # a drawn zero is the share's
    assert np.quantile(dist.max(axis=2).min(axis=1), 0.99) < 5 * SIGMA


def test_draw_generic_refuses_what_it_cannot_do(box: Box, frames: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown generator"):
        draw_generic(rng, {"quality": 10}, frames, box, jitter_sigma=SIGMA)
    with pytest.raises(ValueError, match="needs at least one train frame"):
        draw_generic(rng, {"jitter": 10}, frames[:0], box, jitter_sigma=SIGMA)
    x, names = draw_generic(rng, {}, frames, box, jitter_sigma=SIGMA)
    assert x.shape == (0, 4) and names.shape == (0,)


def test_dense_set_is_its_own_distribution(spec: TeacherSpec, box: Box, frames: np.ndarray) -> None:
    d = dense_generic(box, 6000, 779)
    np.testing.assert_array_equal(d, dense_generic(box, 6000, 779))
    assert not np.array_equal(d, dense_generic(box, 6000, 780))
    check_box(box, d, "dense")
    for j, share in box.zero_index():
        got = float((d[:, j] == 0.0).mean())
        assert abs(got - share) < 4 * np.sqrt(share * (1 - share) / len(d)), (box.order[j], got)
    # no row in common with any generator, and a different distribution from each
    x, names = _draw(box, frames, 779)
    assert not set(map(tuple, d)) & set(map(tuple, x))
    for g in GENERIC_GENERATORS:
        ks = max(ks_2samp(d[:, j], x[names == g][:, j]).statistic for j in range(4))
        assert ks > 0.1, (g, ks)
    # correlated in the quality direction: adm3 up with motion3, down with speed_chroma_uv (as real encodes)
    nz = d[:, 1] != 0
    assert np.corrcoef(d[nz, 1], d[nz, 2])[0, 1] < -0.2
    np.testing.assert_array_equal(box.direction, [-1.0, -1.0, 1.0, 1.0])
    # its own stream per teacher order
    assert order_hash(box.order) == zlib.crc32("\x1f".join(box.order).encode())
    assert order_hash(box.order) != order_hash(load_spec("vmaf_v0.6.1").order)


def test_teacher_spans_most_of_its_range_over_the_dense_set(spec: TeacherSpec, box: Box) -> None:
    y = spec.predict(dense_generic(box, 6000, 779))
    lo, hi = np.percentile(y, [5, 95])
    assert hi - lo > 40.0, (lo, hi)
    assert ((y > 20) & (y < 80)).mean() > 0.4  # not just the clips' two ends
