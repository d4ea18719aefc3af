"""The gate fails when it should, names what failed, and records every check (tinyvmaf.gate)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import helper, numpy_helper

from tinyvmaf.cli import main
from tinyvmaf.common.checks import CheckResult, Criterion
from tinyvmaf.gate.contract import graph_ops
from tinyvmaf.gate.parity import edge_rows
from tinyvmaf.gate.stage import BOOTSTRAP_ONLY, CHECKS

from kit import Kit
from synth import TEACHER


def gate(
    kit: Kit,
    tmp: Path,
    capsys: pytest.CaptureFixture,
    *args: str,
    overrides: tuple[str, ...] = (),
    paths: dict[str, Path] | None = None,
) -> tuple[int, dict, str]:
    """Run ``tinyvmaf gate`` in-process on the kit; returns exit code, gate.json, stdout+stderr."""
    params = kit.params(tmp, *overrides, paths=paths)
    rc = main(["gate", "--params", str(params), *args])
    out = capsys.readouterr()
    from tinyvmaf.config import load_params

    path = Path(load_params(params).student().paths.gate_metrics)  # metrics/<the student's teacher>/gate.json
    report = json.loads(path.read_text()) if path.is_file() else {}
    return rc, report, out.out + out.err


def edited_model(kit: Kit, tmp: Path, edit: Callable[[onnx.ModelProto], None], name: str = "edited.onnx") -> Path:
    model = onnx.load(str(kit.onnx))
    edit(model)
    path = tmp / name
    onnx.save(model, str(path))
    return path


def set_init(model: onnx.ModelProto, name: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    for i, t in enumerate(model.graph.initializer):
        if t.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(fn(numpy_helper.to_array(t).copy()), name))
            return
    raise KeyError(name)


def bypass(model: onnx.ModelProto, op_type: str, which: int = 0) -> None:
    """Remove the ``which``-th node of ``op_type``: what consumed its output now consumes its first input."""
    nodes = list(model.graph.node)
    node = [n for n in nodes if n.op_type == op_type][which]
    nodes.remove(node)
    src, dst = node.input[0], node.output[0]
    if dst in {o.name for o in model.graph.output}:  # keep the graph's output name: rename the producer's
        for n in nodes:
            n.output[:] = [dst if o == src else o for o in n.output]
            n.input[:] = [dst if i == src else i for i in n.input]
    else:
        for n in nodes:
            n.input[:] = [src if i == dst else i for i in n.input]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def swap_mean_std(model: onnx.ModelProto) -> None:
    arrays = {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer}
    set_init(model, "norm.mean", lambda _: arrays["norm.std"])
    set_init(model, "norm.std", lambda _: arrays["norm.mean"])


# --------------------------------------------------------------------------- a passing run


def test_passing_gate_records_value_and_threshold_for_every_check(
    kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rc, report, text = gate(kit, tmp_path, capsys)
    assert rc == 0, text
    assert report["pass"] is True and report["failed"] == []
    # every check, but the bootstrap-only ones: a v0.6.1 student has no heads
    assert list(report["checks"]) == [c for c in CHECKS if c not in BOOTSTRAP_ONLY]
    for name, check in report["checks"].items():
        assert check["pass"] is True, name
        assert check["criteria"], f"{name} has no criteria"
        for cname, c in check["criteria"].items():
            assert {"value", "threshold", "op", "pass"} <= set(c), f"{name}/{cname}"
            assert c["value"] is not None and c["pass"] is True, f"{name}/{cname}"
    fid = report["checks"]["fidelity"]["criteria"]
    assert fid["dense/rmse"]["threshold"] == 0.05 and fid["dense/max_abs"]["threshold"] == 0.5
    assert fid["golden/pooled_abs_max"]["threshold"] == 0.1
    parity = report["checks"]["parity"]
    assert parity["criteria"]["onnxruntime_vs_student64_ulp"]["threshold"] == 64
    assert parity["criteria"]["onnxruntime_bound_ratio"]["value"] <= 1
    for backend in ("onnxruntime", "onnxruntime_unoptimised"):  # the same bits: 0 of the 2 ULPs allowed
        assert parity["criteria"][f"{backend}_vs_reference_evaluator_ulp"] == {
            "value": 0.0, "threshold": 2, "op": "<=", "pass": True
        }  # fmt: skip
    assert parity["details"]["rows"] == {"test": 144, "edge": 20, "random": 20000, "unseen": 20000}
    assert parity["details"]["ungated"]["graph_order_float32_vs_onnxruntime_bit_ulp"] == 0
    md = (tmp_path / "reports" / TEACHER / "gate.md").read_text()
    assert "**PASS**" in md and "| parity | onnxruntime_bound_ratio |" in md


# --------------------------------------------------------------------------- each check fails on purpose


def test_raised_threshold_fails_fidelity(kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, report, text = gate(
        kit, tmp_path, capsys, "--checks", "fidelity,ops", overrides=("gate.fidelity.dense.rmse_max=0.0001",)
    )
    assert rc == 1
    assert report["failed"] == ["fidelity"]
    assert "gate failed: fidelity" in text and "dense/rmse" in text
    crit = report["checks"]["fidelity"]["criteria"]
    assert crit["dense/rmse"]["pass"] is False and crit["dense/rmse"]["threshold"] == 0.0001
    assert crit["test/rmse"]["pass"] is True


def _init_names(kit: Kit) -> list[str]:
    return [t.name for t in onnx.load(str(kit.onnx)).graph.initializer]


def _last_layer(kit: Kit) -> int:
    return max(int(n[5:].split(".")[0]) for n in _init_names(kit) if n.startswith("layer"))


def _nudge(w: np.ndarray) -> np.ndarray:
    i = np.unravel_index(int(np.argmax(np.abs(w))), w.shape)  # the largest weight
    w[i] *= np.float32(1 + 1e-4)
    return w


def remove_activation(model: onnx.ModelProto, layer: int = 0) -> None:
    """Drop layer ``layer``'s hard-swish (its Add, Clip, Mul, Div): the next layer reads the pre-activation."""
    nodes = list(model.graph.node)
    act = next(n for n in nodes if n.name == f"layer{layer}_hardswish")
    pre = next(n for n in nodes if n.name == f"layer{layer}_plus3").input[0]
    drop = {f"layer{layer}_{s}" for s in ("plus3", "relu6", "times", "hardswish")}
    kept = [n for n in nodes if n.name not in drop]
    for n in kept:
        n.input[:] = [pre if i == act.output[0] else i for i in n.input]
    del model.graph.node[:]
    model.graph.node.extend(kept)


MUTATIONS: dict[str, Callable[[onnx.ModelProto], None]] = {
    "missing_activation": remove_activation,
    "missing_clip": lambda m: bypass(m, "Clip", -1),  # the output's Clip(0, 100), not hard-swish's Clip(0, 6)
    "swapped_mean_std": swap_mean_std,
    "transposed_weight": lambda m: set_init(m, "layer1.weight_t", lambda w: np.ascontiguousarray(w.T)),
    "permuted_features": lambda m: set_init(  # weights are stored [in, out]: rows are features
        m, "layer0.weight_t", lambda w: np.ascontiguousarray(w[[1, 0, 2, 3, 4, 5], :])
    ),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_mutated_graph_fails_parity_by_name(
    kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture, mutation: str
) -> None:
    bad = edited_model(kit, tmp_path, MUTATIONS[mutation], f"{mutation}.onnx")
    rc, report, text = gate(kit, tmp_path, capsys, "--model", str(bad), "--checks", "parity")
    assert rc == 1, mutation
    assert report["failed"] == ["parity"] and "gate failed: parity" in text
    crit = report["checks"]["parity"]["criteria"]
    assert not crit["onnxruntime_vs_student64_ulp"]["pass"] and not crit["onnxruntime_bound_ratio"]["pass"], mutation


def test_missing_relu_fails_parity(tmp_path: Path, capsys: pytest.CaptureFixture, kit: Kit) -> None:
    """The same mutation test for a ReLU student: a ReLU removed is caught too."""
    import torch

    from tinyvmaf.export.graph import build_student_graph
    from tinyvmaf.student.checkpoint import load_student, save_student
    from tinyvmaf.student.network import StudentMLP

    trained, _ = load_student(kit.ckpt)
    relu = StudentMLP(32, 2, activation="relu", dropout=0.0)
    relu.load_state_dict(trained.state_dict())
    with torch.no_grad():
        for lin in relu.linears()[:-1]:
            lin.bias.add_(2.0)  # make sure every unit is active somewhere, so ReLU matters
    ckpt = save_student(relu, tmp_path / "relu.ckpt")
    good = tmp_path / "relu.onnx"
    good.write_bytes(build_student_graph(relu).SerializeToString())
    model = onnx.load(str(good))
    bypass(model, "Relu", 0)
    bad = tmp_path / "norelu.onnx"
    onnx.save(model, str(bad))
    rc, _, text = gate(kit, tmp_path, capsys, "--model", str(good), "--ckpt", str(ckpt), "--checks", "parity")
    assert rc == 0, text
    rc, report, _ = gate(kit, tmp_path, capsys, "--model", str(bad), "--ckpt", str(ckpt), "--checks", "parity")
    assert rc == 1 and report["failed"] == ["parity"]


def test_perturbed_weight_fails_parity(kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """One weight of the last layer off by 1e-4 relative: invisible to fidelity, caught by parity."""
    bad = edited_model(kit, tmp_path, lambda m: set_init(m, f"layer{_last_layer(kit)}.weight_t", _nudge))
    rc, report, text = gate(kit, tmp_path, capsys, "--model", str(bad), "--checks", "contract,ops,fidelity,parity")
    assert rc == 1
    assert report["failed"] == ["parity"]
    assert report["checks"]["parity"]["criteria"]["onnxruntime_vs_student64_ulp"]["value"] > 64


def test_disallowed_op_fails_ops(kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    def add_abs(m: onnx.ModelProto) -> None:
        nodes = list(m.graph.node)
        clip = next(i for i, n in enumerate(nodes) if n.op_type == "Clip")
        src = nodes[clip].input[0]
        nodes[clip].input[0] = "score_abs"
        nodes.insert(clip, helper.make_node("Abs", [src], ["score_abs"], name="abs"))
        del m.graph.node[:]
        m.graph.node.extend(nodes)
        onnx.checker.check_model(m)  # still a valid model: only the op list is wrong

    bad = edited_model(kit, tmp_path, add_abs)
    rc, report, text = gate(kit, tmp_path, capsys, "--model", str(bad), "--checks", "contract,ops")
    assert rc == 1
    assert report["failed"] == ["ops"]
    assert "gate failed: ops" in text
    assert report["checks"]["ops"]["details"]["disallowed"] == ["Abs"]
    assert report["checks"]["ops"]["criteria"]["disallowed_ops"] == {
        "value": 1,
        "threshold": 0,
        "op": "<=",
        "pass": False,
        "info": "Abs",
    }


def test_golden_check_reads_the_golden_stage(kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, report, text = gate(kit, tmp_path, capsys, "--checks", "golden")
    assert rc == 0, text
    assert report["checks"]["golden"]["details"]["netflix"]["netflix/src01_576x324_10bit"] < 5e-5
    # A failed golden stage fails the gate; so does a golden report made for another teacher.
    doc = json.loads(kit.golden_metrics.read_text())
    doc["checks"]["netflix"]["pass"] = False
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps(doc))
    rc, report, _ = gate(kit, tmp_path, capsys, "--checks", "golden", overrides=(f"paths.golden_metrics={failed}",))
    assert rc == 1 and report["checks"]["golden"]["criteria"]["golden_checks_failed"]["info"] == "netflix"
    rc, report, _ = gate(
        kit, tmp_path, capsys, "--checks", "golden", overrides=("students.v061.teacher=vmaf_4k_v0.6.1",)
    )
    assert rc == 1 and not report["checks"]["golden"]["criteria"]["golden_teacher_scored"]["pass"]
    absent = tmp_path / "absent.json"
    rc, report, _ = gate(kit, tmp_path, capsys, "--checks", "golden", overrides=(f"paths.golden_metrics={absent}",))
    assert rc == 1 and "dvc repro golden" in report["checks"]["golden"]["error"]


def test_missing_model_fails_the_checks_that_need_it(kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, report, text = gate(kit, tmp_path, capsys, "--model", str(tmp_path / "absent.onnx"), "--checks", "contract,ops")
    assert rc == 1
    assert report["failed"] == ["contract", "ops"]
    assert "absent.onnx" in report["checks"]["contract"]["error"]


def test_contract_names_a_wrong_io(kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    def fix_batch(m: onnx.ModelProto) -> None:
        m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1  # static batch: not the contract

    bad = edited_model(kit, tmp_path, fix_batch)
    rc, report, _ = gate(kit, tmp_path, capsys, "--model", str(bad), "--checks", "contract")
    assert rc == 1 and report["failed"] == ["contract"]
    assert any("symbolic batch" in p for p in report["checks"]["contract"]["details"]["problems"])


def test_an_empty_test_set_fails_fidelity_by_name(kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """No test frames (0 rows): the fidelity check fails naming the set, instead of crashing or passing."""
    labels = pd.read_parquet(kit.labels)
    labels.loc[labels["split"] == "test", "split"] = "val"
    (tmp_path / "no-test").mkdir()
    labels.to_parquet(tmp_path / "no-test" / f"{TEACHER}.parquet", index=False)
    rc, report, text = gate(kit, tmp_path, capsys, "--checks", "fidelity", paths={"labels_dir": tmp_path / "no-test"})
    assert rc == 1 and report["failed"] == ["fidelity"], text
    fid = report["checks"]["fidelity"]
    assert fid["error"] is None  # measured what it could: a criterion names the empty set
    crit = fid["criteria"]
    assert crit["test/rows"] == {"value": 0, "threshold": 2, "op": ">=", "pass": False}
    for k in ("test/rmse", "test/max_abs", "test/plcc", "test/srocc"):
        assert crit[k]["value"] is None and crit[k]["pass"] is False, k
    assert crit["dense/rows"]["pass"] and crit["dense/rmse"]["pass"] and crit["golden/pooled_abs_max"]["pass"]
    assert "test/rows = 0 (needs >= 2)" in text


def test_a_nan_in_a_later_golden_pair_fails_the_pooled_criterion(
    kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """max() would skip a NaN pooled error that does not come first; the worst pooled error must not."""
    frames = pd.read_parquet(kit.golden_frames)
    netflix = frames.index[frames["set"] == "netflix"]
    last_pair = frames.loc[netflix, "pair"].iloc[-1]
    assert last_pair != frames.loc[netflix, "pair"].iloc[0]
    frames.loc[netflix[-1], "vmaf_v0.6.1"] = np.nan  # the teacher's score of the last pair's last frame
    path = tmp_path / "golden-nan.parquet"
    frames.to_parquet(path, index=False)
    rc, report, _ = gate(kit, tmp_path, capsys, "--checks", "fidelity", overrides=(f"paths.golden_frames={path}",))
    assert rc == 1 and report["failed"] == ["fidelity"]
    crit = report["checks"]["fidelity"]["criteria"]
    assert crit["golden/pooled_abs_max"]["value"] is None and crit["golden/pooled_abs_max"]["pass"] is False
    assert crit["dense/rmse"]["pass"] and crit["test/rmse"]["pass"]
    pooled = report["checks"]["fidelity"]["details"]["figures"]["golden"]["pooled"]
    assert np.isnan(pooled[last_pair]["diff"]) and not np.isnan(pooled[frames.loc[netflix, "pair"].iloc[0]]["diff"])


# --------------------------------------------------------------------------- units


def test_criterion_nan_fails() -> None:
    assert not Criterion("plcc", float("nan"), 0.5, ">=").passed
    assert not Criterion("rmse", float("nan"), 0.5, "<=").passed
    assert Criterion("opset", 17, 17, "==").passed
    assert CheckResult("empty").passed is False  # nothing measured vouches for nothing
    with pytest.raises(ValueError, match="op"):
        Criterion("x", 1, 1, "<")


def test_criterion_fails_closed_on_none_nan_and_inf() -> None:
    """A value or threshold that is None, NaN (NumPy's too) or infinite fails every comparison."""
    for value in (None, float("nan"), np.float32("nan"), np.float64("nan"), float("inf"), -float("inf")):
        for op in (">=", "<=", "=="):
            assert not Criterion("x", value, 0.5, op).passed, (value, op)
    assert not Criterion("rmse", 0.01, float("inf"), "<=").passed  # an infinite bound switches nothing off
    assert not Criterion("rmse", 0.01, float("nan"), "<=").passed
    assert Criterion("rmse", np.float32(0.01), 0.05, "<=").passed and Criterion("n", np.int64(3), 2, ">=").passed
    assert not Criterion("flag", True, 1, "==").passed  # a bool is not a measurement


def test_edge_rows_cover_the_corners() -> None:
    x = np.array([[0.5, 0.1, 0.2, 0.3, 0.4, 0.0], [1.0, 0.9, 0.95, 0.97, 0.99, 30.0]], np.float32)
    rows, names = edge_rows(x, motion2_large=1000.0)
    assert len(rows) == len(names) == 20
    np.testing.assert_array_equal(rows[names.index("all_min")], x.min(0))
    np.testing.assert_array_equal(rows[names.index("all_max")], x.max(0))
    assert rows[names.index("motion2_large_median"), 5] == 1000.0
    assert rows[names.index("motion2_zero_all_max"), 5] == 0.0


def test_graph_ops(kit: Kit) -> None:
    ops = [op for _, op in graph_ops(onnx.load(str(kit.onnx)))]
    assert ops == ["Sub", "Div", "Unsqueeze", "Mul", "Slice", "Add", "Squeeze", "Clip"]
