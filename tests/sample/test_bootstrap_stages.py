"""A bootstrap teacher through label, sample and train: the heads' targets are its raw components.

The features are synthetic v0.6.1 frames with the 21 component columns the
extract stage logs (computed by the callable teacher and clipped, as libvmaf
logs them; the components against libvmaf itself are
``tests/teacher/test_bootstrap.py``'s).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tinyvmaf.config import compose_conf, validate
from tinyvmaf.contract import FEATURES
from tinyvmaf.label.stage import LabelError, make_labels
from tinyvmaf.sample.stage import TeacherMismatch, check_teacher, make_samples
from tinyvmaf.teacher.spec import load_spec

from kit import REPO
from synth import synthetic_features

TEACHER = "vmaf_b_v0.6.3"


def bootstrap_features() -> pd.DataFrame:
    df = synthetic_features(n_contents=6, n_hrcs=3, n_frames=6, seed=5)
    spec = load_spec(TEACHER)
    logged = spec.logged(df[list(spec.keys)].to_numpy(np.float64))
    for k, col in enumerate(spec.log_columns):
        df[col] = np.round(logged[:, k], 6)  # six decimals, as libvmaf logs them
    df[TEACHER] = df[spec.log_columns[0]]
    return df


def subjective(df: pd.DataFrame) -> pd.DataFrame:
    pairs = df[["key", "content"]].drop_duplicates()
    return pairs.assign(mos=np.nan, dmos=np.nan, mos100=np.nan).reset_index(drop=True)


@pytest.fixture(scope="module")
def cfg():
    return validate(compose_conf(REPO / "conf"))


def test_labels_carry_the_raw_components_as_the_heads_targets(cfg) -> None:
    df = bootstrap_features()
    labels = make_labels(df, subjective(df), cfg.label, teacher=TEACHER)
    spec = load_spec(TEACHER)
    heads = labels[list(spec.heads)].to_numpy(np.float64)
    np.testing.assert_array_equal(heads, spec.components(labels[list(spec.order)].to_numpy(np.float64)))
    assert list(labels.columns[labels.columns.str.startswith(f"{TEACHER}_")]) == list(spec.log_columns)
    np.testing.assert_array_equal(labels["label"], df[TEACHER])  # the score: key 0 as libvmaf logged it
    check = check_teacher(labels, spec, cfg.golden.teacher_tolerance)
    assert check["components"] == 21 and check["max_rounding_ratio"] <= 1.0


def test_a_component_that_drifts_from_libvmaf_is_named(cfg) -> None:
    df = bootstrap_features()
    labels = make_labels(df, subjective(df), cfg.label, teacher=TEACHER)
    labels.loc[labels.index[4], f"{TEACHER}_13"] += 0.01
    with pytest.raises(TeacherMismatch, match=rf"component '{TEACHER}_13'.*frame"):
        check_teacher(labels, load_spec(TEACHER), cfg.golden.teacher_tolerance)


def test_labels_without_the_component_columns_are_an_error(cfg) -> None:
    df = bootstrap_features().drop(columns=[f"{TEACHER}_20"])
    with pytest.raises(LabelError, match=f"{TEACHER}_20"):
        make_labels(df, subjective(df), cfg.label, teacher=TEACHER)


def test_samples_carry_the_heads_of_exactly_their_float32_rows(cfg) -> None:
    df = bootstrap_features()
    train = df[[f"integer_{f}" for f in FEATURES]].to_numpy(np.float64)
    samples, counts = make_samples(train, dataclasses.replace(cfg.sample, count=3000, val_count=500), TEACHER)
    spec = load_spec(TEACHER)
    x = samples[list(FEATURES)].to_numpy(np.float32).astype(np.float64)
    np.testing.assert_array_equal(samples[list(spec.heads)].to_numpy(), spec.components(x))
    np.testing.assert_array_equal(samples["label"].to_numpy(), spec.predict(x))
    assert len(samples) == 3500 and sum(counts["train"].values()) == 3000


def test_a_student_of_the_bootstrap_trains_21_heads(cfg, tmp_path: Path) -> None:
    from tinyvmaf.student.checkpoint import load_student
    from tinyvmaf.train.loop import fit_one

    df = bootstrap_features()
    labels = make_labels(df, subjective(df), cfg.label, teacher=TEACHER)
    train = df[[f"integer_{f}" for f in FEATURES]].to_numpy(np.float64)
    samples, _ = make_samples(train, dataclasses.replace(cfg.sample, count=20_000, val_count=2000), TEACHER)
    small = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=2))
    res = fit_one(small, labels, samples, workdir=tmp_path, progress=False, teacher=TEACHER)
    student, _ = load_student(res.ckpt_path)
    assert student.teacher == TEACHER and student.n_heads == 21
    assert student.linears()[-1].out_features == 21
    assert res.history and all(np.isfinite(h["val_rmse"]) for h in res.history)
    # two epochs on 20k rows: already far better than each head's mean (a real fit of every head, not noise)
    heads = samples.loc[samples["split"] == "val", list(load_spec(TEACHER).heads)].to_numpy(np.float64)
    baseline = float(np.sqrt(((heads - heads.mean(0)) ** 2).mean()))
    assert res.val["val_rmse"] < 0.5 * baseline, (res.val["val_rmse"], baseline)


def test_scoring_rows_on_every_core_gives_the_bits_of_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from tinyvmaf.sample import parallel

    monkeypatch.setattr(parallel, "CHUNK", 1000)  # three chunks of a small table, over two processes
    rng = np.random.default_rng(9)
    x = np.column_stack([rng.uniform(0.2, 1.1, (2500, 5)), rng.uniform(0, 40, 2500)])
    spec = load_spec(TEACHER)
    for what, ref in (("predict", spec.predict(x)), ("components", spec.components(x))):
        got = parallel.score_rows(TEACHER, x, what, workers=2)
        assert got.shape == ref.shape and np.array_equal(got.view(np.uint64), ref.view(np.uint64)), what
    with pytest.raises(ValueError, match="what"):
        parallel.score_rows(TEACHER, x[:10], "heads")
