"""MLflow's SQLite store made by several processes at once (tinyvmaf.train.tracking.store_creation_lock).

`tinyvmaf repro` trains students side by side; on a fresh clone no mlflow.db
exists yet, and MLflow creates and migrates the store on first use.  Without
the lock two processes doing so at once fail (``duplicate column name``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from project import REPO, env

CHILD = """
import sys
from tinyvmaf.config import compose_conf, validate
from tinyvmaf.train.tracking import Tracker
cfg = validate(compose_conf(sys.argv[1] + "/conf", []))
tracker = Tracker(cfg)
run = tracker.start_run("probe-" + sys.argv[2])
print("ok", tracker.experiment_id, run)
"""


def test_three_processes_create_one_sqlite_store_at_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(REPO), str(i)],
            cwd=tmp_path,
            env=env({"MLFLOW_TRACKING_URI": uri}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    experiments = {out.split()[1] for out, _ in outs}
    assert len(experiments) == 1  # one experiment, found or made by each
    from mlflow import MlflowClient

    runs = MlflowClient(tracking_uri=uri).search_runs(list(experiments))
    assert sorted(r.info.run_name for r in runs) == ["probe-0", "probe-1", "probe-2"]
