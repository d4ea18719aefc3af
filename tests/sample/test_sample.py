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
from tinyvmaf.teacher.spec import load_spec

from conftest import config
from kit import REPO
from synth import TEACHER, synthetic_features


def small(count: int = 30_000, val_count: int = 5_000, **over):
    return dataclasses.replace(config().sample, count=count, val_count=val_count, **over)


@pytest.fixture(scope="module")
def labels() -> pd.DataFrame:
    df = synthetic_features(n_contents=6, n_hrcs=3, n_frames=8, seed=11, keys=False)
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
    ok = check_teacher(labels, load_spec(TEACHER), 2e-4)
    assert ok["frames"] == len(labels) and ok["max_abs_dev"] < 1e-9  # synthetic labels are the teacher itself
    bad = labels.copy()
    bad.loc[5, TEACHER] += 0.01
    with pytest.raises(TeacherMismatch, match=rf"pair {bad.loc[5, 'key']!r} frame {int(bad.loc[5, 'frame'])}"):
        check_teacher(bad, load_spec(TEACHER), 2e-4)
    assert "skipped" in check_teacher(labels, load_spec("vmaf_v0.6.1neg"), 2e-4)  # no NEG score in these labels


def test_the_teacher_check_fails_on_nan_and_on_no_labels(labels: pd.DataFrame) -> None:
    """NaN > tolerance is False and an empty table has no maximum: both must fail, not pass as 0."""
    for col in (TEACHER, "vif_scale2"):  # libvmaf's logged score, then a feature
        bad = labels.copy()
        bad.loc[7, col] = np.nan
        where = rf"pair {bad.loc[7, 'key']!r} frame {int(bad.loc[7, 'frame'])}"
        with pytest.raises(TeacherMismatch, match=rf"by nan .* {where}"):
            check_teacher(bad, load_spec(TEACHER), 2e-4)
    with pytest.raises(TeacherMismatch, match=f"teacher {TEACHER}: no labelled frames"):
        check_teacher(labels.iloc[:0], load_spec(TEACHER), 2e-4)


def test_stage_cli(labels: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("labels").mkdir()
    labels.to_parquet("labels/vmaf_v0.6.1.parquet", index=False)
    Path("params.yaml").write_text(compose_text(REPO / "conf", ["sample.count=4000", "sample.val_count=1000"]))
    assert main(["sample"]) == 0  # the first student: v0.6.1
    out = pd.read_parquet("samples/vmaf_v0.6.1.parquet")
    assert len(out) == 5000 and list(out.columns) == [*FEATURES, "label", "split", "generator"]
    metrics = json.loads(Path("metrics/vmaf_v0.6.1/sample.json").read_text())
    assert metrics["teacher_check"]["frames"] == len(labels)
    assert metrics["teacher_check"]["max_rounding_ratio"] < 1e-3  # synthetic labels are the teacher itself
    first = Path("samples/vmaf_v0.6.1.parquet").read_bytes()
    assert main(["sample", "--student", "v061"]) == 0
    assert Path("samples/vmaf_v0.6.1.parquet").read_bytes() == first  # same inputs, same bytes
    run_sample(
        Path("labels/vmaf_v0.6.1.parquet"),
        Path("again.parquet"),
        Path("m.json"),
        small(4000, 1000),
        teacher=TEACHER,
        tolerance=2e-4,
    )
    assert Path("again.parquet").read_bytes() == first


def test_a_v1016_student_samples_its_own_box_with_exact_zeros(tmp_path: Path) -> None:
    """The stage for another teacher: its spec's features, the box from the model file, zeros at the corpus share.

    Real ``vmaf_v1.0.16_3d0h`` frames (``tests/sample/data``: every 12th demo frame, libvmaf's score).
    """
    spec = load_spec("vmaf_v1.0.16_3d0h")
    demo = pd.read_csv(REPO / "tests" / "sample" / "data" / "vmaf_v1.0.16_3d0h_demo.csv")
    demo["content"] = demo["key"].str.split("__").str[0]
    contents = sorted(demo["content"].unique())
    demo["split"] = np.where(
        demo["content"] == contents[0], "test", np.where(demo["content"] == contents[1], "val", "train")
    )
    demo = demo.rename(columns={"vmaf": spec.name})
    path = tmp_path / "labels.parquet"
    demo.to_parquet(path, index=False)
    summary = run_sample(
        path, tmp_path / "s.parquet", tmp_path / "m.json", small(20_000, 2_000), teacher=spec.name, tolerance=2e-4
    )
    assert summary.teacher_check["max_rounding_ratio"] <= 1.0  # libvmaf's logged score, within six-decimal rounding
    out = pd.read_parquet(tmp_path / "s.parquet")
    assert list(out.columns) == [*spec.order, "label", "split", "generator"]
    assert set(out["generator"]) == {"uniform", "jitter", "corner"}
    box = json.loads((tmp_path / "m.json").read_text())["box"]
    assert (box["speed_chroma_uv"]["lo"], box["speed_chroma_uv"]["hi"]) == (0.0, 45.0)  # speed_max_val, from the file
    assert (box["adm3"]["lo"], box["adm3"]["hi"]) == (0.5, 1.0)  # adm_min_val and the gain limit
    corpus_zero = float((demo["speed_chroma_uv"] == 0).mean())
    drawn_zero = float((out.loc[out["split"] == "train", "speed_chroma_uv"] == 0).mean())
    assert drawn_zero >= min(corpus_zero, 0.1) * 0.9, (drawn_zero, corpus_zero)
    zero = out["speed_chroma_uv"] == 0
    x = out.loc[zero, list(spec.order)].to_numpy(np.float64)
    np.testing.assert_array_equal(out.loc[zero, "label"], spec.predict(x))  # labelled through the correction
    # a frame outside the box fails by name
    bad = demo.copy()
    bad.loc[5, "adm3"] = 0.3  # below adm_min_val 0.5, with the teacher's own score (so only the box can object)
    bad.loc[5, spec.name] = spec.predict(bad.loc[[5], list(spec.order)].to_numpy(np.float64))[0]
    bad.to_parquet(path, index=False)
    with pytest.raises(ValueError, match="adm3"):
        run_sample(
            path, tmp_path / "s2.parquet", tmp_path / "m2.json", small(2000, 200), teacher=spec.name, tolerance=2e-4
        )
