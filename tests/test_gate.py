"""The gate fails when it should, names what failed, and records every check (tinyvmaf.gate)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from exportkit import REPO, Kit, build_kit
from onnx import helper, numpy_helper

from tinyvmaf.cli import main
from tinyvmaf.gate import (
    CHECKS,
    PROJECT_RECIPES,
    CheckResult,
    Criterion,
    GoldenPair,
    _compare_set,
    edge_rows,
    graph_ops,
)


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return build_kit(tmp_path_factory.mktemp("exportkit"))


def gate(
    kit: Kit, tmp: Path, capsys: pytest.CaptureFixture, *args: str, gate_params: dict | None = None
) -> tuple[int, dict, str]:
    """Run ``tinyvmaf gate`` in-process on the kit; returns exit code, gate.json, stdout+stderr."""
    params = kit.params(tmp / "params.yaml", gate=gate_params)
    rc = main(["gate", "--params", str(params), *args])
    out = capsys.readouterr()
    report = json.loads((tmp / "gate.json").read_text()) if (tmp / "gate.json").is_file() else {}
    return rc, report, out.out + out.err


def edited_model(kit: Kit, tmp: Path, edit) -> Path:
    model = onnx.load(str(kit.onnx))
    edit(model)
    path = tmp / "edited.onnx"
    onnx.save(model, str(path))
    return path


def set_init(model: onnx.ModelProto, name: str, fn) -> None:
    for i, t in enumerate(model.graph.initializer):
        if t.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(fn(numpy_helper.to_array(t).copy()), name))
            return
    raise KeyError(name)


# --------------------------------------------------------------------------- a passing run


def test_passing_gate_records_value_and_threshold_for_every_check(
    kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rc, report, text = gate(kit, tmp_path, capsys)
    assert rc == 0, text
    assert report["pass"] is True and report["failed"] == []
    assert list(report["checks"]) == list(CHECKS)
    for name, check in report["checks"].items():
        assert check["pass"] is True, name
        assert check["criteria"], f"{name} has no criteria"
        for cname, c in check["criteria"].items():
            assert {"value", "threshold", "op", "pass"} <= set(c), f"{name}/{cname}"
            assert c["value"] is not None and c["pass"] is True, f"{name}/{cname}"
    golden = report["checks"]["golden"]["criteria"]
    assert {f"project/{r.name}" for r in PROJECT_RECIPES} <= set(golden)
    parity = report["checks"]["parity"]
    assert parity["criteria"]["onnxruntime_vs_torch_ulp"]["threshold"] == 2
    assert parity["details"]["rows"]["edge"] == 20
    assert set(parity["details"]["ungated"]) >= {"onnxruntime_vs_torch_module_forward_ulp"}
    md = (tmp_path / "gate.md").read_text()
    assert "**PASS**" in md and "| parity | onnxruntime_vs_torch_ulp | 0 | <= 2 | pass |" in md


def test_netflix_golden_set_passes(kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture, golden_dir: Path) -> None:
    rc, report, text = gate(
        kit,
        tmp_path,
        capsys,
        "--checks",
        "golden",
        gate_params={"golden_sets": ["netflix"], "netflix_dir": str(golden_dir)},
    )
    assert rc == 0, text
    spec = json.loads((golden_dir / "golden.json").read_text())
    crit = report["checks"]["golden"]["criteria"]
    assert {f"netflix/{p['name']}" for p in spec["pairs"]} <= set(crit)
    assert crit["netflix/sparks_480x270_10bit/motion2"]["threshold"] == 0.0005  # expected_loose


def test_absent_netflix_set_is_skipped(
    kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINYVMAF_GOLDEN_DIR", str(tmp_path / "nowhere"))
    both = {"golden_sets": ["project", "netflix"]}
    rc, report, text = gate(kit, tmp_path, capsys, "--checks", "golden", gate_params=both)
    assert rc == 0, text
    assert "skipped" in report["checks"]["golden"]["details"]["netflix"]
    assert not any(k.startswith("netflix/") for k in report["checks"]["golden"]["criteria"])
    # With nothing else to measure the check cannot vouch for anything: it fails.
    rc, report, _ = gate(kit, tmp_path, capsys, "--checks", "golden", gate_params={"golden_sets": ["netflix"]})
    assert rc == 1 and report["failed"] == ["golden"]


# --------------------------------------------------------------------------- each check fails on purpose


def test_raised_threshold_fails_fidelity(kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, report, text = gate(
        kit,
        tmp_path,
        capsys,
        "--checks",
        "fidelity,ops",
        gate_params={"fidelity": {"plcc_min": 0.99999, "srocc_min": 0.995, "rmse_max": 3.0, "max_abs_max": 20.0}},
    )
    assert rc == 1
    assert report["failed"] == ["fidelity"]
    assert "gate failed: fidelity" in text and "plcc" in text
    crit = report["checks"]["fidelity"]["criteria"]
    assert crit["plcc"]["pass"] is False and crit["plcc"]["threshold"] == 0.99999
    assert crit["rmse"]["pass"] is True


def test_perturbed_weight_fails_parity(kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """One weight of the last layer off by 1e-4 relative: invisible to fidelity, caught in ULPs."""
    last = max(
        int(t.name[5:].split(".")[0]) for t in onnx.load(str(kit.onnx)).graph.initializer if t.name.startswith("layer")
    )

    def nudge(w: np.ndarray) -> np.ndarray:
        j = int(np.argmax(np.abs(w[0])))
        w[0, j] *= np.float32(1 + 1e-4)
        return w

    bad = edited_model(kit, tmp_path, lambda m: set_init(m, f"layer{last}.weight", nudge))
    rc, report, text = gate(kit, tmp_path, capsys, "--model", str(bad), "--checks", "contract,ops,fidelity,parity")
    assert rc == 1
    assert report["failed"] == ["parity"]
    assert "gate failed: parity" in text
    assert report["checks"]["parity"]["criteria"]["onnxruntime_vs_torch_ulp"]["value"] > 2


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


def test_golden_value_off_by_1e_3_fails_golden(kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    golden = tmp_path / "golden"
    golden.mkdir()
    spec = json.loads((REPO / "conf" / "golden" / "project.json").read_text())
    spec["pairs"][0]["expected"]["vmaf"] += 1e-3
    (golden / "project.json").write_text(json.dumps(spec))
    rc, report, text = gate(kit, tmp_path, capsys, "--checks", "golden", "--golden-dir", str(golden))
    assert rc == 1
    assert report["failed"] == ["golden"]
    assert "gate failed: golden" in text
    name = f"project/{spec['pairs'][0]['name']}"
    crit = report["checks"]["golden"]["criteria"]
    assert crit[name]["pass"] is False and crit[name]["value"] == pytest.approx(1e-3, abs=1e-6)
    assert all(c["pass"] for k, c in crit.items() if k != name)


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


# --------------------------------------------------------------------------- units


def test_golden_comparison_boundaries() -> None:
    expected = {"vmaf": 80.0, "adm2": 0.9}
    for dev, ok in ((0.0, True), (4.9e-5, True), (1e-3, False)):
        res = CheckResult("golden")
        _compare_set("s", [GoldenPair("p", None, None, expected)], {"p": {"vmaf": 80.0 + dev, "adm2": 0.9}}, 5e-5, res)
        assert res.passed is ok, dev
    res = CheckResult("golden")
    _compare_set("s", [GoldenPair("p", None, None, expected)], {"p": {"vmaf": 80.0}}, 5e-5, res)
    assert not res.passed  # a missing key is a failure, not a pass


def test_criterion_nan_fails() -> None:
    assert not Criterion("plcc", float("nan"), 0.5, ">=").passed
    assert Criterion("opset", 17, 17, "==").passed
    assert CheckResult("empty").passed is False  # nothing measured vouches for nothing


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
    assert ops == ["Sub", "Div", "Gemm", "Relu", "Squeeze", "Clip"]


def test_regenerating_the_project_golden_set_reproduces_the_pinned_one(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The pinned set is reproducible: same media bytes, same libvmaf numbers."""
    assert (
        main(["gate", "--regenerate-golden", "--golden-dir", str(tmp_path), "--params", str(REPO / "params.yaml")]) == 0
    )
    fresh = json.loads((tmp_path / "project.json").read_text())
    pinned = json.loads((REPO / "conf" / "golden" / "project.json").read_text())
    assert [p["name"] for p in fresh["pairs"]] == [r.name for r in PROJECT_RECIPES]
    for f, p in zip(fresh["pairs"], pinned["pairs"], strict=True):
        assert f["sha256"] == p["sha256"], f["name"]
        assert f["expected"] == p["expected"], f["name"]
    shutil.rmtree(tmp_path)
