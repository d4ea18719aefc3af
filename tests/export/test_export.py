"""The export stage: the ONNX file honours the contract of DESIGN.md, with sidecar, registry, evaluation, card."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tinyvmaf.common.provenance import data_version
from tinyvmaf.contract import FEATURES, REQUIRED_METADATA
from tinyvmaf.export.graph import EMITTED_OPS, build_graph, build_student_graph, pairwise_plan, student_layers
from tinyvmaf.export.stage import ExportPaths, evaluate_model, export_model, winner_val_metrics
from tinyvmaf.model.runtime import load_tiny_model, ort_session
from tinyvmaf.student.checkpoint import load_student, save_student

from kit import DATA_MD5, MODEL_ID, Kit
from synth import TEACHER


@pytest.fixture(scope="session")
def model(kit: Kit) -> onnx.ModelProto:
    return onnx.load(str(kit.onnx))


def _features(kit: Kit, split: str | None = None) -> np.ndarray:
    import pandas as pd

    df = pd.read_parquet(kit.labels)
    if split is not None:
        df = df[df["split"] == split]
    return df[list(FEATURES)].to_numpy(np.float32)


def _student64(kit: Kit, x: np.ndarray) -> np.ndarray:
    student, _ = load_student(kit.ckpt)
    with torch.no_grad():
        return student.double()(torch.from_numpy(x.astype(np.float64))).numpy()


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


def test_metadata_has_provenance_and_no_commit_or_clock(kit: Kit, model: onnx.ModelProto) -> None:
    meta = {p.key: p.value for p in model.metadata_props}
    assert set(REQUIRED_METADATA) <= set(meta)
    assert json.loads(meta["feature_order"]) == list(FEATURES)
    assert meta["teacher"] == "vmaf_v0.6.1"
    assert meta["data_version"] == DATA_MD5
    assert "git_commit" not in meta  # a DVC output must not depend on the commit that records it
    held = json.loads(meta["heldout_metrics"])
    assert held["val"] == {"val_plcc": 0.99999, "val_srocc": 0.99998, "val_rmse": 0.03}
    assert set(held) == {"val", "dense", "test", "golden"}
    assert {"rmse", "max_abs", "p99_abs", "plcc", "srocc", "within", "n"} <= set(held["dense"])
    assert held["test"]["n"] == len(_features(kit, "test"))
    assert "pooled_abs_max" in held["golden"]
    assert json.loads(meta["architecture"])["n_parameters"] == load_student(kit.ckpt)[0].n_parameters()
    assert json.loads(meta["training_box"]) == {"quality_max": 1.25, "motion2_max": 100.0}


#: A dense layer of fan-in 6 (6 → 3 → 1, one leftover) and of fan-in 32 (five halvings), as export writes them.
DENSE_6 = ["Unsqueeze", "Mul", "Slice", "Slice", "Add", "Slice", "Slice", "Slice", "Add", "Add", "Squeeze", "Add"]
DENSE_32 = ["Unsqueeze", "Mul", *["Slice", "Slice", "Add"] * 5, "Squeeze", "Add"]
HARDSWISH = ["Add", "Clip", "Mul", "Div"]


def test_only_plain_ops_in_forward_order(model: onnx.ModelProto) -> None:
    ops = [n.op_type for n in model.graph.node]
    assert set(ops) <= set(EMITTED_OPS)
    assert not {"Gemm", "MatMul", "Sigmoid", "ReduceSum", "HardSwish"} & set(EMITTED_OPS)
    assert ops == ["Sub", "Div", *DENSE_6, *HARDSWISH, *DENSE_32, *HARDSWISH, *DENSE_32, "Squeeze", "Clip"]
    assert all(n.domain == "" for n in model.graph.node)


def test_pairwise_plan() -> None:
    assert pairwise_plan(64) == ([[32, 32], [16, 16], [8, 8], [4, 4], [2, 2], [1, 1]], 8)
    assert pairwise_plan(6) == ([[3, 3], [1, 1, 1]], 5)  # ((x0 + x3) + (x1 + x4)) + (x2 + x5)
    assert pairwise_plan(1) == ([], 2)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 6, 7, 32, 33, 64])
def test_fixed_order_dense_is_the_pairwise_sum(k: int) -> None:
    """One dense layer of any fan-in: the graph's bits are NumPy's float32 pairwise sum in the same order."""
    rng = np.random.default_rng(k)
    w1 = rng.standard_normal((1, k)).astype(np.float32)
    b1 = rng.standard_normal(1).astype(np.float32)
    x = rng.standard_normal((257, 6)).astype(np.float32)
    w0 = rng.standard_normal((k, 6)).astype(np.float32)
    b0 = rng.standard_normal(k).astype(np.float32)
    g = build_graph(np.zeros(6), np.ones(6), [(w0, b0), (w1, b1)], activation="relu")
    (ort,) = ort_session(g.SerializeToString()).run(None, {"features": x})
    h = np.maximum(_pairwise(x, w0) + b0, np.float32(0))
    expected = np.clip(_pairwise(h, w1)[:, 0] + b1[0], np.float32(0), np.float32(100))
    assert np.array_equal(ort.view(np.uint32), expected.view(np.uint32))


def _pairwise(h: np.ndarray, w: np.ndarray) -> np.ndarray:
    p = h[:, None, :] * w[None, :, :]
    levels, _ = pairwise_plan(w.shape[1])
    leftovers = []
    for sizes in levels:
        n = sizes[0]
        leftovers += [p[:, :, 2 * n : 2 * n + 1]] if len(sizes) == 3 else []
        p = p[:, :, :n] + p[:, :, n : 2 * n]
    for c in leftovers:
        p = p + c
    return p[:, :, 0]


def test_activations_export_as_plain_ops() -> None:
    layers = [
        (np.ones((4, 6), np.float32), np.zeros(4, np.float32)),
        (np.ones((1, 4), np.float32), np.zeros(1, np.float32)),
    ]
    dense_4 = ["Unsqueeze", "Mul", "Slice", "Slice", "Add", "Slice", "Slice", "Add", "Squeeze", "Add"]
    for act, ops in (("hardswish", HARDSWISH), ("relu", ["Relu"]), ("silu", ["Sigmoid", "Mul"])):
        g = build_graph(np.zeros(6), np.ones(6), layers, activation=act)
        assert [n.op_type for n in g.graph.node] == ["Sub", "Div", *DENSE_6, *ops, *dense_4, "Squeeze", "Clip"]
    with pytest.raises(ValueError, match="activation"):
        build_graph(np.zeros(6), np.ones(6), layers, activation="tanh")


def test_hardswish_graph_is_torchs_hardswish() -> None:
    """Add(3), Clip(0, 6), Mul, Div(6) is torch's nn.Hardswish to the bit, on every float32 range that matters."""
    import torch

    a = np.concatenate(
        [np.linspace(-8, 8, 200_001, dtype=np.float32), np.random.default_rng(0).normal(0, 50, 100_000)]
    ).astype(np.float32)
    a = np.concatenate([a, np.nextafter(np.float32([-3, 3, 0]), np.float32(9)), np.float32([-3, 3, 0])])
    layers = [
        (np.eye(6, dtype=np.float32), np.zeros(6, np.float32)),
        (np.ones((1, 6), np.float32), np.zeros(1, np.float32)),
    ]
    g = build_graph(np.zeros(6), np.ones(6), layers, activation="hardswish")
    names = [n.output[0] for n in g.graph.node]
    act = names[[n.op_type for n in g.graph.node].index("Div", 2)]  # the first hard-swish's output
    g.graph.output.append(onnx.helper.make_tensor_value_info(act, onnx.TensorProto.FLOAT, ["N", 6]))
    x = np.repeat(a[:, None], 6, axis=1)
    _, hs = ort_session(g.SerializeToString()).run(None, {"features": x})
    expected = torch.nn.functional.hardswish(torch.from_numpy(a)).numpy()
    assert np.array_equal(hs[:, 0].view(np.uint32), expected.view(np.uint32))


def test_the_graph_is_the_student(kit: Kit, model: onnx.ModelProto) -> None:
    """Normalisation inside, raw features in; ONNX Runtime equals the float64 student to float32 accuracy."""
    student, _ = load_student(kit.ckpt)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(inits["norm.mean"], student.mean.numpy())
    np.testing.assert_array_equal(inits["norm.std"], student.std.numpy())
    first, second = model.graph.node[0], model.graph.node[1]
    assert (first.op_type, list(first.input)) == ("Sub", ["features", "norm.mean"])
    assert (second.op_type, list(second.input)) == ("Div", [first.output[0], "norm.std"])
    for (w, b), lin in zip(student_layers(student), student.linears(), strict=True):
        assert np.array_equal(w, lin.weight.detach().numpy()) and np.array_equal(b, lin.bias.detach().numpy())
    x = _features(kit)
    (ort,) = ort_session(kit.onnx).run(None, {"features": x})
    assert np.abs(ort - _student64(kit, x)).max() < 64 * 7.63e-6  # 64 ULPs at VMAF 64
    # Pre-normalised features would score something else entirely: the scaler really is inside.
    (pre,) = ort_session(kit.onnx).run(None, {"features": (x - inits["norm.mean"]) / inits["norm.std"]})
    assert np.abs(pre - ort).max() > 1


def test_same_checkpoint_same_bytes(kit: Kit, tmp_path: Path) -> None:
    # Into a folder of its own (the kit's is read by tests running beside this one under xdist).
    cfg = kit.config(tmp_path, paths={"model_dir": tmp_path / "model"})
    paths = replace(ExportPaths.from_params(cfg), onnx=tmp_path / "model" / f"{MODEL_ID}.onnx")
    res = export_model(cfg, paths)
    assert paths.onnx.read_bytes() == kit.onnx.read_bytes()
    assert res.n_bytes == kit.onnx.stat().st_size
    assert paths.onnx.with_suffix(".json").read_bytes() == kit.onnx.with_suffix(".json").read_bytes()
    exact = f"{cfg.student().config.exact}.onnx"
    assert (paths.exact_onnx.parent / exact).read_bytes() == (kit.model_dir / exact).read_bytes()


@pytest.mark.slow
def test_same_bytes_from_a_fresh_process_via_the_cli(kit: Kit, tmp_path: Path) -> None:
    """The stage CLI in a new interpreter (another hash seed, another working directory) writes the same files."""
    params = kit.params(tmp_path / "run", paths={"model_dir": tmp_path / "cli"})  # not the kit's folder
    out = tmp_path / "cli" / f"{MODEL_ID}.onnx"
    cmd = [sys.executable, "-m", "tinyvmaf.cli", "export", "--params", str(params), "--out", str(out)]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "exported" in proc.stdout
    assert out.read_bytes() == kit.onnx.read_bytes()


def test_perturbed_checkpoint_changes_bytes(kit: Kit, tmp_path: Path) -> None:
    student, _ = load_student(kit.ckpt)
    a = build_student_graph(student).SerializeToString()
    first = student.linears()[0]
    with torch.no_grad():
        first.weight[0, 0] = torch.nextafter(first.weight[0, 0], torch.tensor(1e9))
    assert build_student_graph(student).SerializeToString() != a
    save_student(student, tmp_path / "p.ckpt")  # and the contract round-trips the change
    assert load_student(tmp_path / "p.ckpt")[0].linears()[0].weight[0, 0] == first.weight[0, 0]


def test_sidecar_and_registry_round_trip(kit: Kit) -> None:
    """What libvmaf's loaders read, and what tinyvmaf's runtime reads back."""
    side = json.loads(kit.onnx.with_suffix(".json").read_text())
    data = kit.onnx.read_bytes()
    import hashlib

    assert side["sha256"] == hashlib.sha256(data).hexdigest()
    assert (side["id"], side["kind"], side["onnx"], side["quant_mode"]) == (MODEL_ID, "fr", f"{MODEL_ID}.onnx", "fp32")
    assert (side["input_name"], side["output_name"]) == ("features", "vmaf")
    assert side["input_shape"] == [-1, 6] and side["output_shape"] == [-1]
    assert side["features"] == list(FEATURES) and side["onnx_has_scaler"] is True
    assert "input_mean" not in side and "input_std" not in side  # nothing that could scale twice
    assert side["opset"] == side["onnx_opset"] == 17
    assert side["teacher"] == "vmaf_v0.6.1" and side["data_version"] == DATA_MD5
    assert not {"git_commit", "timestamp", "created"} & set(side)
    reg = json.loads((kit.model_dir / "registry.json").read_text())
    assert reg["schema_version"] == 1
    (entry,) = [m for m in reg["models"] if m["id"] == MODEL_ID]
    assert {k: entry[k] for k in ("id", "kind", "onnx", "sha256", "opset")} == {
        k: side[k] for k in ("id", "kind", "onnx", "sha256", "opset")
    }
    loaded = load_tiny_model(kit.onnx)
    assert loaded.name == MODEL_ID and loaded.features == FEATURES and loaded.scaler_in_graph
    assert loaded.external_scaler is None and loaded.warnings == []


def test_evaluation_and_model_card(kit: Kit) -> None:
    out = kit.root / "export"
    ev = json.loads((out / "metrics" / TEACHER / "eval.json").read_text())
    exact = "vmaf_v0_6_1_exact"
    # no swept archs beside the kit; the teacher's exact graph is the reference row
    assert set(ev) == {MODEL_ID, exact, "vmaf_tiny_v2", "vmaf_tiny_v3", "vmaf_tiny_v4", "subjective"}
    assert ev[MODEL_ID]["n_params"] == 1313 and ev["vmaf_tiny_v4"]["n_params"] == 3073  # v4's sidecar says 3073
    assert ev[exact]["n_params"] == 211 * 6 + 211 + 14 + 2 + 2  # SVs, coefficients, slopes/intercepts, gamma/rho, clip
    assert ev[exact]["dense"]["rmse"] < 5e-3 and ev[exact]["dense"]["max_abs"] < 0.01  # float32 rounding only
    assert "skipped" in ev["subjective"]  # the kit's labels carry no MOS
    for name, figs in ev.items():
        if name == "subjective":
            continue
        assert set(figs) == {"dense", "test", "golden", "n_params"}
        assert figs["dense"]["n"] == 100_000 and set(figs["golden"]["pooled"]) >= {"src01_576x324_10bit"}
    card = (out / "reports" / TEACHER / "model_card.md").read_text()
    n_params = load_student(kit.ckpt)[0].n_parameters()
    for needle in (
        f"parameters: {n_params}",
        f"({kit.onnx.stat().st_size} bytes",
        DATA_MD5,
        "6 → 32 → 32 → 1 (hardswish)",
        "Held-out dense set",
        "| vmaf_tiny_v4 |",
        "| val_plcc | 0.99999 |",
        "src01_576x324_10bit",
        "Not computed for this data",  # no loco.json beside this kit
    ):
        assert needle in card, needle
    for name in ("student_vs_teacher.png", "error_vs_teacher.png", "error_vs_features.png"):
        png = out / "reports" / TEACHER / "figures" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/{name}" in card


def test_model_card_shows_loco_and_says_when_it_is_stale(kit: Kit, tmp_path: Path) -> None:
    fold = {"n": 48, "rmse": 0.02, "max_abs": 0.1, "p99_abs": 0.05, "plcc": 0.99999, "srocc": 0.99998, "within": 1.0}
    loco = {
        "arch": "mlp_64x3",
        "data_version": "other.dir",
        "folds": {"c01": fold},
        "worst": {"rmse": 0.02, "max_abs": 0.1},
    }
    (tmp_path / "loco").mkdir()
    (tmp_path / "loco" / f"{TEACHER}.json").write_text(json.dumps(loco))
    archs = tmp_path / "models" / TEACHER / "archs"
    archs.mkdir(parents=True)
    shutil.copy(kit.ckpt, archs / "mlp_32x2.ckpt")  # a swept arch's checkpoint: measured too
    shutil.copy(kit.ckpt, archs.parent / "best.ckpt")
    cfg = kit.config(
        tmp_path, paths={"models_dir": tmp_path / "models", "model_dir": tmp_path / "m", "loco_dir": tmp_path / "loco"}
    )
    export_model(cfg, ExportPaths.from_params(cfg))
    evaluate_model(cfg, ExportPaths.from_params(cfg))
    card = (tmp_path / "reports" / TEACHER / "model_card.md").read_text()
    assert "| c01 | 48 | 0.0200 |" in card and "**Stale:**" in card and "other.dir" in card
    ev = json.loads((tmp_path / "metrics" / TEACHER / "eval.json").read_text())
    assert ev["sweep/mlp_32x2"]["dense"] == ev[MODEL_ID]["dense"]  # the same weights, the same figures
    assert "| sweep/mlp_32x2 | 1,313 |" in card


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
