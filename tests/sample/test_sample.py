"""The sample stage: deterministic teacher-labelled vectors over the box, jitter around train frames only."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tinyvmaf.cli import main
from tinyvmaf.config import compose_text
from tinyvmaf.contract import FEATURES
from tinyvmaf.sample.generators import allocate
from tinyvmaf.sample.stage import TeacherMismatch, check_teacher, make_samples, run_sample
from tinyvmaf.teacher import load_teacher

from conftest import config
from kit import REPO
from synth import TEACHER, synthetic_features


def small(count: int = 30_000, val_count: int = 5_000, **over):
    return dataclasses.replace(config().sample, count=count, val_count=val_count, **over)


@pytest.fixture(scope="module")
def labels() -> pd.DataFrame:
    df = synthetic_features(n_contents=6, n_hrcs=3, n_frames=8, seed=11)
    df["split"] = np.where(df["content"] == "c00", "val", np.where(df["content"] == "c01", "test", "train"))
    return df


def _train(labels: pd.DataFrame) -> np.ndarray:
    return labels.loc[labels["split"] == "train", list(FEATURES)].to_numpy(np.float64)


def test_same_seed_same_rows_other_seed_other_rows(labels: pd.DataFrame) -> None:
    a, counts = make_samples(_train(labels), small(), TEACHER)
    b, _ = make_samples(_train(labels), small(), TEACHER)
    pd.testing.assert_frame_equal(a, b)
    c, _ = make_samples(_train(labels), small(seed=1), TEACHER)
    assert not np.array_equal(a[list(FEATURES)].to_numpy(), c[list(FEATURES)].to_numpy())
    assert counts == {
        "train": allocate(30_000, small().mix),
        "val": allocate(5_000, small().mix, ("uniform", "quality")),
    }
    assert a.groupby("split", observed=True).size().to_dict() == {"train": 30_000, "val": 5_000}
    assert set(a.loc[a["split"] == "val", "generator"]) == {"uniform", "quality"}  # no jitter in validation


def test_rows_cover_the_box_and_labels_are_the_teacher(labels: pd.DataFrame) -> None:
    s, _ = make_samples(_train(labels), small(count=60_000), TEACHER)
    b = config().sample.bounds
    x = s[list(FEATURES)].to_numpy(np.float64)
    assert x.dtype == np.float64 and s["adm2"].dtype == np.float32  # stored as the student is fed
    quality, motion = x[:, :5], x[:, 5]
    assert quality.min() >= 0 and quality.max() <= b.quality_max and motion.min() >= 0 and motion.max() <= b.motion2_max
    assert (quality > 1.0).mean() > 0.05  # enhancement: features above 1 are taught
    assert quality.max() > 1.2 and motion.max() > 90 and np.median(motion) < 15  # the long tail
    assert (motion == 0).mean() > 0.01
    np.testing.assert_array_equal(s["label"].to_numpy(), load_teacher(TEACHER).predict(x))
    assert s["label"].min() == 0.0 and s["label"].max() == 100.0  # clipped, as libvmaf reports


def test_val_and_test_frames_never_shape_the_sample(labels: pd.DataFrame) -> None:
    """The output is a function of the train frames only: val/test frames moved far away change nothing."""
    a, _ = make_samples(_train(labels), small(), TEACHER)
    moved = labels.copy()
    held = moved["split"] != "train"
    moved.loc[held, "motion2"] = 77.7
    moved.loc[held, "adm2"] = 0.05
    b, _ = make_samples(_train(moved), small(), TEACHER)
    pd.testing.assert_frame_equal(a, b)
    # ... and every jitter vector sits near a train frame, none near a held-out one.
    jit = a.loc[a["generator"] == "jitter", list(FEATURES)].to_numpy(np.float64)
    train = _train(labels)
    near = np.min(np.abs(jit[:, None, :5] - train[None, :, :5]).max(axis=2), axis=1)
    assert near.max() < 0.2


def test_the_teacher_check_names_the_frame(labels: pd.DataFrame) -> None:
    ok = check_teacher(labels, TEACHER, 2e-4)
    assert ok["frames"] == len(labels) and ok["max_abs_dev"] < 1e-9  # synthetic labels are the teacher itself
    bad = labels.copy()
    bad.loc[5, TEACHER] += 0.01
    with pytest.raises(TeacherMismatch, match=rf"pair {bad.loc[5, 'key']!r} frame {int(bad.loc[5, 'frame'])}"):
        check_teacher(bad, TEACHER, 2e-4)
    assert "skipped" in check_teacher(labels, "vmaf_v0.6.1neg", 2e-4)  # NEG's features are not these


def test_the_teacher_check_fails_on_nan_and_on_no_labels(labels: pd.DataFrame) -> None:
    """NaN > tolerance is False and an empty table has no maximum: both must fail, not pass as 0."""
    for col in (TEACHER, "vif_scale2"):  # libvmaf's logged score, then a feature
        bad = labels.copy()
        bad.loc[7, col] = np.nan
        where = rf"pair {bad.loc[7, 'key']!r} frame {int(bad.loc[7, 'frame'])}"
        with pytest.raises(TeacherMismatch, match=rf"by nan .* {where}"):
            check_teacher(bad, TEACHER, 2e-4)
    with pytest.raises(TeacherMismatch, match=f"teacher {TEACHER}: no labelled frames"):
        check_teacher(labels.iloc[:0], TEACHER, 2e-4)


def test_stage_cli(labels: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    labels.to_parquet("labels.parquet", index=False)
    Path("params.yaml").write_text(compose_text(REPO / "conf", ["sample.count=4000", "sample.val_count=1000"]))
    assert main(["sample"]) == 0
    out = pd.read_parquet("samples.parquet")
    assert len(out) == 5000 and list(out.columns) == [*FEATURES, "label", "split", "generator"]
    metrics = json.loads(Path("metrics/sample.json").read_text())
    assert metrics["teacher_check"]["frames"] == len(labels)
    first = Path("samples.parquet").read_bytes()
    assert main(["sample"]) == 0
    assert Path("samples.parquet").read_bytes() == first  # same inputs, same bytes
    run_sample(
        Path("labels.parquet"),
        Path("again.parquet"),
        Path("m.json"),
        small(4000, 1000),
        teacher=TEACHER,
        tolerance=2e-4,
    )
    assert Path("again.parquet").read_bytes() == first
