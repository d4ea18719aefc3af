"""A team MLflow server: SQLite backend, proxied artifacts, training logging to it over HTTP.

``mlflow server --backend-store-uri sqlite:///... --artifacts-destination ...
--serve-artifacts`` runs on 127.0.0.1; a ``python train.py -m`` sweep logs to
it through ``MLFLOW_TRACKING_URI`` alone.  Everything is read back through the server with ``MlflowClient``:
runs, per-epoch metrics, and artifacts that the clients uploaded through the
server (they land in the artifact destination, never beside the client).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from project import finish, start

if TYPE_CHECKING:
    from servers import Pipeline

pytest_plugins = ["servers"]
pytestmark = pytest.mark.slow


def test_training_logs_to_team_server(tmp_path: Path, pipeline: Pipeline) -> None:
    from mlflow.tracking import MlflowClient

    from servers import mlflow_server

    store = tmp_path / "server"
    store.mkdir()
    backend = f"sqlite:///{store / 'mlflow.db'}"
    artifacts = store / "artifacts"
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    train = [sys.executable, str(pipeline.path / "train.py")]
    common = [f"+labels={pipeline.labels}", f"+samples={pipeline.samples}", "train.epochs=2"]

    with mlflow_server(backend, store, artifacts=artifacts) as url:
        # Two sweeps at once, two client folders, one server: both finish, each with its own runs.
        other_dir = tmp_path / "client2"
        other_dir.mkdir()
        server = {"MLFLOW_TRACKING_URI": url}
        jobs = [
            (folder, start([*train, "-m", *common, arch], folder, folder / "client.log", server))
            for folder, arch in ((client_dir, "arch=mlp_32x2,mlp_64x2"), (other_dir, "arch=mlp_64x3"))
        ]
        for folder, proc in jobs:
            finish(proc, folder / "client.log", timeout=400)

        client = MlflowClient(tracking_uri=url)
        exp = client.get_experiment_by_name("tinyvmaf")
        assert exp is not None
        assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location  # proxied
        runs = client.search_runs([exp.experiment_id])
        sweeps = [r for r in runs if r.info.run_name == "sweep"]
        assert len(runs) == 5 and len(sweeps) == 2, [r.info.run_name for r in runs]  # two parents, three children
        children = {
            s.info.run_id: sorted(
                r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == s.info.run_id
            )
            for s in sweeps
        }
        assert sorted(children.values()) == [["mlp_32x2", "mlp_64x2"], ["mlp_64x3"]]
        assert all(s.info.status == "FINISHED" for s in sweeps)

        for r in (r for r in runs if r.info.run_name != "sweep"):
            assert r.info.status == "FINISHED"
            for metric in ("val_plcc", "val_srocc", "val_rmse", "val_dense_rmse", "val_loss", "train_loss"):
                steps = [m.step for m in client.get_metric_history(r.info.run_id, metric)]
                assert steps == [0, 1], (r.info.run_name, metric, steps)
            # Artifacts went up through the server, and come back through it byte for byte.
            names = {a.path for a in client.list_artifacts(r.info.run_id)}
            assert {"best.ckpt", "config.yaml"} <= names, names
            local = Path(client.download_artifacts(r.info.run_id, "config.yaml", str(tmp_path / r.info.run_id)))
            stored = list(artifacts.rglob(f"{r.info.run_id}/artifacts/config.yaml"))
            assert len(stored) == 1, stored
            assert local.read_bytes() == stored[0].read_bytes()

    # The clients wrote no store of their own.
    assert not (client_dir / "mlflow.db").exists()
    assert not (client_dir / "mlartifacts").exists()
    assert not (client_dir / "mlruns").exists()
    assert not (tmp_path / "client2" / "mlflow.db").exists()
