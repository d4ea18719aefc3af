"""The evaluation: held-out dense set, pooled errors, peers side by side, leave-one-content-out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tinyvmaf.cli import main
from tinyvmaf.evaluate.loco import fold_labels, run_loco
from tinyvmaf.evaluate.measure import measure, measure_models
from tinyvmaf.evaluate.sets import EvalSet, dense_rows, golden_set, split_set
from tinyvmaf.teacher import load_teacher

from conftest import config
from kit import REPO, Kit
from synth import TEACHER, synthetic_features


def test_dense_set_is_its_own_distribution() -> None:
    cfg = config().evaluate.dense
    a, b = dense_rows(cfg), dense_rows(cfg)
    np.testing.assert_array_equal(a, b)  # seeded
    assert len(a) == cfg.count == 100_000
    lo, hi = np.asarray(cfg.lo), np.asarray(cfg.hi)
    assert (a[:, :5] >= lo).all() and (a[:, :5] <= hi).all()
    assert a[:, 5].max() <= cfg.motion2[1] and (a[:, 5] == 0).mean() == pytest.approx(cfg.motion2_zero, abs=0.005)
    corr = np.corrcoef(a[:, :5].T)
    assert corr[np.triu_indices(5, 1)].min() > 0.5  # the copula correlates the quality features
    box = config().sample.bounds
    assert hi.max() <= box.quality_max and cfg.motion2[1] <= box.motion2_max  # inside what the student was taught


def test_pooled_errors_are_per_pair_means() -> None:
    x = np.zeros((6, 6), np.float32)
    y = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    s = EvalSet("g", x, y, np.array(["a", "a", "a", "b", "b", "b"]))
    out = measure(lambda _: y + np.array([1.0, -1.0, 0.5, 0.0, 0.0, 3.0]), s, within=0.5)
    assert out["pooled"]["a"]["diff"] == pytest.approx(0.5 / 3, abs=1e-6)  # rounded to 6 places
    assert out["pooled"]["b"]["diff"] == pytest.approx(1.0)
    assert out["pooled_abs_max"] == pytest.approx(1.0)
    assert out["within"] == pytest.approx(3 / 6)  # |error| <= 0.5: 0.5, 0 and 0


def test_a_nan_anywhere_makes_the_worst_pooled_error_nan() -> None:
    """Python's max() skips a NaN unless it comes first; the worst pooled error must carry it wherever it is."""
    x = np.zeros((6, 6), np.float32)
    y = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    s = EvalSet("g", x, y, np.array(["a", "a", "b", "b", "c", "c"]))
    for row in range(6):  # the NaN in the first, the middle and the last pair
        pred = y + 0.01
        pred[row] = np.nan
        out = measure(lambda _, p=pred: p, s, within=0.5)
        assert np.isnan(out["pooled_abs_max"]), row
        for k in ("rmse", "max_abs", "plcc", "srocc"):
            assert np.isnan(out[k]), (row, k)
    teacher_nan = EvalSet("g", x, np.array([10.0, 20.0, 30.0, np.nan, 50.0, 60.0]), s.groups)
    assert np.isnan(measure(lambda _: y, teacher_nan, within=0.5)["pooled_abs_max"])


def test_an_empty_set_is_an_error_naming_it() -> None:
    empty = EvalSet("test", np.zeros((0, 6), np.float32), np.zeros(0), np.array([], dtype=str))
    with pytest.raises(ValueError, match="'test' has 0 row"):
        measure(lambda x: np.zeros(len(x)), empty, within=0.5)


def test_peers_are_measured_on_the_same_rows(kit: Kit) -> None:
    from tinyvmaf.evaluate.peers import load_peers

    peers = load_peers(REPO / "assets" / "peers", ["vmaf_tiny_v2", "vmaf_tiny_v4"])
    sets = [split_set(kit.labels, "test", TEACHER), golden_set(kit.golden_frames, TEACHER)]
    res = measure_models({n: m.predict for n, m in peers.items()}, sets, within=0.5)
    assert set(res) == {"vmaf_tiny_v2", "vmaf_tiny_v4"}
    for r in res.values():
        assert r["test"]["n"] == len(sets[0]) and r["golden"]["n"] == 16
    with pytest.raises(FileNotFoundError, match="vmaf_tiny_v9"):
        load_peers(REPO / "assets" / "peers", ["vmaf_tiny_v9"])


def test_eval_cli_prints_one_table_per_set(kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    params = kit.params(tmp_path)
    assert main(["eval", "--params", str(params), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) == {"vmaf_tiny_fr_v2_nflx", "vmaf_v0_6_1_exact", "vmaf_tiny_v2", "vmaf_tiny_v3", "vmaf_tiny_v4"}
    ours, v4 = res["vmaf_tiny_fr_v2_nflx"], res["vmaf_tiny_v4"]
    for s in ("dense", "test", "golden"):
        assert ours[s]["rmse"] < v4[s]["rmse"] and ours[s]["max_abs"] < v4[s]["max_abs"], s


def test_loco_folds_hold_one_content_out(tmp_path: Path) -> None:
    df = synthetic_features(n_contents=4, n_hrcs=3, n_frames=6, seed=5, keys=False)
    df["label"] = df[TEACHER]
    df["mos100"] = np.nan
    df["split"] = "train"
    fold = fold_labels(df, "c02")
    assert set(fold.loc[fold["content"] == "c02", "split"]) == {"test"}
    assert set(fold.loc[fold["content"] != "c02", "split"]) == {"train"}
    labels = tmp_path / "labels.parquet"
    df.to_parquet(labels, index=False)
    (tmp_path / "data.dvc").write_text("outs:\n- md5: abc.dir\n  path: data\n")
    cfg = config("sample.count=3000", "sample.val_count=500", "train.epochs=1", "evaluate.loco.arch=mlp_32x2")
    doc = run_loco(cfg, labels, tmp_path / "loco.json", data_dvc=tmp_path / "data.dvc", contents=["c01", "c03"], jobs=1)
    assert list(doc["folds"]) == ["c01", "c03"] and doc["arch"] == "mlp_32x2" and doc["data_version"] == "abc.dir"
    for c, f in doc["folds"].items():
        assert f["n"] == int((df["content"] == c).sum()) and f["rmse"] > 0
    assert doc["worst"]["rmse"] == max(f["rmse"] for f in doc["folds"].values())
    assert json.loads((tmp_path / "loco.json").read_text()) == doc
    with pytest.raises(KeyError, match="no content"):
        run_loco(cfg, labels, tmp_path / "x.json", data_dvc=tmp_path / "data.dvc", contents=["c99"], jobs=1)


def test_teacher_labels_of_the_dense_set_are_the_callable_teacher() -> None:
    from tinyvmaf.evaluate.sets import dense_set

    s = dense_set(config("evaluate.dense.count=1000").evaluate.dense, TEACHER)
    np.testing.assert_array_equal(s.y, load_teacher(TEACHER).predict(s.x.astype(np.float64)))
    assert s.x.dtype == np.float32 and isinstance(pd.Series(s.y).sum(), float)
