"""Training: one arch (:func:`fit_one`) and the sweep over archs (:func:`run_sweep`).

Both the DVC ``train`` stage (``tinyvmaf train``, which sweeps
``sweep.archs`` in one process) and ``train.py`` (one Hydra job per arch)
call :func:`run_sweep`, so the two paths train, track and select the same
way.  A run is deterministic for a given config, data and thread count:
everything is seeded, the per-epoch train draw has its own seeded
generator (:mod:`tinyvmaf.datamodule`), Lightning runs with
``deterministic=True`` on CPU, and ``train.threads`` (default 1) pins
intra-op parallelism, which otherwise changes float summation order from
one machine to the next.  One thread is also the fastest setting for
6→64→64→1 MLPs, whose matmuls are too small to split.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from .lit_student import METRICS, LitStudent, regression_metrics
from .student import StudentMLP

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", *METRICS)


@dataclass
class ArchResult:
    """What one arch's training produced; ``val`` holds the metrics of the checkpointed (best) epoch."""

    arch: str
    width: int
    depth: int
    n_params: int
    best_epoch: int
    epochs: int
    val: dict[str, float]
    history: list[dict[str, float]]
    ckpt_path: Path
    scatter_path: Path | None
    config_path: Path | None
    seconds: float
    run_id: str | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON-able part (``metrics/train.json`` per arch)."""
        return {
            "width": self.width,
            "depth": self.depth,
            "n_params": self.n_params,
            "best_epoch": self.best_epoch,
            "epochs": self.epochs,
            **{k: round(v, 6) for k, v in self.val.items()},
        }


@dataclass
class SweepResult:
    results: list[ArchResult]
    winner: ArchResult
    seconds: float
    parent_run_id: str | None = None
    run_ids: dict[str, str] = field(default_factory=dict)


def default_progress() -> bool:
    """A progress bar only for a person at a terminal, never in CI logs or DVC's captured output."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def with_arch(cfg: Mapping, arch: Mapping) -> DictConfig:
    """``cfg`` with its ``arch`` node replaced (not merged: a stale key from another arch must not survive)."""
    base = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    arch_c = OmegaConf.to_container(arch, resolve=True) if isinstance(arch, DictConfig) else dict(arch)
    base["arch"] = arch_c
    return OmegaConf.create(base)


def _quiet_lightning() -> None:
    """Lightning's INFO banners (GPU available, TPU available, ...) are noise in stage logs."""
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Lightning 2.6 trips over its own torch-2.13 pytree deprecation; nothing for us to act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def build_model(cfg: Mapping) -> LitStudent:
    """The LightningModule for ``cfg.arch`` / ``cfg.train`` (hyper-parameters land in the checkpoint)."""
    arch, train = cfg["arch"], cfg["train"]
    train_dict = OmegaConf.to_container(train, resolve=True) if isinstance(train, DictConfig) else dict(train)
    return LitStudent(
        int(arch["width"]),
        int(arch["depth"]),
        float(train.get("dropout", 0.1)),
        arch=str(arch.get("name", f"mlp_{arch['width']}x{arch['depth']}")),
        lr=float(train["lr"]),
        weight_decay=float(train.get("weight_decay", 1e-4)),
        huber_delta=float(train.get("huber_delta", 5.0)),
        optimizer=str(train.get("optimizer", "adamw")),
        scheduler=str(train.get("scheduler", "cosine")),
        mos_lambda=float(train.get("mos_lambda", 0.0)),
        seed=int(cfg.get("seed", 0)),
        train=train_dict,
    )


def build_datamodule(cfg: Mapping, labels: str | Path | pd.DataFrame):
    from .datamodule import AugmentConfig, FrameDataModule

    train = cfg["train"]
    return FrameDataModule(
        labels,
        batch_size=int(train["batch_size"]),
        augment=AugmentConfig.from_mapping(train.get("augment")),
        seed=int(cfg.get("seed", 0)),
    )


@torch.no_grad()
def predict(student: StudentMLP, x: torch.Tensor) -> np.ndarray:
    """The shipped function (eval mode, clipped) on raw features."""
    student.eval()
    return student(x).double().numpy()


def scatter_plot(pred: np.ndarray, target: np.ndarray, path: Path, title: str) -> Path:
    """Student vs teacher on val, with the identity line: where the student bends away shows at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = regression_metrics(pred, target)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.scatter(target, pred, s=4, alpha=0.4, linewidths=0)
    ax.plot([0, 100], [0, 100], color="k", lw=0.8)
    ax.set(xlim=(0, 100), ylim=(0, 100), xlabel="teacher (vmaf_v0.6.1)", ylabel="student")
    ax.set_title(f"{title}\nval PLCC {m['plcc']:.5f}  SROCC {m['srocc']:.5f}  RMSE {m['rmse']:.3f}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_history_csv(history: Sequence[Mapping[str, float]], path: Path) -> Path:
    """Per-epoch curves, the columns DVC plots reads."""
    from .atomic import atomic_path

    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(HISTORY_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for rec in history:
            w.writerow({k: (int(rec[k]) if k == "epoch" else repr(float(rec[k]))) for k in HISTORY_COLUMNS})
    return path


def fit_one(
    cfg: Mapping,
    labels: str | Path | pd.DataFrame,
    *,
    workdir: str | Path,
    tracker: Any = None,
    run_id: str | None = None,
    progress: bool | None = None,
) -> ArchResult:
    """Train ``cfg.arch`` on ``labels`` (train split), checkpoint the best val-PLCC epoch into ``workdir``.

    Returns the metrics of that epoch, the full history and the paths of the
    checkpoint, the val scatter plot and the resolved config.  Logs every
    epoch to ``run_id`` when a :class:`~tinyvmaf.mlflow_tracking.Tracker` is
    given.  Test rows are never touched here (the gate reads them).
    """
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    _quiet_lightning()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    train = cfg["train"]
    name = str(cfg["arch"].get("name", "arch"))
    threads = int(train.get("threads", 1) or 1)
    epochs = int(train["epochs"])
    if epochs < 1:
        raise ValueError(f"train.epochs must be >= 1, got {epochs}")
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        pl.seed_everything(int(cfg.get("seed", 0)), workers=True, verbose=False)
        dm = build_datamodule(cfg, labels)
        dm.setup("fit")
        model = build_model(cfg)
        model.student.set_normalisation(dm.mean, dm.std)
        y = dm.splits["train"].y.double()
        model.init_output(float(y.mean()), float(y.std()))
        if model.hparams.mos_lambda > 0:
            if not dm.has_mos("train"):
                raise ValueError("train.mos_lambda > 0 but no train pair has a MOS/DMOS in the manifest")
            model.set_mos_targets(dm.splits["train"].mos100)
        ckpt_cb = ModelCheckpoint(
            dirpath=workdir,
            filename="best",
            monitor="val_plcc",
            mode="max",
            save_top_k=1,
            save_weights_only=True,  # a deliverable, not a resume point: no optimizer state
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
        callbacks: list[pl.Callback] = [ckpt_cb]
        if tracker is not None and run_id is not None:
            callbacks.append(tracker.epoch_callback(run_id))
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator=str(train.get("accelerator", "cpu")),
            devices=1,
            deterministic=bool(train.get("deterministic", True)),
            logger=False,
            callbacks=callbacks,
            enable_progress_bar=default_progress() if progress is None else progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=workdir,
            check_val_every_n_epoch=1,
        )
        trainer.fit(model, datamodule=dm)
        seconds = time.perf_counter() - t0

        ckpt_path = Path(ckpt_cb.best_model_path)
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        best_epoch = int(ckpt["epoch"])
        model.load_state_dict(ckpt["state_dict"])
        val = dm.splits["val"]
        pred = predict(model.student, val.x)
        target = val.y.double().numpy()
        rec = next(r for r in model.history if r["epoch"] == best_epoch)
        check = regression_metrics(pred, target)
        if abs(check["plcc"] - rec["val_plcc"]) > 1e-6:  # the checkpoint is not the epoch we think it is
            raise RuntimeError(f"{name}: checkpoint val PLCC {check['plcc']} != epoch {best_epoch}'s {rec['val_plcc']}")
        scatter = scatter_plot(pred, target, workdir / "val_scatter.png", f"{name} (epoch {best_epoch})")
        config_path = workdir / "config.yaml"
        config_path.write_text(OmegaConf.to_yaml(cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))))
    finally:
        torch.set_num_threads(prev_threads)
    return ArchResult(
        arch=name,
        width=model.student.width,
        depth=model.student.depth,
        n_params=model.student.n_parameters(),
        best_epoch=best_epoch,
        epochs=len(model.history),
        val={k: float(rec[k]) for k in ("val_plcc", "val_srocc", "val_rmse", "val_loss")},
        history=list(model.history),
        ckpt_path=ckpt_path,
        scatter_path=scatter,
        config_path=config_path,
        seconds=seconds,
        run_id=run_id,
    )


def choose_winner(results: Sequence[ArchResult]) -> ArchResult:
    """Highest val PLCC; on a tie the smaller net (cheaper to ship), then the earlier in the sweep."""
    if not results:
        raise ValueError("no arch was trained")
    return max(enumerate(results), key=lambda ir: (ir[1].val["val_plcc"], -ir[1].n_params, -ir[0]))[1]


def run_sweep(
    cfg: Mapping,
    archs: Sequence[Mapping],
    labels: str | Path | pd.DataFrame,
    *,
    workdir: str | Path,
    parent_run_id: str | None = None,
    create_parent: bool = True,
    track: bool = True,
    progress: bool | None = None,
) -> SweepResult:
    """Train every arch of ``archs`` (each a ``{name, width, depth}`` node) and pick the best on val PLCC.

    MLflow: with ``parent_run_id`` the archs become its children (a Hydra
    job in a multirun); else with ``create_parent`` this call opens and
    closes its own parent (the DVC stage); else each arch is a top-level run
    (``python train.py`` without ``-m``).  ``track=False`` skips MLflow.
    """
    workdir = Path(workdir)
    tracker = None
    own_parent = None
    if track:
        from .mlflow_tracking import Tracker

        tracker = Tracker(cfg)
        if parent_run_id is None and create_parent:
            own_parent = tracker.start_run("sweep", cfg, tags={"archs": ",".join(str(a["name"]) for a in archs)})
            parent_run_id = own_parent
    if not isinstance(labels, pd.DataFrame):
        labels = pd.read_parquet(labels)  # read once for all archs
    t0 = time.perf_counter()
    results: list[ArchResult] = []
    run_ids: dict[str, str] = {}
    try:
        for arch in archs:
            cfg_a = with_arch(cfg, arch)
            name = str(arch["name"])
            run_id = None
            if tracker is not None:
                run_id = tracker.start_run(name, cfg_a, parent_run_id=parent_run_id, tags={"arch": name})
                run_ids[name] = run_id
            try:
                res = fit_one(cfg_a, labels, workdir=workdir / name, tracker=tracker, run_id=run_id, progress=progress)
            except BaseException:
                if tracker is not None and run_id is not None:
                    tracker.end_run(run_id, "FAILED")
                raise
            log.info(
                "%s: best epoch %d/%d val PLCC %.5f SROCC %.5f RMSE %.3f (%.1fs)",
                name,
                res.best_epoch,
                res.epochs,
                res.val["val_plcc"],
                res.val["val_srocc"],
                res.val["val_rmse"],
                res.seconds,
            )
            if tracker is not None and run_id is not None:
                best = {f"best_{k}": v for k, v in res.val.items()}
                tracker.log_metrics(
                    run_id,
                    {**best, "best_epoch": res.best_epoch, "n_params": res.n_params, "train_seconds": res.seconds},
                )
                for path in (res.config_path, res.ckpt_path, res.scatter_path):
                    if path is not None:
                        tracker.client.log_artifact(run_id, str(path))
                tracker.end_run(run_id)
            results.append(res)
    except BaseException:
        if tracker is not None and own_parent is not None:
            tracker.end_run(own_parent, "FAILED")
        raise
    seconds = time.perf_counter() - t0
    winner = choose_winner(results)
    if tracker is not None and own_parent is not None:
        tracker.client.set_tag(own_parent, "winner", winner.arch)
        tracker.log_metrics(own_parent, {"best_val_plcc": winner.val["val_plcc"], "sweep_seconds": seconds})
        tracker.end_run(own_parent)
    return SweepResult(results, winner, seconds, parent_run_id, run_ids)
