"""MLflow tracking: one parent run per sweep, one child run per arch, a metric point per epoch.

Everything goes through :class:`mlflow.MlflowClient` with an explicit
tracking URI (never the fluent API's global "active run", never Lightning's
``MLFlowLogger``, which defaults to a ``./mlruns`` file store that MLflow ≥
3.13 refuses).  The URI is ``$MLFLOW_TRACKING_URI`` if set, else
``mlflow.tracking_uri`` from the config (``sqlite:///mlflow.db``).  Artifacts
of an experiment this module creates go to ``mlartifacts/`` beside the
SQLite file (MLflow would otherwise pick ``./mlruns/``).

Hydra multirun: :class:`MlflowSweepCallback` (``hydra.callbacks`` in
``conf/config.yaml``) opens the parent run in ``on_multirun_start`` and
passes its id to the jobs through ``$TINYVMAF_MLFLOW_PARENT_RUN_ID``, which
both the basic launcher (same process) and the joblib launcher (worker
processes spawned afterwards inherit the environment) deliver.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

from .provenance import data_version, git_commit

log = logging.getLogger(__name__)

PARENT_ENV = "TINYVMAF_MLFLOW_PARENT_RUN_ID"
DEFAULT_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "tinyvmaf"
MAX_PARAM_LEN = 6000  # MLflow's limit on a param value


def tracking_uri(cfg: Mapping | None = None) -> str:
    """``$MLFLOW_TRACKING_URI`` wins over ``mlflow.tracking_uri`` in the config."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    section = (cfg or {}).get("mlflow") or {}
    return str(section.get("tracking_uri") or DEFAULT_URI)


def experiment_name(cfg: Mapping | None = None) -> str:
    section = (cfg or {}).get("mlflow") or {}
    return str(section.get("experiment") or DEFAULT_EXPERIMENT)


def artifact_location(uri: str) -> str | None:
    """``mlartifacts/`` beside a SQLite store, as a file URI; ``None`` (the server decides) otherwise."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    db = Path(uri[len(prefix) :])
    return (db.resolve().parent / "mlartifacts").as_uri()


def flatten(cfg: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys → string values (lists as JSON), the form MLflow params take."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    out: dict[str, str] = {}
    if isinstance(cfg, Mapping):
        for k, v in cfg.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    value = json.dumps(cfg) if isinstance(cfg, list | tuple) else str(cfg)
    out[prefix.rstrip(".")] = value[:MAX_PARAM_LEN]
    return out


def run_tags(cfg: Mapping | None = None) -> dict[str, str]:
    commit = git_commit(mark_dirty=True)
    return {
        "git_commit": commit,
        "mlflow.source.git.commit": commit.removesuffix("-dirty"),
        "data_version": data_version(),
        "teacher": str(((cfg or {}).get("label") or {}).get("teacher", "")),
    }


class Tracker:
    """A thin, explicit-URI wrapper over ``MlflowClient`` for the sweep's runs."""

    def __init__(self, cfg: Mapping | None = None) -> None:
        from mlflow import MlflowClient

        self.uri = tracking_uri(cfg)
        self.client = MlflowClient(tracking_uri=self.uri)
        name = experiment_name(cfg)
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            self.experiment_id = self.client.create_experiment(name, artifact_location=artifact_location(self.uri))
        else:
            self.experiment_id = exp.experiment_id
        self.tags = run_tags(cfg)

    def start_run(
        self, name: str, cfg: Mapping | None = None, *, parent_run_id: str | None = None, tags: dict | None = None
    ) -> str:
        """A new run (a child of ``parent_run_id`` when given) with the flattened config as params."""
        from mlflow.entities import Param

        all_tags = {**self.tags, "mlflow.runName": name, **(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=name)
        run_id = run.info.run_id
        if cfg is not None:
            params = [Param(k, v) for k, v in flatten(cfg).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                self.client.log_batch(run_id, params=params[i : i + 100])
        return run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        self.client.log_batch(run_id, metrics=batch)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def epoch_callback(self, run_id: str) -> Any:
        """A Lightning callback logging each epoch's record (``step`` = epoch) to ``run_id``."""
        return _epoch_logger(self, run_id)


def _epoch_logger(tracker: Tracker, run_id: str) -> Any:
    """Built on demand so importing this module (Hydra does, for the callback) does not import Lightning."""
    import pytorch_lightning as pl

    class EpochLogger(pl.Callback):
        """Logs ``pl_module.history[-1]`` once per epoch, after the module has closed it.

        ``on_validation_end`` runs after every ``on_validation_epoch_end`` (where
        :class:`~tinyvmaf.lit_student.LitStudent` writes the record), and
        validation runs once per training epoch, after its last step.
        """

        def __init__(self) -> None:
            super().__init__()
            self.logged_epochs: set[int] = set()

        def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            history = getattr(pl_module, "history", None)
            if trainer.sanity_checking or not history:
                return
            rec = history[-1]
            epoch = int(rec["epoch"])
            if epoch in self.logged_epochs:
                return
            self.logged_epochs.add(epoch)
            tracker.log_metrics(run_id, {k: v for k, v in rec.items() if k != "epoch"}, step=epoch)

    return EpochLogger()


def best_child(tracker: Tracker, parent_run_id: str, metric: str = "val_plcc") -> tuple[str, str, float] | None:
    """``(run_id, run_name, value)`` of the parent's child with the highest final ``metric``."""
    runs = tracker.client.search_runs(
        [tracker.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )
    scored = [(r.info.run_id, r.info.run_name, r.data.metrics.get(f"best_{metric}")) for r in runs]
    scored = [s for s in scored if s[2] is not None]
    return max(scored, key=lambda s: s[2]) if scored else None


class MlflowSweepCallback(HydraCallback):
    """Hydra callback: the parent run of a multirun sweep; jobs find it through :data:`PARENT_ENV`."""

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.tracker: Tracker | None = None
        self.t0 = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        task_cfg = {k: v for k, v in config.items() if k != "hydra"}
        self.tracker = Tracker(task_cfg)
        overrides = list(config.hydra.overrides.task) if "hydra" in config else []
        sweep_params = OmegaConf.to_container(config.hydra.sweeper.get("params") or {}) if "hydra" in config else {}
        self.parent_run_id = self.tracker.start_run(
            "sweep",
            OmegaConf.create(task_cfg),
            tags={"sweep_overrides": " ".join(overrides)[:5000], "sweep_params": json.dumps(sweep_params)[:5000]},
        )
        os.environ[PARENT_ENV] = self.parent_run_id
        self.t0 = time.perf_counter()
        # A failing job makes Hydra raise before on_multirun_end: close the parent as FAILED on the way out.
        atexit.register(self._abandon)
        log.info("MLflow parent run %s at %s", self.parent_run_id, self.tracker.uri)

    def _abandon(self) -> None:
        if self.tracker is not None and self.parent_run_id is not None:
            self.tracker.end_run(self.parent_run_id, "FAILED")
            self.parent_run_id = None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ.pop(PARENT_ENV, None)
        atexit.unregister(self._abandon)
        if self.tracker is None or self.parent_run_id is None:
            return
        best = best_child(self.tracker, self.parent_run_id)
        if best is not None:
            run_id, name, value = best
            self.tracker.client.set_tag(self.parent_run_id, "winner", name)
            self.tracker.client.set_tag(self.parent_run_id, "winner_run_id", run_id)
            self.tracker.log_metrics(self.parent_run_id, {"best_val_plcc": value})
        self.tracker.log_metrics(self.parent_run_id, {"sweep_seconds": time.perf_counter() - self.t0})
        self.tracker.end_run(self.parent_run_id)
