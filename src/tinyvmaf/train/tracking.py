"""MLflow tracking: one parent run per sweep, one child run per arch, a metric point per epoch.

Everything goes through :class:`mlflow.MlflowClient` with an explicit
tracking URI (never the fluent API's global "active run", never Lightning's
``MLFlowLogger``, which defaults to a ``./mlruns`` file store that MLflow ≥
3.13 refuses).  The URI is ``$MLFLOW_TRACKING_URI`` if set, else
``mlflow.tracking_uri`` from the config (``sqlite:///mlflow.db``).  Artifacts
of an experiment this module creates go to ``mlartifacts/`` beside the
SQLite file (MLflow would otherwise pick ``./mlruns/``).

What is environment rather than result lives here and only here: the git
commit, the host, wall times.  DVC outputs never carry them, so the same
data and params give the same files on any machine, at any commit.

Hydra multirun: :class:`MlflowSweepCallback` (``hydra.callbacks`` in
``conf/config.yaml``) opens the parent run in ``on_multirun_start`` and
passes its id to the jobs through ``$TINYVMAF_MLFLOW_PARENT_RUN_ID``, which
both the basic launcher (same process) and the joblib launcher (worker
processes spawned afterwards inherit the environment) deliver.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

from ..common.provenance import data_version, git_commit
from ..config.schema import Config

if TYPE_CHECKING:
    from .loop import ArchResult

log = logging.getLogger(__name__)

PARENT_ENV = "TINYVMAF_MLFLOW_PARENT_RUN_ID"
MAX_PARAM_LEN = 6000  # MLflow's limit on a param value


def tracking_uri(cfg: Config) -> str:
    """``$MLFLOW_TRACKING_URI`` wins over ``mlflow.tracking_uri`` in the config."""
    return os.environ.get("MLFLOW_TRACKING_URI") or cfg.mlflow.tracking_uri


def artifact_location(uri: str) -> str | None:
    """``mlartifacts/`` beside a SQLite store, as a file URI; ``None`` (the server decides) otherwise."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    db = Path(uri[len(prefix) :])
    return (db.resolve().parent / "mlartifacts").as_uri()


@contextlib.contextmanager
def store_creation_lock(uri: str) -> Iterator[None]:
    """Hold ``<db>.lock`` while a SQLite store is first touched (its tables are made then).

    MLflow creates and migrates a new SQLite store on its first use; two
    processes doing it at once (``tinyvmaf repro`` trains students side by
    side) fail with ``duplicate column name: step``.  Measured on MLflow 3.13.
    Other stores (a server) serialise that themselves: no lock.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        yield
        return
    from filelock import FileLock

    db = Path(uri[len(prefix) :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{db}.lock", timeout=600):
        yield


def flatten(cfg: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys → string values (lists as JSON), the form MLflow params take."""
    if not isinstance(cfg, Mapping | DictConfig) and hasattr(cfg, "__dataclass_fields__"):
        cfg = OmegaConf.structured(cfg)
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


def run_tags(cfg: Config) -> dict[str, str]:
    """Where a run came from: commit (``-dirty`` when tracked files changed), host, data version (teacher: per run)."""
    commit = git_commit(mark_dirty=True)
    return {
        "git_commit": commit,
        "mlflow.source.git.commit": commit.removesuffix("-dirty"),
        "host": socket.gethostname(),
        "data_version": data_version(cfg.paths.data_dvc),
    }


class Tracker:
    """A thin, explicit-URI wrapper over ``MlflowClient`` for the sweep's runs."""

    def __init__(self, cfg: Config) -> None:
        from mlflow import MlflowClient

        self.uri = tracking_uri(cfg)
        with store_creation_lock(self.uri):
            self.client = MlflowClient(tracking_uri=self.uri)
            self.experiment_id = self.experiment(cfg.mlflow.experiment)
        self.tags = run_tags(cfg)

    def experiment(self, name: str) -> str:
        """The experiment's id, creating it if needed; two clients creating it at once both end up with it."""
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=artifact_location(self.uri))
        except MlflowException:
            exp = self.client.get_experiment_by_name(name)  # another client created it in between
            if exp is None:
                raise
            return exp.experiment_id

    def start_run(
        self, name: str, cfg: Config | None = None, *, parent_run_id: str | None = None, tags: dict | None = None
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

    def log_history(self, run_id: str, history: list[dict[str, float]]) -> None:
        """Every epoch's record, ``step`` = epoch (MLflow takes at most 1000 metrics per batch)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(rec["epoch"])) for rec in history for k, v in rec.items() if k != "epoch"]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(run_id, metrics=batch[i : i + 1000])

    def log_result(self, res: ArchResult) -> None:
        """One finished arch: its curves, best-epoch figures, wall time and artifacts; closes its run."""
        assert res.run_id is not None
        self.log_history(res.run_id, res.history)
        best = {f"best_{k}": v for k, v in res.val.items()}
        self.log_metrics(
            res.run_id, {**best, "best_epoch": res.best_epoch, "n_params": res.n_params, "train_seconds": res.seconds}
        )
        for path in (res.config_path, res.ckpt_path, res.scatter_path):
            if path is not None:
                self.client.log_artifact(res.run_id, str(path))
        self.end_run(res.run_id)

    def end_run(self, run_id: str, status: str = "FINISHED", *, only_running: bool = False) -> None:
        if only_running and self.client.get_run(run_id).info.status != "RUNNING":
            return
        self.client.set_terminated(run_id, status=status)


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
        from ..config.params import validate, without_run_options

        task, _ = without_run_options(OmegaConf.masked_copy(config, [k for k in config if k != "hydra"]))
        cfg = validate(task, source="conf/")
        self.tracker = Tracker(cfg)
        overrides = list(config.hydra.overrides.task) if "hydra" in config else []
        sweep_params = OmegaConf.to_container(config.hydra.sweeper.get("params") or {}) if "hydra" in config else {}
        self.parent_run_id = self.tracker.start_run(
            "sweep",
            cfg,
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
