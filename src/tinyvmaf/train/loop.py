"""Training: one arch (:func:`fit_one`) and the sweep over archs (:func:`run_sweep`).

Both the DVC ``train`` stage (``tinyvmaf train``, which sweeps
``sweep.archs``) and ``train.py`` (one Hydra job per arch) call
:func:`run_sweep`, so the two paths train, track and select the same way.

A run is deterministic for a given config, data and thread count:
everything is seeded, the per-epoch train draw has its own seeded
generator (:mod:`tinyvmaf.train.data`), Lightning runs with
``deterministic=True`` on CPU, and ``train.threads`` (default 1) pins
intra-op parallelism, which otherwise changes float summation order from
one machine to the next.  One thread is also the fastest setting for these
MLPs, whose matmuls are too small to split; the DVC stage instead trains
``train.jobs`` archs at once, one process each, and gets the same result as
one after the other.

Selection, two levels:

* the *epoch* of an arch: the lowest ``val_rmse`` over the real val frames
  and the dense validation vectors (PLCC saturates at 0.9999 and cannot
  tell good epochs apart);
* the *arch* of a sweep: the highest ``val_plcc``; archs within 1e-5 of
  the best PLCC tie, and the tie goes to the lowest ``val_rmse``.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..common.atomic import atomic_path
from ..common.metrics import pearson
from ..config.schema import ArchConfig, Config
from ..contract import TEACHER
from ..student.network import StudentMLP
from .module import METRICS, MONITOR, LitStudent

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", *METRICS)
#: Val PLCCs closer than this are a tie, broken by val RMSE.
PLCC_TIE = 1e-5


@dataclass
class ArchResult:
    """What one arch's training produced; ``val`` holds the metrics of the checkpointed (best) epoch."""

    arch: str
    width: int
    depth: int
    activation: str
    n_params: int
    best_epoch: int
    epochs: int
    val: dict[str, float]
    history: list[dict[str, float]]
    ckpt_path: Path
    scatter_path: Path | None
    config_path: Path | None
    seconds: float
    fit_seconds: float = 0.0  # Trainer.fit alone (the benchmarks compare it with a bare loop)
    run_id: str | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON-able part (``metrics/train.json`` per arch)."""
        return {
            "width": self.width,
            "depth": self.depth,
            "activation": self.activation,
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


def with_arch(cfg: Config, arch: ArchConfig) -> Config:
    """``cfg`` with its ``arch`` replaced (not merged: a stale key from another arch must not survive)."""
    return replace(cfg, arch=arch)


def quiet_lightning() -> None:
    """Lightning's INFO banners (GPU available, TPU available, ...) are noise in stage logs."""
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Lightning 2.6 trips over its own torch-2.13 pytree deprecation; nothing for us to act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def build_model(cfg: Config, teacher: str = TEACHER) -> LitStudent:
    """The LightningModule for ``cfg.arch`` / ``cfg.train`` (hyper-parameters land in the checkpoint)."""
    from ..config.params import as_dict

    arch, train = cfg.arch, cfg.train
    return LitStudent(
        width=arch.width,
        depth=arch.depth,
        activation=arch.activation,
        dropout=train.dropout,
        arch=arch.name,
        lr=train.lr,
        weight_decay=train.weight_decay,
        huber_delta=train.huber_delta,
        loss=train.loss,
        optimizer=train.optimizer,
        scheduler=train.scheduler,
        mos_lambda=train.mos_lambda,
        seed=cfg.seed,
        train=as_dict(train),
        teacher=teacher,
    )


def build_datamodule(
    cfg: Config,
    labels: str | Path | pd.DataFrame,
    samples: str | Path | pd.DataFrame | None,
    teacher: str = TEACHER,
):
    from ..student.network import interface_of
    from .data import FrameDataModule

    face = interface_of(teacher)
    return FrameDataModule(
        labels,
        order=face.order,
        targets=face.targets,
        samples=samples,
        batch_size=cfg.train.batch_size,
        augment=cfg.train.augment,
        sample_weight=cfg.train.sample_weight,
        seed=cfg.seed,
    )


@torch.no_grad()
def predict(student: StudentMLP, x: torch.Tensor) -> np.ndarray:
    """The shipped function (eval mode, clipped) on raw features."""
    student.eval()
    return student(x).double().numpy()


def scatter_plot(pred: np.ndarray, target: np.ndarray, path: Path, title: str) -> Path:
    """Student vs teacher on the val frames, with the identity line: where the student bends away shows at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = {"plcc": pearson(pred, target), "rmse": float(np.sqrt(np.mean((pred - target) ** 2)))}
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.scatter(target, pred, s=4, alpha=0.4, linewidths=0)
    ax.plot([0, 100], [0, 100], color="k", lw=0.8)
    ax.set(xlim=(0, 100), ylim=(0, 100), xlabel="teacher (vmaf_v0.6.1)", ylabel="student")
    ax.set_title(f"{title}\nval frames PLCC {m['plcc']:.5f}  RMSE {m['rmse']:.4f}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_history_csv(history: Sequence[dict[str, float]], path: Path) -> Path:
    """Per-epoch curves, the columns DVC plots reads."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(HISTORY_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for rec in history:
            w.writerow({k: (int(rec[k]) if k == "epoch" else repr(float(rec[k]))) for k in HISTORY_COLUMNS})
    return path


def fit_one(
    cfg: Config,
    labels: str | Path | pd.DataFrame,
    samples: str | Path | pd.DataFrame | None,
    *,
    workdir: str | Path,
    callbacks: Sequence[Any] = (),
    progress: bool | None = None,
    teacher: str = TEACHER,
) -> ArchResult:
    """Train ``cfg.arch`` on the train rows, checkpoint the lowest-val-RMSE epoch into ``workdir``.

    Returns that epoch's metrics, the full history and the paths of the
    checkpoint, the val scatter plot and the resolved config.  ``callbacks``
    are extra Lightning callbacks (the MLflow epoch logger).  Test rows are
    never touched here (export and the gate read them).
    """
    import pytorch_lightning as pl
    from omegaconf import OmegaConf
    from pytorch_lightning.callbacks import ModelCheckpoint

    quiet_lightning()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    train = cfg.train
    name = cfg.arch.name
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(train.threads)
    t0 = time.perf_counter()
    try:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dm = build_datamodule(cfg, labels, samples, teacher)
        dm.setup("fit")
        model = build_model(cfg, teacher)
        # Statistics of what the network sees: the corrected features (identity without a chroma correction).
        xc = model.student.correct(dm.splits["train"].x).double()
        model.student.set_normalisation(xc.mean(0).float(), xc.std(0, unbiased=False).float())
        model.val_frames = dm.splits["val"].n_frames
        y = dm.splits["train"].y.double()
        model.init_output(y.mean(0), y.std(0))
        if model.hparams.mos_lambda > 0:
            if not dm.has_mos("train"):
                raise ValueError("train.mos_lambda > 0 but no train pair has a MOS/DMOS in the manifest")
            model.set_mos_targets(dm.splits["train"].mos100)
        ckpt_cb = ModelCheckpoint(
            dirpath=workdir,
            filename="best",
            monitor=MONITOR,
            mode="min",
            save_top_k=1,
            save_weights_only=True,  # a deliverable, not a resume point: no optimizer state
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
        trainer = pl.Trainer(
            max_epochs=train.epochs,
            accelerator=train.accelerator,
            devices=1,
            deterministic=train.deterministic,
            logger=False,
            callbacks=[ckpt_cb, *callbacks],
            enable_progress_bar=default_progress() if progress is None else progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=workdir,
            check_val_every_n_epoch=1,
        )
        t_fit = time.perf_counter()
        trainer.fit(model, datamodule=dm)
        fit_seconds = time.perf_counter() - t_fit
        seconds = time.perf_counter() - t0

        ckpt_path = Path(ckpt_cb.best_model_path)
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        best_epoch = int(ckpt["epoch"])
        model.load_state_dict(ckpt["state_dict"])
        rec = next(r for r in model.history if r["epoch"] == best_epoch)
        val = dm.splits["val"]
        pred = predict(model.student, val.x)
        target = val.y.double().numpy()
        check = float(np.sqrt(np.mean((pred - target) ** 2)))
        if abs(check - rec[MONITOR]) > 1e-6 * max(1.0, check):  # the checkpoint is not the epoch we think it is
            raise RuntimeError(f"{name}: checkpoint val RMSE {check} != epoch {best_epoch}'s {rec[MONITOR]}")
        n = val.n_frames
        title = f"{name} (epoch {best_epoch})"
        if pred.ndim == 2:  # bootstrap heads: the plot shows head 0, the score's component
            pred, target = pred[:, 0], target[:, 0]
        scatter = scatter_plot(pred[:n], target[:n], workdir / "val_scatter.png", title) if n >= 2 else None
        config_path = workdir / "config.yaml"
        config_path.write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    finally:
        torch.set_num_threads(prev_threads)
    return ArchResult(
        arch=name,
        width=model.student.width,
        depth=model.student.depth,
        activation=model.student.activation,
        n_params=model.student.n_parameters(),
        best_epoch=best_epoch,
        epochs=len(model.history),
        val={k: float(rec[k]) for k in METRICS if k != "train_loss"},
        history=list(model.history),
        ckpt_path=ckpt_path,
        scatter_path=scatter,
        config_path=config_path,
        seconds=seconds,
        fit_seconds=fit_seconds,
    )


def choose_winner(results: Sequence[ArchResult]) -> ArchResult:
    """Highest val PLCC; PLCCs within :data:`PLCC_TIE` of the best tie, and the lowest val RMSE among them wins.

    Still tied: the smaller net (cheaper to ship), then the earlier in the sweep.
    """
    if not results:
        raise ValueError("no arch was trained")
    best = max(r.val["val_plcc"] for r in results)
    tied = [(i, r) for i, r in enumerate(results) if r.val["val_plcc"] >= best - PLCC_TIE]
    return min(tied, key=lambda ir: (ir[1].val["val_rmse"], ir[1].n_params, ir[0]))[1]


class EpochProgress:
    """A Lightning callback that logs each epoch's val record: progress for runs nobody watches on a TTY."""

    def __new__(cls, name: str, every: int = 5):
        import pytorch_lightning as pl

        class _EpochProgress(pl.Callback):
            def on_validation_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
                history = getattr(pl_module, "history", None)
                if trainer.sanity_checking or not history:
                    return
                rec = history[-1]
                e = int(rec["epoch"])
                if e % every == every - 1 or e == trainer.max_epochs - 1:
                    log.info(
                        "%s: epoch %d/%d val RMSE %.4f (frames %.4f, dense %.4f) PLCC %.6f",
                        name,
                        e + 1,
                        trainer.max_epochs,
                        rec["val_rmse"],
                        rec["val_frames_rmse"],
                        rec["val_dense_rmse"],
                        rec["val_plcc"],
                    )

        return _EpochProgress()


def _fit_job(
    cfg: Config,
    labels: str | Path | pd.DataFrame,
    samples: str | Path | pd.DataFrame | None,
    workdir: Path,
    teacher: str = TEACHER,
) -> ArchResult:
    """One arch in a worker process (module-level, so a spawned process can import it)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return fit_one(
        cfg,
        labels,
        samples,
        workdir=workdir,
        callbacks=[EpochProgress(cfg.arch.name)],
        progress=False,
        teacher=teacher,
    )


def fit_archs(
    cfg: Config,
    archs: Sequence[ArchConfig],
    labels: str | Path | pd.DataFrame,
    samples: str | Path | pd.DataFrame | None,
    *,
    workdir: Path,
    jobs: int,
    progress: bool | None = None,
    on_result: Any = None,
    teacher: str = TEACHER,
) -> list[ArchResult]:
    """Train every arch, ``jobs`` at a time (each in its own process when ``jobs > 1``); results in sweep order.

    ``on_result(result)`` is called as each arch finishes (the tracker logs it
    then).  Each arch is seeded the same way whichever process trains it, so
    ``jobs`` changes the wall time, never the result.
    """
    cfgs = [with_arch(cfg, a) for a in archs]
    dirs = [workdir / a.name for a in archs]
    if jobs <= 1 or len(archs) <= 1:
        out = []
        for c, d in zip(cfgs, dirs, strict=True):
            res = fit_one(
                c,
                labels,
                samples,
                workdir=d,
                callbacks=[EpochProgress(c.arch.name)],
                progress=progress,
                teacher=teacher,
            )
            if on_result is not None:
                on_result(res)
            out.append(res)
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    done: dict[int, ArchResult] = {}
    # Longest first (a Linear's cost grows as width² · depth): the pool's last job is then a short one,
    # not the 64x3 started after the others (127 s → ~110 s for the default sweep on two cores).
    order = sorted(range(len(archs)), key=lambda i: -(archs[i].width ** 2) * archs[i].depth)
    with ProcessPoolExecutor(max_workers=min(jobs, len(archs)), mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_fit_job, cfgs[i], labels, samples, dirs[i], teacher): i for i in order}
        for fut in as_completed(futures):
            res = fut.result()
            done[futures[fut]] = res
            if on_result is not None:
                on_result(res)
    return [done[i] for i in range(len(archs))]


def run_sweep(
    cfg: Config,
    archs: Sequence[ArchConfig],
    labels: str | Path | pd.DataFrame,
    samples: str | Path | pd.DataFrame | None,
    *,
    workdir: str | Path,
    jobs: int,
    parent_run_id: str | None = None,
    create_parent: bool = True,
    track: bool = True,
    progress: bool | None = None,
    teacher: str = TEACHER,
) -> SweepResult:
    """Train every arch of ``archs`` and pick the winner (:func:`choose_winner`).

    MLflow: with ``parent_run_id`` the archs become its children (a Hydra
    job in a multirun); else with ``create_parent`` this call opens and
    closes its own parent (the DVC stage); else each arch is a top-level run
    (``python train.py`` without ``-m``).  ``track=False`` skips MLflow.
    Each arch's run is opened before training starts and receives its
    per-epoch metrics (``step`` = epoch), best-epoch figures and artifacts
    when the arch finishes.
    """
    workdir = Path(workdir)
    tracker = None
    own_parent = None
    run_ids: dict[str, str] = {}
    if track:
        from .tracking import Tracker

        tracker = Tracker(cfg)
        if parent_run_id is None and create_parent:
            own_parent = tracker.start_run(
                f"sweep {teacher}", cfg, tags={"archs": ",".join(a.name for a in archs), "teacher": teacher}
            )
            parent_run_id = own_parent
        for a in archs:
            run_ids[a.name] = tracker.start_run(
                a.name, with_arch(cfg, a), parent_run_id=parent_run_id, tags={"arch": a.name, "teacher": teacher}
            )

    def record(res: ArchResult) -> None:
        log.info(
            "%s: best epoch %d/%d val RMSE %.4f PLCC %.6f SROCC %.6f (%.1fs)",
            res.arch,
            res.best_epoch,
            res.epochs,
            res.val["val_rmse"],
            res.val["val_plcc"],
            res.val["val_srocc"],
            res.seconds,
        )
        if tracker is not None:
            res.run_id = run_ids[res.arch]
            tracker.log_result(res)

    t0 = time.perf_counter()
    try:
        results = fit_archs(
            cfg,
            archs,
            labels,
            samples,
            workdir=workdir,
            jobs=jobs,
            progress=progress,
            on_result=record,
            teacher=teacher,
        )
    except BaseException:
        if tracker is not None:
            for rid in run_ids.values():
                tracker.end_run(rid, "FAILED", only_running=True)
            if own_parent is not None:
                tracker.end_run(own_parent, "FAILED")
        raise
    seconds = time.perf_counter() - t0
    winner = choose_winner(results)
    if tracker is not None and own_parent is not None:
        tracker.client.set_tag(own_parent, "winner", winner.arch)
        tracker.log_metrics(
            own_parent,
            {
                "best_val_plcc": winner.val["val_plcc"],
                "best_val_rmse": winner.val["val_rmse"],
                "sweep_seconds": seconds,
            },
        )
        tracker.end_run(own_parent)
    return SweepResult(results, winner, seconds, parent_run_id, run_ids)
