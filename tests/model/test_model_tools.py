"""`tinyvmaf model check|release|promote`: the artifact's sidecar, registry, package copy and MLflow registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyvmaf.cli import main
from tinyvmaf.export.graph import CHECKABLE_OPS, EMITTED_OPS
from tinyvmaf.model.check import check_dir
from tinyvmaf.model.promote import PromotionError, beats, promote
from tinyvmaf.model.release import release
from tinyvmaf.model.runtime import ort_session

from kit import MODEL_ID, REPO, Kit

PEERS = REPO / "assets" / "peers"


@pytest.fixture()
def model_dir(kit: Kit, tmp_path: Path) -> Path:
    """A copy of the kit's model folder to break in place."""
    return Path(shutil.copytree(kit.model_dir, tmp_path / "tiny"))


def _edit_sidecar(folder: Path, fn) -> None:
    path = folder / f"{MODEL_ID}.json"
    side = json.loads(path.read_text())
    fn(side)
    path.write_text(json.dumps(side))


def _checks(folder: Path) -> set[str]:
    return {f.check for f in check_dir(folder, EMITTED_OPS).errors}


def test_exported_folder_checks_clean(kit: Kit, capsys: pytest.CaptureFixture) -> None:
    assert main(["model", "check", str(kit.model_dir)]) == 0
    assert "ok (2 model(s), 0 error(s))" in capsys.readouterr().out


def test_wrong_sha256_fails_by_name(model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    _edit_sidecar(model_dir, lambda s: s.update(sha256="0" * 64))
    assert _checks(model_dir) == {"sha256"}
    assert main(["model", "check", str(model_dir)]) == 1
    assert "sha256" in capsys.readouterr().err
    reg = json.loads((model_dir / "registry.json").read_text())
    reg["models"][0]["sha256"] = "f" * 64
    (model_dir / "registry.json").write_text(json.dumps(reg))
    assert any(f.model == MODEL_ID and "registry sha256" in f.message for f in check_dir(model_dir, EMITTED_OPS).errors)


def test_wrong_feature_order_fails_by_name(model_dir: Path) -> None:
    _edit_sidecar(model_dir, lambda s: s.update(features=list(reversed(s["features"]))))
    assert _checks(model_dir) == {"features"}
    _edit_sidecar(model_dir, lambda s: s.update(features=[*s["features"][:5], "motion3"]))
    assert "features" in _checks(model_dir)


def test_double_scaling_sidecar_fails_by_name(model_dir: Path) -> None:
    def double(s: dict) -> None:
        s.pop("onnx_has_scaler")
        s["input_mean"], s["input_std"] = [0.0] * 6, [1.0] * 6

    _edit_sidecar(model_dir, double)
    findings = check_dir(model_dir, EMITTED_OPS).errors
    assert {f.check for f in findings} == {"scaler"} and "double-scaling risk" in findings[0].message


def test_io_ops_registry_and_quant_mode_are_checked(model_dir: Path) -> None:
    _edit_sidecar(model_dir, lambda s: s.update(output_name="score", quant_mode="dynamic"))
    assert _checks(model_dir) == {"io", "quant_mode"}
    assert "ops" in {f.check for f in check_dir(model_dir, ("Gemm",)).errors}
    reg = json.loads((model_dir / "registry.json").read_text())
    reg["models"].append({"id": "Bad Id", "kind": "fr", "onnx": "absent.onnx", "sha256": "0"})
    (model_dir / "registry.json").write_text(json.dumps(reg))
    bad = [f for f in check_dir(model_dir, EMITTED_OPS).errors if f.model == "Bad Id"]
    assert {m.message.split(" ")[0] for m in bad} >= {"id", "names"}


def test_the_forks_peers_report_the_double_scaling_risk(capsys: pytest.CaptureFixture) -> None:
    report = check_dir(PEERS, CHECKABLE_OPS)  # what `tinyvmaf model check` accepts: Gemm peers run anywhere
    risky = {f.model for f in report.errors if f.check == "scaler" and "double-scaling" in f.message}
    assert risky == {"vmaf_tiny_v2", "vmaf_tiny_v3", "vmaf_tiny_v4"}
    assert {f.check for f in report.errors} <= {"scaler", "quant_mode"}  # everything else about them is right
    assert main(["model", "check", str(PEERS)]) == 1
    assert "ops" not in capsys.readouterr().err
    # Our export's own list is stricter: a Gemm sums in an order each backend picks (not bit-identical).
    strict = {f.model for f in check_dir(PEERS, EMITTED_OPS).errors if f.check == "ops" and "Gemm" in f.message}
    assert strict == {"vmaf_tiny_v2", "vmaf_tiny_v3", "vmaf_tiny_v4"}


@pytest.fixture(scope="module")
def gated(kit: Kit, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kit's model with a passing gate report of its own."""
    out = tmp_path_factory.mktemp("gated")
    assert main(["gate", "--params", str(kit.params(out))]) == 0
    return out / "metrics" / "vmaf_v0.6.1" / "gate.json"


def test_release_copies_only_a_gated_model(kit: Kit, gated: Path, tmp_path: Path) -> None:
    dest = tmp_path / "packaged"
    dest.mkdir()
    paths = release(kit.onnx, gated, EMITTED_OPS, dest)
    assert sorted(p.name for p in paths) == sorted([f"{MODEL_ID}.json", f"{MODEL_ID}.onnx", "registry.json"])
    assert (dest / f"{MODEL_ID}.onnx").read_bytes() == kit.onnx.read_bytes()
    assert check_dir(dest, EMITTED_OPS).errors == []
    failed = tmp_path / "failed.json"
    doc = json.loads(gated.read_text())
    failed.write_text(json.dumps({**doc, "pass": False, "failed": ["fidelity"]}))
    with pytest.raises(PromotionError, match="failed its gate"):
        release(kit.onnx, failed, EMITTED_OPS, tmp_path / "nowhere")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**doc, "model_sha256": "0" * 64}))
    with pytest.raises(PromotionError, match="another file"):
        release(kit.onnx, other, EMITTED_OPS, tmp_path / "nowhere")


def test_beats_is_pareto() -> None:
    old = {"a": 0.02, "b": 0.3}
    assert beats({"a": 0.01, "b": 0.3}, old)[0] is True
    assert beats({"a": 0.01, "b": 0.31}, old) == (False, "worse than the champion on b")
    assert beats(dict(old), old)[0] is False


def test_promotion_only_for_a_passing_better_model(
    kit: Kit, gated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    cfg = kit.config(tmp_path)
    # the eval stage's agreement with subjective scores goes to the promote run (here a corpus with DMOS)
    sub = {"split": "test", "scale": "dmos", "n_clips": 4, "n_contents": 2,
           "predictors": {"teacher": {"plcc": 0.91, "srocc": 0.9, "rmse": 7.5},
                          "student": {"plcc": 0.9, "srocc": 0.9, "rmse": 7.6}}}  # fmt: skip
    (tmp_path / "metrics" / "vmaf_v0.6.1" / "eval.json").write_text(json.dumps({"subjective": sub}))
    first = promote(cfg, kit.onnx, gated)
    assert (first.version, first.champion) == ("1", True)
    again = promote(cfg, kit.onnx, gated)  # the same figures: registered, not crowned
    assert (again.version, again.champion, again.previous_champion) == ("2", False, "1")
    doc = json.loads(gated.read_text())
    doc["checks"]["fidelity"]["criteria"]["dense/rmse"]["value"] /= 2
    better = tmp_path / "better.json"
    better.write_text(json.dumps(doc))
    third = promote(cfg, kit.onnx, better)
    assert (third.version, third.champion) == ("3", True) and "dense/rmse" in third.reason
    doc["pass"], doc["failed"] = False, ["parity"]
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps(doc))
    with pytest.raises(PromotionError, match="failed its gate"):
        promote(cfg, kit.onnx, failed)

    client = MlflowClient(uri)
    versions = client.search_model_versions("name='vmaf_tiny_fr'")
    assert sorted(str(v.version) for v in versions) == ["1", "2", "3"]  # the failed one was never registered
    champ = client.get_model_version_by_alias("vmaf_tiny_fr", "champion")
    assert str(champ.version) == "3"
    assert {"data_version", "git_commit", "onnx_sha256", "gate.fidelity/dense/rmse"} <= set(champ.tags)
    run = client.get_run(client.get_model_version("vmaf_tiny_fr", "1").run_id)
    assert run.data.metrics["subjective_student_rmse"] == 7.6 and run.data.metrics["subjective_teacher_plcc"] == 0.91
    assert run.data.tags["subjective"] == "4 test clips, dmos"

    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/vmaf_tiny_fr@champion")
    x = np.array([[0.95, 0.6, 0.85, 0.92, 0.95, 4.0], [0.7, 0.2, 0.5, 0.6, 0.7, 20.0]], dtype=np.float32)
    frame = pd.DataFrame(x, columns=["adm2", "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3", "motion2"])
    got = model.predict(frame)
    (want,) = ort_session(kit.onnx).run(None, {"features": x})
    np.testing.assert_array_equal(np.asarray(got["vmaf"], np.float32), want)
