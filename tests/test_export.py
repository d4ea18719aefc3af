"""The export stage: the ONNX file honours the contract of DESIGN.md (tinyvmaf.export)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from exportkit import DATA_MD5, GIT_COMMIT, REPO, Kit, build_kit, save_ckpt
from omegaconf import OmegaConf

from tinyvmaf.export import (
    REQUIRED_METADATA,
    build_student_graph,
    data_version,
    export_model,
    ort_session,
    run_session,
    winner_val_metrics,
)
from tinyvmaf.gate import edge_rows, torch_reference
from tinyvmaf.libvmaf import FEATURES
from tinyvmaf.student import load_student
from tinyvmaf.ulp import ulp_distance


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return build_kit(tmp_path_factory.mktemp("exportkit"))


@pytest.fixture(scope="session")
def model(kit: Kit) -> onnx.ModelProto:
    return onnx.load(str(kit.onnx))


def _features(kit: Kit, split: str | None = None) -> np.ndarray:
    import pandas as pd

    df = pd.read_parquet(kit.labels)
    if split is not None:
        df = df[df["split"] == split]
    return df[list(FEATURES)].to_numpy(np.float32)


def test_checker_passes_at_opset_17(model: onnx.ModelProto) -> None:
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.ir_version == 8


def test_io_names_shapes_and_dynamic_batch(kit: Kit, model: onnx.ModelProto) -> None:
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "features" and out.name == "vmaf"
    assert inp.type.tensor_type.elem_type == out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    in_dims = [(d.dim_param, d.dim_value) for d in inp.type.tensor_type.shape.dim]
    out_dims = [(d.dim_param, d.dim_value) for d in out.type.tensor_type.shape.dim]
    assert in_dims == [("N", 0), ("", 6)]
    assert out_dims == [("N", 0)]
    sess = ort_session(kit.onnx)
    x = _features(kit)
    for n in (1, 7, len(x)):
        y = sess.run(["vmaf"], {"features": x[:n]})[0]
        assert y.shape == (n,) and y.dtype == np.float32
        assert np.all((y >= 0) & (y <= 100))


def test_metadata(kit: Kit, model: onnx.ModelProto) -> None:
    meta = {p.key: p.value for p in model.metadata_props}
    assert set(REQUIRED_METADATA) <= set(meta)
    assert json.loads(meta["feature_order"]) == list(FEATURES)
    assert meta["teacher"] == "vmaf_v0.6.1"
    assert meta["data_version"] == DATA_MD5
    assert meta["git_commit"] == GIT_COMMIT
    held = json.loads(meta["heldout_metrics"])
    assert held["winner"] == "mlp_32x2"
    assert held["val"] == {"val_plcc": 0.9991, "val_srocc": 0.9987, "val_rmse": 0.81}
    assert set(held["test"]) == {"plcc", "srocc", "rmse", "max_abs", "n"}
    assert held["test"]["n"] == len(_features(kit, "test"))
    assert json.loads(meta["architecture"])["n_parameters"] == load_student(kit.ckpt)[0].n_parameters()


def test_only_plain_ops_in_forward_order(model: onnx.ModelProto) -> None:
    allowed = set(OmegaConf.load(REPO / "params.yaml").gate.allowed_ops)
    ops = [n.op_type for n in model.graph.node]
    assert set(ops) <= allowed
    assert ops == ["Sub", "Div", "Gemm", "Relu", "Gemm", "Relu", "Gemm", "Squeeze", "Clip"]
    assert all(n.domain == "" for n in model.graph.node)


def test_normalisation_is_in_the_graph(kit: Kit, model: onnx.ModelProto) -> None:
    student, _ = load_student(kit.ckpt)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(inits["norm.mean"], student.mean.numpy())
    np.testing.assert_array_equal(inits["norm.std"], student.std.numpy())
    first, second = model.graph.node[0], model.graph.node[1]
    assert (first.op_type, list(first.input)) == ("Sub", ["features", "norm.mean"])
    assert (second.op_type, list(second.input)) == ("Div", [first.output[0], "norm.std"])
    # Raw features in: the scores are the student's on raw features, not on pre-normalised ones.
    x = _features(kit, "test")
    ort = run_session(ort_session(kit.onnx), x)
    assert ulp_distance(ort, torch_reference(student, x)).max() <= 2
    assert np.abs(run_session(ort_session(kit.onnx), (x - inits["norm.mean"]) / inits["norm.std"]) - ort).max() > 1


def test_onnxruntime_matches_torch_within_2_ulp(kit: Kit) -> None:
    student, _ = load_student(kit.ckpt)
    x_all = _features(kit)
    x_edge, _ = edge_rows(x_all, motion2_large=1000.0)
    x = np.concatenate([_features(kit, "test"), x_edge])
    d = ulp_distance(run_session(ort_session(kit.onnx), x), torch_reference(student, x))
    assert d.max() <= 2, f"max {d.max()} ULP"


def test_same_checkpoint_same_bytes(kit: Kit, tmp_path: Path) -> None:
    other = tmp_path / "again.onnx"
    res = export_model(kit.export_config(out=other, model_card=None, figures=None))
    assert other.read_bytes() == kit.onnx.read_bytes()
    assert res.n_bytes == kit.onnx.stat().st_size
    # ... and a different commit is the one thing that changes them.
    third = tmp_path / "third.onnx"
    export_model(kit.export_config(out=third, model_card=None, figures=None, git_commit="f" * 40))
    assert third.read_bytes() != kit.onnx.read_bytes()


@pytest.mark.slow
def test_same_bytes_from_a_fresh_process_via_the_cli(kit: Kit, tmp_path: Path) -> None:
    """The stage CLI in a new interpreter (other hash seed) writes the very same file."""
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    out = tmp_path / "cli.onnx"
    cmd = [sys.executable, "-m", "tinyvmaf.cli", "export", "--params", str(params), "--ckpt", str(kit.ckpt)]
    cmd += ["--labels", str(kit.labels), "--train-metrics", str(kit.train_json), "--out", str(out)]
    cmd += ["--model-card", str(tmp_path / "card.md"), "--figures", str(tmp_path / "fig"), "--git-commit", GIT_COMMIT]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    # data.dvc is read relative to the working directory: run where the kit's one lies.
    proc = subprocess.run(cmd, cwd=kit.root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "exported" in proc.stdout
    assert out.read_bytes() == kit.onnx.read_bytes()


def test_perturbed_checkpoint_changes_bytes(kit: Kit, tmp_path: Path) -> None:
    student, _ = load_student(kit.ckpt)
    a = build_student_graph(student).SerializeToString()
    import torch

    with torch.no_grad():
        student.net[0].weight[0, 0] = torch.nextafter(student.net[0].weight[0, 0], torch.tensor(1e9))
    assert build_student_graph(student).SerializeToString() != a
    save_ckpt(student, tmp_path / "p.ckpt")  # and the contract round-trips the change
    assert load_student(tmp_path / "p.ckpt")[0].net[0].weight[0, 0] == student.net[0].weight[0, 0]


def test_model_card_and_figures(kit: Kit) -> None:
    card = kit.card.read_text()
    n_params = load_student(kit.ckpt)[0].n_parameters()
    for needle in (
        f"parameters: {n_params}",
        f"({kit.onnx.stat().st_size} bytes",
        DATA_MD5,
        "6 → 32 → 32 → 1",
        "| plcc |",
        "| val_plcc | 0.9991 |",
    ):
        assert needle in card, needle
    for name in ("student_vs_teacher.png", "error_vs_features.png"):
        png = kit.figures / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/{name}" in card


def test_provenance_readers(tmp_path: Path) -> None:
    assert data_version(tmp_path / "absent.dvc") == "unknown"
    (tmp_path / "d.dvc").write_text("outs:\n- md5: abc.dir\n  path: data\n")
    assert data_version(tmp_path / "d.dvc") == "abc.dir"
    assert winner_val_metrics(tmp_path / "none.json") == ("unknown", {})
    (tmp_path / "t.json").write_text(
        json.dumps(
            {"winner": "b", "val_plcc": 0.5, "archs": {"a": {"val_plcc": 0.1}, "b": {"val_plcc": 0.9, "width": 8}}}
        )
    )
    assert winner_val_metrics(tmp_path / "t.json") == ("b", {"val_plcc": 0.9})
