"""`tinyvmaf score` and `score(...)`: any tiny model beside the teacher (tinyvmaf.scoring)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from tinyvmaf.cli import main
from tinyvmaf.contract import FEATURES
from tinyvmaf.model.runtime import ModelContractError, load_tiny_model, ort_session
from tinyvmaf.scoring import score
from tinyvmaf.scoring.scorer import outside_box

from kit import MODEL_ID, REPO, Kit

PEERS = REPO / "assets" / "peers"


@pytest.fixture(scope="session")
def pair(golden_dir: Path) -> dict:
    """The 10-bit src01 pair of Netflix's golden set (3 frames, VMAF 82.564)."""
    spec = json.loads((golden_dir / "golden.json").read_text())
    p = next(p for p in spec["pairs"] if p["name"] == "src01_576x324_10bit")
    return {**p, "tolerance": spec["tolerance"], "ref": golden_dir / p["ref"], "dist": golden_dir / p["dist"]}


def _geometry(pair: dict) -> list[str]:
    return ["--width", str(pair["width"]), "--height", str(pair["height"]), "--pix-fmt", pair["pix_fmt"]]


def _argv(pair: dict, *models: Path, extra: tuple[str, ...] = ()) -> list[str]:
    argv = ["score", str(pair["ref"]), str(pair["dist"]), *_geometry(pair)]
    for m in models:
        argv += ["--model", str(m)]
    return [*argv, *extra]


def _kw(pair: dict) -> dict:
    return {"width": pair["width"], "height": pair["height"], "pix_fmt": pair["pix_fmt"]}


def test_cli_prints_every_model_beside_the_teacher(kit: Kit, pair: dict, capsys: pytest.CaptureFixture) -> None:
    peers = [PEERS / f"vmaf_tiny_v{v}.onnx" for v in (2, 3, 4)]
    assert main(_argv(pair, kit.onnx, *peers)) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["frame"])
    names = [MODEL_ID, "vmaf_tiny_v2", "vmaf_tiny_v3", "vmaf_tiny_v4"]
    assert header.split() == ["frame", "vmaf_v0.6.1", *names]
    rows = lines[lines.index(header) + 1 :]
    assert len(rows) == pair["frames"] + 2 and rows[-2].split()[0] == "pool" and rows[-1].split()[0] == "diff"
    pool, diff = rows[-2].split(), rows[-1].split()
    assert float(pool[1]) == pytest.approx(pair["expected"]["vmaf"], abs=1e-4)
    for i in range(len(names)):
        assert float(diff[1 + i]) == pytest.approx(float(pool[2 + i]) - float(pool[1]), abs=2e-4)


def test_peers_score_what_onnxruntime_gives_on_raw_features(pair: dict) -> None:
    """Each peer, through tinyvmaf, equals ONNX Runtime run by hand on the raw canonical-6 features."""
    res = score(pair["ref"], pair["dist"], [PEERS / f"vmaf_tiny_v{v}.onnx" for v in (2, 3, 4)], **_kw(pair))
    x = np.array([[f[k] for k in FEATURES] for f in res["frames"]], dtype=np.float32)
    for v in (2, 3, 4):
        (by_hand,) = ort_session(PEERS / f"vmaf_tiny_v{v}.onnx").run(None, {"features": x})
        got = [f["scores"][f"vmaf_tiny_v{v}"] for f in res["frames"]]
        np.testing.assert_array_equal(np.asarray(got, np.float32), by_hand.reshape(-1))
    # Their sidecars carry input_mean/std for graphs that already standardise: ignored, with a warning.
    assert sum("input_mean/input_std ignored" in w for w in res["warnings"]) == 3


def test_json_shape(kit: Kit, pair: dict, capsys: pytest.CaptureFixture) -> None:
    assert main(_argv(pair, kit.onnx, extra=("--json",))) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"ref", "dist", "teacher", "models", "model_paths", "frames", "pooled", "warnings"} <= set(out)
    assert out["models"] == [MODEL_ID] and out["teacher"] == "vmaf_v0.6.1"
    assert len(out["frames"]) == pair["frames"]
    for i, f in enumerate(out["frames"]):
        assert f["frame"] == i and {"teacher", "scores", *FEATURES} <= set(f)
        assert 0.0 <= f["scores"][MODEL_ID] <= 100.0
    pooled = out["pooled"]
    s = pooled["scores"][MODEL_ID]
    assert s == pytest.approx(sum(f["scores"][MODEL_ID] for f in out["frames"]) / pair["frames"])
    assert pooled["teacher"] == pytest.approx(pair["expected"]["vmaf"], abs=pair["tolerance"])
    assert pooled["diff"][MODEL_ID] == pytest.approx(s - pooled["teacher"])
    assert abs(pooled["diff"][MODEL_ID]) < 0.1  # the kit student is faithful on real content too


def test_python_api_matches_the_cli_and_uses_the_cache(
    kit: Kit, pair: dict, capsys: pytest.CaptureFixture, cache_dir: Path
) -> None:
    api = score(pair["ref"], pair["dist"], kit.onnx, **_kw(pair))
    journal = cache_dir / "journal.log"
    runs = journal.read_text().count("\n") if journal.is_file() else 0
    assert main(_argv(pair, kit.onnx, extra=("--json",))) == 0
    cli = json.loads(capsys.readouterr().out)
    assert (journal.read_text().count("\n") if journal.is_file() else 0) == runs  # served from the cache
    assert api["pooled"] == cli["pooled"]
    assert [f["scores"] for f in api["frames"]] == [f["scores"] for f in cli["frames"]]


def test_feature_order_is_read_by_name(kit: Kit, pair: dict, tmp_path: Path) -> None:
    """A model whose columns are in another order gets its columns in that order; an unknown feature is refused."""
    import shutil

    model = onnx.load(str(kit.onnx))
    order = [FEATURES[i] for i in (5, 0, 1, 2, 3, 4)]  # motion2 first
    w = next(t for t in model.graph.initializer if t.name == "layer0.weight_t")  # [in, out]: a row per feature
    arr = onnx.numpy_helper.to_array(w)[[5, 0, 1, 2, 3, 4], :]
    w.CopyFrom(onnx.numpy_helper.from_array(np.ascontiguousarray(arr), "layer0.weight_t"))
    for t in model.graph.initializer:
        if t.name in ("norm.mean", "norm.std"):
            t.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(t)[[5, 0, 1, 2, 3, 4]].copy(), t.name))
    for p in model.metadata_props:
        if p.key == "feature_order":
            p.value = json.dumps(order)
    moved = tmp_path / "moved.onnx"
    onnx.save(model, str(moved))
    a = score(pair["ref"], pair["dist"], [kit.onnx, moved], **_kw(pair))
    for f in a["frames"]:
        assert f["scores"]["moved"] == pytest.approx(f["scores"][MODEL_ID], abs=1e-4)
    shutil.copy(kit.onnx, tmp_path / "odd.onnx")
    (tmp_path / "odd.json").write_text(json.dumps({"features": [*FEATURES[:5], "motion3"]}))
    with pytest.raises(ModelContractError, match="motion3"):
        load_tiny_model(tmp_path / "odd.onnx")


def test_a_graph_without_a_scaler_gets_the_sidecars(kit: Kit, tmp_path: Path) -> None:
    """Only where the graph has no scaler are the sidecar's mean/std applied (and then exactly once)."""
    g = onnx.load(str(kit.onnx))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in g.graph.initializer}
    assert [n.op_type for n in g.graph.node[:2]] == ["Sub", "Div"]
    nodes = list(g.graph.node)[2:]  # the scaler (hard-swish has Divs of its own further on)
    nodes[0].input[0] = "features"  # the first layer now reads raw features
    del g.graph.node[:]
    g.graph.node.extend(nodes)
    path = tmp_path / "noscaler.onnx"
    onnx.save(g, str(path))
    stats = {"input_mean": inits["norm.mean"].tolist(), "input_std": inits["norm.std"].tolist()}
    (tmp_path / "noscaler.json").write_text(json.dumps(stats))
    m = load_tiny_model(path)
    assert m.scaler_in_graph is False and m.external_scaler is not None and m.warnings == []
    x = np.array([[0.95, 0.6, 0.85, 0.92, 0.95, 4.0], [0.7, 0.2, 0.5, 0.6, 0.7, 20.0]])
    np.testing.assert_allclose(m.predict(x), load_tiny_model(kit.onnx).predict(x), atol=1e-3)
    (tmp_path / "noscaler.json").write_text("{}")
    assert np.abs(load_tiny_model(path).predict(x) - m.predict(x)).max() > 1  # without them: another function


def test_features_outside_the_trained_box_are_a_warning() -> None:
    box = {"quality_max": 1.25, "motion2_max": 100.0}
    inside = np.array([[0.9, 0.5, 0.8, 0.9, 0.95, 10.0]])
    assert outside_box(inside, box) == []
    out = np.array([[0.9, 0.5, 0.8, 0.9, 0.95, 10.0], [1.31, 0.5, 0.8, 0.9, 0.95, 120.0]])
    why = outside_box(out, box)
    assert len(why) == 2 and "adm2 1.31 outside [0, 1.25]" in why[0] and "frame 1" in why[0]
    assert "motion2 120" in why[1]
    assert outside_box(out, None) == []  # a peer without a training_box: nothing to say


def test_missing_model_is_a_clear_error(pair: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(_argv(pair, tmp_path / "none.onnx")) == 1
    assert "none.onnx: no ONNX model" in capsys.readouterr().err


def test_package_import_stays_light() -> None:
    code = "import sys, tinyvmaf.scoring; print('torch' in sys.modules, 'onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]  # scoring needs neither until a model is loaded
