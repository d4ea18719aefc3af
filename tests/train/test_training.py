"""Training: determinism, train-only statistics and augmentations, the MOS term, the stage, the Hydra sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tinyvmaf.cli import main as cli_main
from tinyvmaf.config import Config, ConfigError, compose_text
from tinyvmaf.config.schema import ArchConfig, AugmentConfig
from tinyvmaf.contract import FEATURES
from tinyvmaf.student.checkpoint import load_student
from tinyvmaf.train.data import FrameDataModule, augment_batch
from tinyvmaf.train.loop import choose_winner, fit_one, run_sweep
from tinyvmaf.train.module import residual

from conftest import config
from project import REPO, env
from synth import write_labels

EPOCHS = 3


@pytest.fixture(scope="module")
def labels_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 contents × 4 HRCs × 12 frames (4 / 1 / 1 contents), teacher-scored, MOS known for every pair."""
    return write_labels(tmp_path_factory.mktemp("labels"), n_contents=6, n_hrcs=4, n_frames=12, mos=True)


@pytest.fixture(scope="module")
def labels(labels_path: Path) -> pd.DataFrame:
    return pd.read_parquet(labels_path)


@pytest.fixture(scope="module")
def samples_path(labels_path: Path) -> Path:
    """A small sample (the sample stage's code) around the labels' train frames."""
    from tinyvmaf.sample.stage import make_samples

    labels = pd.read_parquet(labels_path)
    train = labels.loc[labels["split"] == "train", list(FEATURES)].to_numpy(np.float64)
    cfg = config("sample.count=3000", "sample.val_count=600").sample
    samples, _ = make_samples(train, cfg, "vmaf_v0.6.1")
    path = labels_path.parent / "samples.parquet"
    samples.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def samples(samples_path: Path) -> pd.DataFrame:
    return pd.read_parquet(samples_path)


def small_cfg(*overrides: str) -> Config:
    """The project config (conf/ composed, as params.yaml) with tiny epochs and batches, one process."""
    return config(f"train.epochs={EPOCHS}", "train.batch_size=32", "train.jobs=1", *overrides)


def datamodule(labels: pd.DataFrame, samples: pd.DataFrame | None = None, **kw) -> FrameDataModule:
    args = {"batch_size": 32, "augment": AugmentConfig(0.0, 1.0, False), "sample_weight": 1.0, "seed": 0, **kw}
    return FrameDataModule(labels, samples=samples, **args)


def test_same_seed_same_data_gives_identical_metrics(
    labels: pd.DataFrame, samples: pd.DataFrame, tmp_path: Path
) -> None:
    cfg = small_cfg()
    a = fit_one(cfg, labels, samples, workdir=tmp_path / "a", progress=False)
    b = fit_one(cfg, labels, samples, workdir=tmp_path / "b", progress=False)
    assert len(a.history) == EPOCHS
    assert a.history == b.history  # exact, float for float
    sa = torch.load(a.ckpt_path, weights_only=False)["state_dict"]
    sb = torch.load(b.ckpt_path, weights_only=False)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = fit_one(small_cfg("seed=99"), labels, samples, workdir=tmp_path / "c", progress=False)
    assert c.history != a.history  # the seed matters, so the equality above is not vacuous


def test_checkpoint_contract(labels: pd.DataFrame, samples: pd.DataFrame, tmp_path: Path) -> None:
    cfg = small_cfg("arch=mlp_32x2", "train.dropout=0.05")
    res = fit_one(cfg, labels, samples, workdir=tmp_path, progress=False)
    student, hp = load_student(res.ckpt_path)
    assert (hp["width"], hp["depth"], hp["activation"], hp["dropout"]) == (32, 2, "hardswish", 0.05)
    assert hp["train"]["epochs"] == EPOCHS and hp["arch"] == "mlp_32x2"
    ckpt = torch.load(res.ckpt_path, weights_only=False)
    assert all(k.startswith("student.") for k in ckpt["state_dict"])
    val = pd.concat([labels[labels["split"] == "val"], samples[samples["split"] == "val"]])  # frames, then vectors
    with torch.no_grad():
        pred = student(torch.tensor(val[list(FEATURES)].to_numpy(np.float32))).double().numpy()
    assert pred.min() >= 0 and pred.max() <= 100
    y = val["label"].to_numpy(np.float32).astype(np.float64)
    assert np.corrcoef(pred, y)[0, 1] == pytest.approx(res.val["val_plcc"], abs=1e-6)
    assert float(np.sqrt(np.mean((pred - y) ** 2))) == pytest.approx(res.val["val_rmse"], rel=1e-6)
    best = min(res.history, key=lambda r: r["val_rmse"])  # the checkpoint is the lowest-val-RMSE epoch
    assert res.best_epoch == best["epoch"]


def test_normalisation_comes_from_train_only(labels: pd.DataFrame, samples: pd.DataFrame, tmp_path: Path) -> None:
    dm = datamodule(labels, samples)
    dm.setup("fit")
    train = np.concatenate(
        [
            labels.loc[labels["split"] == "train", list(FEATURES)].to_numpy(np.float32),
            samples.loc[samples["split"] == "train", list(FEATURES)].to_numpy(np.float32),
        ]
    ).astype(np.float64)
    everything = labels[list(FEATURES)].to_numpy(np.float64)
    np.testing.assert_allclose(dm.mean.numpy(), train.mean(0), rtol=1e-6)
    np.testing.assert_allclose(dm.std.numpy(), train.std(0), rtol=1e-5)
    assert not np.allclose(dm.mean.numpy(), everything.mean(0), rtol=1e-4)  # val/test would shift it
    assert dm.splits["train"].n_frames == int((labels["split"] == "train").sum())
    assert len(dm.splits["val"]) == int((labels["split"] == "val").sum() + (samples["split"] == "val").sum())
    # ... and the trained student carries exactly those statistics.
    res = fit_one(small_cfg("train.epochs=1"), labels, samples, workdir=tmp_path, progress=False)
    student, _ = load_student(res.ckpt_path)
    assert torch.equal(student.mean, dm.mean) and torch.equal(student.std, torch.where(dm.std > 1e-12, dm.std, 1))


def _rows(batches) -> torch.Tensor:
    return torch.cat([b["x"] for b in batches])


def test_augmentations_touch_train_only(labels: pd.DataFrame) -> None:
    aug = AugmentConfig(noise_sigma=0.01, subsample=0.5, vif_flip=False)
    dm = datamodule(labels, batch_size=16, augment=aug, seed=1)
    dm.setup("fit")
    raw_train, raw_val = dm.splits["train"].x, dm.splits["val"].x

    epoch1, epoch2 = _rows(dm.train_dataloader()), _rows(dm.train_dataloader())
    assert len(epoch1) == round(0.5 * len(raw_train)) == len(epoch2)  # frame sub-sampling
    dist = torch.cdist(epoch1.double() / dm.std, raw_train.double() / dm.std).min(1).values
    assert (dist > 0).all()  # every train row is perturbed
    assert not torch.equal(epoch1, epoch2)  # a fresh draw every epoch

    for _ in range(2):  # val: the raw rows, in order, every time
        assert torch.equal(_rows(dm.val_dataloader()), raw_val)
        assert torch.equal(torch.cat([b["y"] for b in dm.val_dataloader()]), dm.splits["val"].y)

    plain = datamodule(labels, batch_size=16, seed=1)
    plain.setup("fit")
    rows = _rows(plain.train_dataloader())
    assert not torch.equal(rows, raw_train)  # shuffled ...
    assert torch.equal(rows.sort(0).values, raw_train.sort(0).values)  # ... but the very same rows


def test_noise_is_sigma_in_normalised_units(labels: pd.DataFrame) -> None:
    dm = datamodule(labels, batch_size=16)
    dm.setup("fit")
    data = dm.splits["train"]
    idx = torch.arange(len(data))
    gen = torch.Generator().manual_seed(0)
    out = augment_batch(data, idx, dm.std, AugmentConfig(0.01, 1.0, False), gen)["x"]
    z = (out.double() - data.x.double()) / dm.std.double()
    assert float(z.std()) == pytest.approx(0.01, rel=0.1)
    assert float(z.mean()) == pytest.approx(0.0, abs=0.002)
    same = augment_batch(data, idx, dm.std, AugmentConfig(0.0, 1.0, False), gen)["x"]
    assert torch.equal(same, data.x)


def test_vif_flip_is_off_by_default_and_flips_when_on(labels: pd.DataFrame) -> None:
    assert config().train.augment.vif_flip is False
    dm = datamodule(labels, batch_size=16)
    dm.setup("fit")
    data = dm.splits["train"]
    vif = [FEATURES.index(f"vif_scale{s}") for s in range(4)]
    gen = torch.Generator().manual_seed(0)
    out = augment_batch(data, torch.arange(len(data)), dm.std, AugmentConfig(0.0, 1.0, True), gen)["x"]
    flipped_raw = data.x.clone()
    flipped_raw[:, vif] = data.x[:, vif[::-1]]
    as_is = (out == data.x).all(1)
    flipped = (out == flipped_raw).all(1)
    assert bool((as_is | flipped).all())  # each row is either untouched or has its four VIF scales reversed
    informative = ~(data.x == flipped_raw).all(1)
    assert 0.3 < float(flipped[informative].float().mean()) < 0.7  # about half of them flipped
    plain = augment_batch(data, torch.arange(len(data)), dm.std, AugmentConfig(0.0, 1.0, False), gen)["x"]
    assert torch.equal(plain, data.x)


@pytest.mark.parametrize("bad", ["noise_sigma=0.02", "noise_sigma=-0.001", "subsample=0.0"])
def test_augment_config_is_validated(bad: str) -> None:
    with pytest.raises(ConfigError, match=f"train.augment.{bad.split('=')[0]}"):
        config(f"train.augment.{bad}")


def test_mos_term_changes_the_result(labels: pd.DataFrame, samples: pd.DataFrame, tmp_path: Path) -> None:
    base = fit_one(small_cfg(), labels, samples, workdir=tmp_path / "base", progress=False)
    mos = fit_one(small_cfg("train.mos_lambda=1.0"), labels, samples, workdir=tmp_path / "mos", progress=False)
    assert [r["train_loss"] for r in mos.history] != [r["train_loss"] for r in base.history]
    assert [r["val_plcc"] for r in mos.history] != [r["val_plcc"] for r in base.history]
    no_mos = labels.assign(mos=np.nan, dmos=np.nan, mos100=np.nan)
    with pytest.raises(ValueError, match="no train pair has a MOS"):
        fit_one(small_cfg("train.mos_lambda=1.0"), no_mos, samples, workdir=tmp_path / "none", progress=False)


def test_train_stage_writes_ckpt_metrics_and_plots(
    labels_path: Path, samples_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tinyvmaf train` reads params.yaml, sweeps sweep.archs (two at a time), picks the winner."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    # the selected arch (mlp_64x2) overridden; two processes, as the DVC stage runs by default
    overrides = ["train.epochs=2", "train.batch_size=32", "train.jobs=2", "arch.width=16"]
    Path("params.yaml").write_text(compose_text(REPO / "conf", overrides))
    Path("plots/vmaf_v0.6.1/train").mkdir(parents=True)
    Path("plots/vmaf_v0.6.1/train/stale_arch.csv").write_text("epoch\n")
    args = ["train", "--labels", str(labels_path), "--samples", str(samples_path), "--conf-dir", str(REPO / "conf")]
    assert cli_main(args) == 0

    metrics = json.loads(Path("metrics/vmaf_v0.6.1/train.json").read_text())
    archs = metrics["archs"]
    assert set(archs) == {"mlp_32x2", "mlp_64x2", "mlp_64x3"}
    assert archs["mlp_64x2"]["width"] == 16 and archs["mlp_32x2"]["width"] == 32
    best = max(a["val_plcc"] for a in archs.values())
    tied = [a for a in archs if archs[a]["val_plcc"] >= best - 1e-5]
    assert metrics["winner"] == min(tied, key=lambda a: archs[a]["val_rmse"])
    assert metrics["val_plcc"] == archs[metrics["winner"]]["val_plcc"]
    assert "test" not in json.dumps(metrics)  # test numbers are the gate's, never the train stage's
    _, hp = load_student("models/vmaf_v0.6.1/best.ckpt")
    assert hp["arch"] == metrics["winner"]
    assert sorted(p.name for p in Path("plots/vmaf_v0.6.1/train").iterdir()) == [f"{a}.csv" for a in sorted(archs)]
    curve = pd.read_csv("plots/vmaf_v0.6.1/train/mlp_32x2.csv")
    assert list(curve.columns) == [
        "epoch",
        "val_plcc",
        "val_srocc",
        "val_rmse",
        "val_frames_rmse",
        "val_dense_rmse",
        "val_loss",
        "train_loss",
    ]
    assert curve["epoch"].tolist() == [0, 1]

    # Same data and params: the metrics file and the checkpoint's weights come out byte-for-byte the same.
    first_metrics = Path("metrics/vmaf_v0.6.1/train.json").read_bytes()
    first_state = torch.load("models/vmaf_v0.6.1/best.ckpt", weights_only=False)["state_dict"]
    Path("params.yaml").write_text(compose_text(REPO / "conf", [*overrides[:-2], "train.jobs=1", overrides[-1]]))
    assert cli_main(args) == 0  # one process this time: the jobs setting changes the wall time, not the result
    assert Path("metrics/vmaf_v0.6.1/train.json").read_bytes() == first_metrics
    again = torch.load("models/vmaf_v0.6.1/best.ckpt", weights_only=False)["state_dict"]
    assert all(torch.equal(first_state[k], again[k]) for k in first_state)


def _sweep(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), "-m", f"hydra.sweep.dir={cwd / 'multirun'}", *overrides],
        cwd=cwd,
        env=env({"MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}", "CI": "true"}),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_hydra_sweep_logs_one_parent_three_children(labels_path: Path, samples_path: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    (tmp_path / "labels").mkdir()
    (tmp_path / "samples").mkdir()
    (tmp_path / "labels" / "vmaf_v0.6.1.parquet").write_bytes(labels_path.read_bytes())
    (tmp_path / "samples" / "vmaf_v0.6.1.parquet").write_bytes(samples_path.read_bytes())
    proc = _sweep(tmp_path, "arch=mlp_32x2,mlp_64x2,mlp_64x3", "train.epochs=2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "mlruns").exists()

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tinyvmaf")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["mlp_32x2", "mlp_64x2", "mlp_64x3"]
    assert len(runs) == 4
    for child in children:
        for metric in ("val_plcc", "val_srocc", "val_rmse", "val_frames_rmse", "val_loss", "train_loss"):
            hist = client.get_metric_history(child.info.run_id, metric)
            assert sorted(m.step for m in hist) == [0, 1], (child.info.run_name, metric)
        assert child.data.params["arch.name"] == child.info.run_name
        assert child.data.params["train.epochs"] == "2"
        assert child.data.tags["git_commit"] and child.data.tags["data_version"] and child.data.tags["host"]
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"best.ckpt", "val_scatter.png", "config.yaml"} <= artifacts
        assert child.info.status == "FINISHED"
    assert parent.info.status == "FINISHED"
    best = max(children, key=lambda r: r.data.metrics["best_val_plcc"])
    assert parent.data.tags["winner"] == best.info.run_name


def test_run_sweep_without_tracking_picks_best(labels: pd.DataFrame, samples: pd.DataFrame, tmp_path: Path) -> None:
    cfg = small_cfg("train.epochs=1")
    archs = [ArchConfig("tiny", 4, 1, "relu"), ArchConfig("wide", 48, 2, "silu")]
    res = run_sweep(cfg, archs, labels, samples, workdir=tmp_path, jobs=1, track=False, progress=False)
    assert [r.arch for r in res.results] == ["tiny", "wide"]
    assert res.winner is choose_winner(res.results)
    assert not os.path.exists(tmp_path / "mlflow.db")


def test_winner_is_best_plcc_with_ties_broken_by_rmse() -> None:
    from tinyvmaf.train.loop import ArchResult

    def result(name: str, plcc: float, rmse: float, n_params: int = 100) -> ArchResult:
        val = {"val_plcc": plcc, "val_rmse": rmse}
        return ArchResult(name, 1, 1, "silu", n_params, 0, 1, val, [], Path(name), None, None, 0.0)

    clear = [result("a", 0.999, 0.01), result("b", 0.998, 0.001)]
    assert choose_winner(clear).arch == "a"  # PLCC decides when it can
    tie = [result("a", 0.999990, 0.05), result("b", 0.999995, 0.02), result("c", 0.999999, 0.03)]
    assert choose_winner(tie).arch == "b"  # within 1e-5 of the best: the lowest RMSE
    same = [result("big", 0.99, 0.02, 5000), result("small", 0.99, 0.02, 1000)]
    assert choose_winner(same).arch == "small"


def test_censored_residual_is_one_sided_only_at_the_clip() -> None:
    """Where the teacher says 100 (or 0), a student beyond it is right: no loss, no gradient."""
    pred = torch.tensor([104.0, 97.0, -3.0, 2.0, 50.0, 60.0])
    target = torch.tensor([100.0, 100.0, 0.0, 0.0, 55.0, 55.0])
    r = residual(pred, target, "censored")
    assert r.tolist() == [0.0, -3.0, 0.0, 2.0, -5.0, 5.0]
    assert residual(pred, target, "huber").tolist() == [4.0, -3.0, -3.0, 2.0, -5.0, 5.0]


def test_samples_are_weighted_and_never_enter_test(labels: pd.DataFrame, samples: pd.DataFrame) -> None:
    dm = datamodule(labels, samples, sample_weight=0.25)
    dm.setup("fit")
    train = dm.splits["train"]
    n = train.n_frames
    assert torch.all(train.w[:n] == 1.0) and torch.all(train.w[n:] == 0.25)
    assert torch.all(train.group[:n] >= 0) and torch.all(train.group[n:] == -1)
    assert len(dm.splits["test"]) == int((labels["split"] == "test").sum())  # the test split is frames only
