"""No secret from the environment reaches anything the project writes (issue: reliability, secrets).

The shared pipeline (``servers.pipeline``) ran ``dvc repro`` with canary values in
``AWS_SECRET_ACCESS_KEY`` and ``MLFLOW_TRACKING_PASSWORD``; here a Hydra training
run and a model promotion (in a copy of that project) run with them too.  Then every byte they produced is
searched: the project tree (params, metrics, reports, the ONNX file and its
sidecar, DVC's cache of every output), the MLflow store and its artifacts, the
Hydra output folders, the extraction cache and every log printed.  Also: every
server the project starts binds to 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kit import REPO
from project import run
from servers import CANARY, CANARY_ENV

if TYPE_CHECKING:
    from servers import Pipeline

pytest_plugins = ["servers"]
pytestmark = pytest.mark.slow


def files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink() and needle in p.read_bytes():
            hits.append(str(p.relative_to(root)))
    return hits


def test_canary_secrets_reach_no_output(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline = pipeline.copy(tmp_path / "A")  # the promotion writes into the project
    work = tmp_path / "work"
    work.mkdir()
    env = {**CANARY_ENV, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    logs = [pipeline.repro_output]
    train = [sys.executable, str(pipeline.path / "train.py"), "arch=mlp_32x2", "train.epochs=1"]
    logs.append(run([*train, f"+labels={pipeline.labels}", f"+samples={pipeline.samples}"], work, env, timeout=300))
    logs.append(run(["tinyvmaf", "model", "promote"], pipeline.path, env, timeout=300))
    assert "registered vmaf_tiny_fr version 1" in logs[-1]
    assert (work / "mlflow.db").is_file() and list(work.rglob("config.yaml")), "nothing was written to search"

    needle = CANARY.encode()
    assert not files_containing(pipeline.path, needle)  # tree, params.yaml, outputs, .dvc/cache, mlflow.db
    assert not files_containing(work, needle)  # MLflow store and artifacts, Hydra outputs
    assert not files_containing(pipeline.cache_dir, needle)  # extraction cache and journal
    assert not any(CANARY in text for text in logs)
    onnx_file = pipeline.path / "model" / "tiny" / "vmaf_tiny_fr_v2_nflx.onnx"
    assert needle not in onnx_file.read_bytes() and onnx_file.is_file()


def test_every_server_binds_to_loopback() -> None:
    make = subprocess.run(["make", "-n", "ui"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "--host 127.0.0.1" in make
    readme = (REPO / "README.md").read_text()
    for line in readme.splitlines():
        if ("mlflow server" in line or "mlflow ui" in line) and "--host" in line:
            assert "--host 127.0.0.1" in line, line
