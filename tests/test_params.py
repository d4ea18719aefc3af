"""``conf/`` is the source of truth: params.yaml cannot drift, params are granular, ``-S`` reaches the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from project import REPO, copy_project, run
from synth import synthetic_features, write_manifest

from tinyvmaf.cli import main as cli_main
from tinyvmaf.config import compose_text


def test_params_yaml_is_conf_composed() -> None:
    assert cli_main(["params", "--conf-dir", str(REPO / "conf"), "--out", str(REPO / "params.yaml"), "--check"]) == 0


def test_params_check_catches_drift(tmp_path: Path) -> None:
    drifted = tmp_path / "params.yaml"
    drifted.write_text(compose_text(REPO / "conf").replace("lr: 0.003", "lr: 0.004"))
    assert cli_main(["params", "--conf-dir", str(REPO / "conf"), "--out", str(drifted), "--check"]) == 1
    assert cli_main(["params", "--conf-dir", str(REPO / "conf"), "--out", str(drifted)]) == 0
    assert cli_main(["params", "--conf-dir", str(REPO / "conf"), "--out", str(drifted), "--check"]) == 0


def test_default_hydra_sweep_is_every_arch() -> None:
    """`python train.py -m` alone sweeps hydra.sweeper.params.arch: it must list what sweep/all.yaml lists."""
    with initialize_config_dir(str(REPO / "conf"), version_base=None):
        cfg = compose(config_name="config", return_hydra_config=True)
    swept = str(cfg.hydra.sweeper.params.arch).split(",")
    assert swept == list(OmegaConf.load(REPO / "conf" / "sweep" / "all.yaml").archs)
    assert sorted(swept) == sorted(p.stem for p in (REPO / "conf" / "arch").glob("*.yaml"))
    target = cfg.hydra.callbacks.mlflow_sweep._target_
    assert target == "tinyvmaf.mlflow_tracking.MlflowSweepCallback"
    assert "hydra" not in OmegaConf.load(REPO / "params.yaml")


def _status(proj: Path) -> dict:
    return json.loads(run(["dvc", "status", "--json"], proj).splitlines()[-1])


@pytest.mark.slow
def test_train_param_changes_only_train_and_reaches_the_model(tmp_path: Path) -> None:
    """On a project copy with a synthetic corpus: extract is committed as is, label and train really run."""
    proj = copy_project(tmp_path / "proj")
    mlflow_env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "CI": "true"}
    feats = synthetic_features(n_contents=5, n_hrcs=3, n_frames=6)
    feats.to_parquet(proj / "features.parquet", index=False)
    write_manifest(feats, proj / "data" / "manifest.csv")
    run(["tinyvmaf", "params", "sweep=single", "train.epochs=2"], proj)
    run(["dvc", "add", "-q", "data"], proj)
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-q", "-m", "synthetic project"], proj)
    run(["dvc", "commit", "-f", "extract"], proj)  # the features stand in for a real extraction
    run(["dvc", "repro", "train"], proj, mlflow_env)
    status = _status(proj)
    assert not {"extract", "label", "train"} & set(status), status

    # A train-only parameter: train (and what follows) is stale, extract and label are not.
    params = proj / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("lr: 0.003", "lr: 0.002"))
    status = _status(proj)
    assert "train" in status and not {"extract", "label"} & set(status), status
    params.write_text(original)
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-q", "-m", "lock"], proj)

    # `dvc exp run -S` composes params.yaml from conf/ with the overrides; the stage must train with them.
    out = run(
        ["dvc", "exp", "run", "-S", "sweep=single", "-S", "arch.width=24", "-S", "train.epochs=1", "train"],
        proj,
        mlflow_env,
    )
    assert "Running stage 'label'" not in out and "Running stage 'extract'" not in out
    ckpt = torch.load(proj / "models" / "best.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["width"] == 24  # conf/arch/mlp_64x2.yaml says 64
    assert ckpt["hyper_parameters"]["train"]["epochs"] == 1
    metrics = json.loads((proj / "metrics" / "train.json").read_text())
    assert metrics["archs"]["mlp_64x2"]["epochs"] == 1
    assert (proj / "plots" / "train" / "mlp_64x2.csv").read_text().count("\n") == 2  # header + 1 epoch
