"""The interval check, the heads' eval and ``tinyvmaf score --interval`` on a bootstrap teacher's model.

The model under test is the teacher itself, ``vmaf_b_v0.6.3`` exported as its
exact graph (``heads [N, 21]``, the real export code and sidecar): it must pass
every criterion by a wide margin, and mutants of it must fail the criteria
that name what was broken.  A student's own fidelity is the pipeline's gate
(``dvc repro``); here the check's logic is under test.

The labels are the kit's synthetic v0.6.1-feature frames (the bootstrap reads
the same six features); the golden frames are the kit's real golden pass with
the bootstrap's score column added from the callable teacher.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import helper, numpy_helper

from tinyvmaf.cli import main
from tinyvmaf.config import compose_conf, validate
from tinyvmaf.evaluate.interval import EDGE, interval_figures
from tinyvmaf.export.exact import build_exact_graph
from tinyvmaf.gate.interval import interval_check
from tinyvmaf.model.runtime import load_tiny_model
from tinyvmaf.model.sidecar import make_sidecar, write_sidecar
from tinyvmaf.teacher.bootstrap import statistics_doc, statistics_from_components
from tinyvmaf.teacher.spec import load_spec

from kit import REPO, Kit

TEACHER = "vmaf_b_v0.6.3"
MODEL_ID = "vmaf_tiny_fr_b063_nflx"
#: Netflix's vmaf CLI on the 10-bit src01 golden pair, frames 0-2 (issue 18; tests/teacher/test_bootstrap.py).
NETFLIX_SCORE = (83.171225, 81.319807, 79.810998)
NETFLIX_STDDEV = (2.302359, 1.316361, 1.250161)


def write_model(model: onnx.ModelProto, folder: Path) -> Path:
    """``model`` as the student file, with the sidecar export writes for a bootstrap model."""
    spec = load_spec(TEACHER)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{MODEL_ID}.onnx"
    data = model.SerializeToString()
    path.write_bytes(data)
    side = make_sidecar(
        model_id=MODEL_ID,
        onnx_bytes=data,
        opset=17,
        teacher=TEACHER,
        data_version="test",
        heldout={},
        architecture={"type": "svr"},
        training_box={},
        license="BSD-2-Clause-Patent",
        description="the exact graph as a stand-in student",
        features=list(spec.order),
        statistics=statistics_doc(spec.bootstrap),
        n_heads=len(spec.heads),
        exact=True,  # it is the exact graph (its normalisation is the SVR's own, not a scaler)
    )
    write_sidecar(path.with_suffix(".json"), side)
    return path


def permuted(model: onnx.ModelProto, order: list[int], *, add0: float = 0.0) -> onnx.ModelProto:
    """``model`` with its heads reordered (``heads[:, order]``) and ``add0`` added to head 0."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    out = m.graph.output[0].name
    for node in m.graph.node:
        node.output[:] = [f"{o}.inner" if o == out else o for o in node.output]
    m.graph.initializer.append(numpy_helper.from_array(np.array(order, np.int64), "mutant.order"))
    shift = np.zeros(len(order), np.float32)
    shift[0] = add0
    m.graph.initializer.append(numpy_helper.from_array(shift, "mutant.shift"))
    m.graph.node.append(helper.make_node("Gather", [f"{out}.inner", "mutant.order"], ["mutant.g"], axis=1))
    m.graph.node.append(helper.make_node("Add", ["mutant.g", "mutant.shift"], [out]))
    return m


@pytest.fixture(scope="module")
def setup(kit: Kit, tmp_path_factory: pytest.TempPathFactory):
    """A project config with one student, vb063, whose inputs are the kit's frames relabelled by the bootstrap."""
    root = tmp_path_factory.mktemp("interval")
    spec = load_spec(TEACHER)
    labels = pd.read_parquet(kit.labels)
    x = labels[list(spec.order)].to_numpy(np.float64)
    labels["label"] = spec.predict(x)
    (root / "labels").mkdir()
    labels.to_parquet(root / "labels" / f"{TEACHER}.parquet", index=False)
    golden = pd.read_parquet(kit.golden_frames)
    golden[TEACHER] = spec.predict(golden[list(spec.keys)].to_numpy(np.float64))
    golden.to_parquet(root / "golden.parquet", index=False)
    exact = build_exact_graph(spec)
    paths = {
        "labels_dir": root / "labels",
        "golden_frames": root / "golden.parquet",
        "model_dir": root / "model",
        "metrics_dir": root / "metrics",
        "reports_dir": root / "reports",
        "golden_dir": REPO / "assets" / "golden",
    }
    overrides = [f"paths.{k}={v}" for k, v in paths.items()]
    overrides += ["~students.v061", "~students.v1016_3d0h", "~student_archs.v061", "evaluate.dense.count=20000"]
    cfg = validate(compose_conf(REPO / "conf", overrides))
    return cfg, cfg.student("vb063"), exact, root


def test_the_teacher_as_a_model_passes_every_criterion(setup) -> None:
    cfg, st, exact, root = setup
    res = interval_check(cfg, write_model(exact, root / "model"), st)
    assert res.error is None, res.error
    names = [c.name for c in res.criteria]
    assert [n for n in names if n.startswith("dense/head_")] == [
        f"dense/head_{k:02d}/{m}" for k in range(21) for m in ("rmse", "max_abs")
    ]
    for s in ("score", "bagging", "ci_p95_lo", "ci_p95_hi", "stddev", "width"):
        assert f"golden/{s}/pooled_abs_max" in names and f"test/{s}/rmse" in names and f"dense/{s}/rmse" in names
    assert res.passed, [(c.name, c.value) for c in res.criteria if not c.passed]
    # float32 rounding only: far inside the thresholds, and really measured (not zero)
    heads = [c.value for c in res.criteria if c.name.startswith("dense/head_") and c.name.endswith("rmse")]
    assert 0 < max(heads) < 0.002


def test_swapped_heads_fail_by_name(setup, tmp_path: Path) -> None:
    cfg, st, exact, _ = setup
    order = list(range(21))
    order[3], order[7] = 7, 3
    res = interval_check(cfg, write_model(permuted(exact, order), tmp_path / "model"), st)
    failed = [c.name for c in res.criteria if not c.passed]
    # The statistics are symmetric in the collection: only the two heads themselves can tell.
    assert failed and failed[0] == "dense/head_03/rmse", failed
    assert set(failed) == {f"dense/head_{k}/{m}" for k in ("03", "07") for m in ("rmse", "max_abs")}


def test_a_shifted_score_head_fails_the_score(setup, tmp_path: Path) -> None:
    cfg, st, exact, _ = setup
    res = interval_check(cfg, write_model(permuted(exact, list(range(21)), add0=0.3), tmp_path / "model"), st)
    failed = {c.name for c in res.criteria if not c.passed}
    assert {"dense/head_00/rmse", "dense/score/rmse", "test/score/rmse", "golden/score/pooled_abs_max"} <= failed
    assert not any("bagging" in n or "stddev" in n for n in failed), failed  # the collection is untouched


def test_a_single_score_model_is_refused(setup, kit: Kit) -> None:
    cfg, st, _, _ = setup
    with pytest.raises(ValueError, match="heads"):
        interval_check(cfg, kit.onnx, st)


def test_edge_rows_are_measured_apart() -> None:
    boot = load_spec(TEACHER).bootstrap
    rng = np.random.default_rng(3)
    inner = 50 + rng.normal(0, 2, (200, 21))
    edge = 100.02 + rng.normal(0, 0.001, (5, 21))  # raw mean just past 100: libvmaf's stddev slope is ~0
    teacher = np.vstack([inner, edge])
    student = teacher + 0.01
    f = interval_figures(boot, student, teacher)
    assert f["statistics"]["stddev"]["n"] == 200 and f["statistics"]["stddev"]["n_edge"] == 5
    assert f["heads"]["rmse_max"] == pytest.approx(0.01, abs=1e-9)
    # bagging is clipped at 100 like libvmaf's: the 5 rows past it agree exactly, the 200 others are 0.01 off
    assert f["statistics"]["bagging"]["rmse"] == pytest.approx(0.01 * np.sqrt(200 / 205), abs=1e-6)
    mean = teacher[:, 1:].mean(1)
    assert ((mean >= EDGE) & (mean <= 100 - EDGE)).sum() == 200


def test_score_interval_prints_the_statistics_beside_the_teacher(
    setup, golden_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, _, exact, _ = setup
    model = write_model(exact, tmp_path / "model")
    ref = golden_dir / "src01_hrc00_576x324.yuv420p10le.yuv"
    dist = golden_dir / "src01_hrc01_576x324.yuv420p10le.yuv"
    geo = ["--width", "576", "--height", "324", "--pix-fmt", "yuv420p10le"]
    rc = main(["score", str(ref), str(dist), *geo, "--model", str(model), "--interval", "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    doc = json.loads(out)
    frames = doc["interval"]["frames"]
    assert [f["frame"] for f in frames] == [0, 1, 2]
    for f, score, sd in zip(frames, NETFLIX_SCORE, NETFLIX_STDDEV, strict=True):
        assert abs(f["teacher"]["score"] - score) <= 2e-4 and abs(f["teacher"]["stddev"] - sd) <= 2e-4
        ours = f[MODEL_ID]
        for s in ("score", "bagging", "stddev", "ci_p95_lo", "ci_p95_hi"):
            assert abs(ours[s] - f["teacher"][s]) < 2e-3, (s, ours[s], f["teacher"][s])
    assert set(doc["interval"]["pooled"]) == {"teacher", MODEL_ID}
    # the table form names every statistic
    rc = main(["score", str(ref), str(dist), *geo, "--model", str(model), "--interval"])
    text = capsys.readouterr().out
    assert rc == 0 and "ci_p95_lo" in text and "pool" in text


def test_score_interval_with_a_single_score_model_is_a_clear_error(
    kit: Kit, golden_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    ref = golden_dir / "src01_hrc00_576x324.yuv420p10le.yuv"
    geo = ["--width", "576", "--height", "324", "--pix-fmt", "yuv420p10le"]
    rc = main(["score", str(ref), str(ref), *geo, "--model", str(kit.onnx), "--interval"])
    err = capsys.readouterr().err
    assert rc == 2 and "--interval" in err and str(kit.onnx) in err and "single score" in err


def test_the_sidecar_says_how_the_statistics_derive(setup, tmp_path: Path) -> None:
    _, _, exact, _ = setup
    path = write_model(exact, tmp_path / "model")
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["output_name"] == "heads" and side["output_shape"] == [-1, 21]
    assert side["outputs"] == [f"head_{k:02d}" for k in range(21)]
    st = side["statistics"]
    assert st["ci_p95_lo"].startswith("tc1(0.525*s[0] + 0.475*s[1])")
    assert st["ci_p95_hi"].startswith("tc1(0.475*s[18] + 0.525*s[19])")
    assert st["tc1"]["score_clip"] == [0.0, 100.0] and st["tc1"]["transform"] is None
    # tinyvmaf computes them the same way from the loaded model
    m = load_tiny_model(path, order=load_spec(TEACHER).order)
    x = np.array([[0.95, 0.6, 0.85, 0.92, 0.95, 4.0], [0.75, 0.25, 0.5, 0.62, 0.71, 12.0]])
    heads = m.predict_heads(x)
    assert heads.shape == (2, 21)
    ref = statistics_from_components(load_spec(TEACHER).bootstrap, heads.astype(np.float64))
    got = m.statistics(x)
    for s in ref:
        np.testing.assert_array_equal(got[s], ref[s])
    np.testing.assert_array_equal(m.predict(x), ref["score"])


def test_model_check_accepts_the_heads_sidecar(setup, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, _, exact, _ = setup
    path = write_model(exact, tmp_path / "model")
    rc = main(["model", "check", str(path.parent)])
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
