"""``conf/`` is the source of truth: params.yaml cannot drift, params are granular, ``-S`` reaches the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tinyvmaf.cli import main as cli_main
from tinyvmaf.config import ConfigError, compose_conf, compose_text, load_params, validate

from project import REPO, copy_project, run
from synth import synthetic_features, write_manifest


def test_params_yaml_is_conf_composed() -> None:
    assert cli_main(["params", "--conf-dir", str(REPO / "conf"), "--out", str(REPO / "params.yaml"), "--check"]) == 0


def test_params_check_catches_drift(tmp_path: Path) -> None:
    drifted = tmp_path / "params.yaml"
    text = compose_text(REPO / "conf")
    assert "  lr: 0.02\n" in text
    drifted.write_text(text.replace("  lr: 0.02\n", "  lr: 0.03\n"))
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
    assert target == "tinyvmaf.train.tracking.MlflowSweepCallback"
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
    # One student (in conf/ itself, which `dvc exp run -S` composes): the synthetic features are v0.6.1's only.
    conf = OmegaConf.load(proj / "conf" / "config.yaml")
    del conf.students["v1016_3d0h"]
    (proj / "conf" / "config.yaml").write_text(OmegaConf.to_yaml(conf))
    run(["tinyvmaf", "params", "sweep=single", "train.epochs=2", "sample.count=2000", "sample.val_count=500"], proj)
    run(["dvc", "add", "-q", "data"], proj)
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-q", "-m", "synthetic project"], proj)
    run(["dvc", "commit", "-f", "extract"], proj)  # the features stand in for a real extraction
    run(["dvc", "repro", "train@v061"], proj, mlflow_env)
    status = _status(proj)
    assert not {"extract", "label@v061", "sample@v061", "train@v061"} & set(status), status

    # A train-only parameter: train (and what follows) is stale, extract and label are not.
    params = proj / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("  lr: 0.02\n", "  lr: 0.01\n"))
    status = _status(proj)
    assert "train@v061" in status and not {"extract", "label@v061", "sample@v061"} & set(status), status
    params.write_text(original)
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-q", "-m", "lock"], proj)

    # `dvc exp run -S` composes params.yaml from conf/ with the overrides; the stage must train with them.
    out = run(
        [
            "dvc",
            "exp",
            "run",
            "-S",
            "sweep=single",
            "-S",
            "arch.width=24",
            "-S",
            "train.epochs=1",
            "-S",
            "sample.count=2000",
            "-S",
            "sample.val_count=500",
            "train@v061",
        ],
        proj,
        mlflow_env,
    )
    assert "Running stage 'label@v061'" not in out and "Running stage 'extract'" not in out
    assert "Running stage 'sample@v061'" not in out  # its params did not change
    ckpt = torch.load(proj / "models" / "vmaf_v0.6.1" / "best.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["width"] == 24  # conf/arch/mlp_64x2.yaml says 64
    assert ckpt["hyper_parameters"]["train"]["epochs"] == 1
    metrics = json.loads((proj / "metrics" / "vmaf_v0.6.1" / "train.json").read_text())
    assert metrics["archs"]["mlp_64x2"]["epochs"] == 1
    assert (proj / "plots" / "vmaf_v0.6.1" / "train" / "mlp_64x2.csv").read_text().count("\n") == 2  # header + 1


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    """An unknown key, a wrong type, a missing key and an out-of-range value each fail naming the key."""
    good = compose_text(REPO / "conf")
    cases = {
        "unknown": (good.replace("  lr: 0.02\n", "  lr: 0.02\n  lrr: 0.1\n"), "train.lrr"),
        "type": (good.replace("  epochs: 20\n", "  epochs: twenty\n"), "train.epochs"),
        "missing": (good.replace("  huber_delta: 5.0\n", ""), "train.huber_delta"),
        "range": (good.replace("  val: 0.1\n", "  val: 1.5\n"), "label.split.val"),
        "choice": (good.replace("  loss: censored\n", "  loss: l1\n"), "train.loss"),
    }
    for name, (text, key) in cases.items():
        assert text != good, name
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
            load_params(path)
        assert str(path) in str(err.value), name
    assert load_params(REPO / "params.yaml").train.loss == "censored"


#: Gate thresholds that would switch a check off (or make it unpassable), each rejected at load.
OFF_SWITCHES = {
    "gate.fidelity.test.plcc_min": (-1.0, 0.5, 1.01, float("nan")),
    "gate.fidelity.test.srocc_min": (-1.0, 0.0),
    "gate.fidelity.dense.rmse_max": (float("inf"), 100.0, 0.0, -0.1),
    "gate.fidelity.dense.max_abs_max": (100.0, 0.0),
    "gate.fidelity.test.rmse_max": (100.0, float("nan")),
    "gate.fidelity.test.max_abs_max": (1.5, 0.0),
    "gate.fidelity.golden.pooled_abs_max": (float("inf"), 100.0, 0.0),
    "gate.parity.max_ulp": (0, 65, 1e9, float("inf")),
}


def test_gate_thresholds_that_switch_a_check_off_are_rejected_naming_the_key() -> None:
    """``dvc exp run -S gate.fidelity.test.plcc_min=-1`` must not turn the gate off: out of range fails at load."""
    from tinyvmaf.config import validate

    base = OmegaConf.create(compose_text(REPO / "conf"))
    for key, values in OFF_SWITCHES.items():
        for value in values:
            cfg = base.copy()
            OmegaConf.update(cfg, key, value, merge=False)
            with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
                validate(cfg)
    edges = {"gate.fidelity.test.plcc_min": 0.9, "gate.fidelity.test.srocc_min": 1.0,
             "gate.fidelity.dense.rmse_max": 1.0, "gate.parity.max_ulp": 1}  # fmt: skip
    for key, value in edges.items():
        cfg = base.copy()
        OmegaConf.update(cfg, key, value, merge=False)
        validate(cfg)  # the bounds themselves are allowed


def test_schema_repeats_no_default() -> None:
    """Every field of the schema is MISSING: conf/ is the one place a default is written."""
    import dataclasses

    from omegaconf import MISSING

    from tinyvmaf.config.schema import MISSING as SCHEMA_MISSING
    from tinyvmaf.config.schema import Config

    assert SCHEMA_MISSING == MISSING  # OmegaConf's marker, spelled out so the schema need not import OmegaConf

    def walk(cls: type, prefix: str = "") -> list[str]:
        out = []
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.type) or (f.default_factory is not dataclasses.MISSING):
                sub = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
                if sub is not None and dataclasses.is_dataclass(sub):
                    out += walk(type(sub), f"{prefix}{f.name}.")
                    continue
                if sub == {}:  # a mapping (students: key -> StudentConfig) starts empty; its values are walked below
                    continue
            if f.default != MISSING:
                out.append(f"{prefix}{f.name}")
        return out

    assert walk(Config) == []
    from tinyvmaf.config.schema import StudentConfig

    assert walk(StudentConfig, "students.<key>.") == []


def test_students_are_checked_by_name() -> None:
    """A student's teacher must be a carried model file, its key DVC-safe, its ids unique; a variant is one line."""
    five = "{teacher: vmaf_v1.0.16_5d0h, id: five, exact: five_exact, registered_model: five}"
    cfg = validate(compose_conf(REPO / "conf", [f"+students.v1016_5d0h={five}"]))
    assert cfg.teachers() == ["vmaf_v0.6.1", "vmaf_v1.0.16_3d0h", "vmaf_b_v0.6.3", "vmaf_v1.0.16_5d0h"]
    st = cfg.student("v1016_5d0h")
    assert st.archs == ["mlp_64x3"] and cfg.student("v061").archs == cfg.sweep.archs
    assert st.paths.onnx == "model/tiny/five.onnx" and st.paths.eval_metrics == "metrics/vmaf_v1.0.16_5d0h/eval.json"
    assert "_ps_0.6_" in st.spec.keys[1] and st.spec.keys[2].endswith("_nvd_5")  # its own columns
    bad = {
        "unknown teacher 'vmaf_v9'": "students.v061.teacher=vmaf_v9",
        "must match": "+students.v1-x={teacher: vmaf_v0.6.1, id: a, exact: b, registered_model: c}",
        "no such student": "+student_archs.v2=[mlp_32x2]",
        "also used by": "students.v1016_3d0h.id=vmaf_tiny_fr_v2_nflx",
        "more than one student": "students.v1016_3d0h.teacher=vmaf_v0.6.1",
    }
    for message, override in bad.items():
        with pytest.raises(ConfigError, match=message):
            validate(compose_conf(REPO / "conf", [override]))
    with pytest.raises(ConfigError, match="no student 'v2'.*v061"):
        validate(compose_conf(REPO / "conf")).student("v2")
