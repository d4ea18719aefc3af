"""DVC experiments on this project: ``dvc exp run -S``, a queued arch sweep, ``dvc exp show``.

The experiments run in a clone of the shared small pipeline (``servers.pipeline``;
here a private copy of it, A, since the experiments write into its cache) that
uses A's DVC cache as a shared cache directory (``dvc cache dir``), the
set-up a team on one machine or one NFS mount would use, so its outputs are
checked out, not recomputed.  DVC composes ``params.yaml`` from ``conf/`` with
the ``-S`` overrides (``hydra.enabled``); the tests read the overrides back from
the metrics the stages wrote, so an override that never reached the model fails.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from project import journal_lines, run

if TYPE_CHECKING:
    from servers import Pipeline

pytest_plugins = ["servers"]
pytestmark = pytest.mark.slow


def worker_processes(repo: Path) -> list[int]:
    """Live DVC queue workers of ``repo`` (what a hung `--run-all` leaves behind)."""
    from tinyvmaf.experiments.queue import worker_pids

    return worker_pids(repo)


def experiments(repo: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``dvc exp show --json``: each experiment by name, as ``{"params": ..., "metrics": {file: data}}``."""
    rows = json.loads(run(["dvc", "exp", "show", "--json"], repo, env))
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        for exp in row.get("experiments") or []:
            for rev in exp["revs"]:
                data = rev["data"]
                out[rev["name"]] = {
                    "params": data["params"]["params.yaml"]["data"],
                    "metrics": {f: m.get("data") for f, m in (data.get("metrics") or {}).items()},
                }
    return out


@pytest.fixture(scope="module")
def exp_repo(tmp_path_factory: pytest.TempPathFactory, pipeline: Pipeline) -> Iterator[tuple[Path, dict[str, str]]]:
    """A clone of A (a copy of the shared pipeline's) on A's DVC cache (shared), its outputs checked out,
    its own empty extraction cache."""
    root = tmp_path_factory.mktemp("exp")
    a = pipeline.copy(root / "A").path
    repo = root / "E"
    env = {"TINYVMAF_CACHE_DIR": str(root / "extract-cache")}
    run(["git", "clone", "-q", str(a), str(repo)], root)
    run(["dvc", "cache", "dir", "--local", str(a / ".dvc" / "cache")], repo, env)
    run(["dvc", "checkout"], repo, env)
    assert "up to date" in run(["dvc", "status"], repo, env)
    yield repo, env
    from tinyvmaf.experiments.queue import stop_workers

    stop_workers(repo)  # whatever happened above, no queue worker outlives the module


def test_exp_run_with_a_train_param(exp_repo: tuple[Path, dict[str, str]]) -> None:
    import torch

    repo, env = exp_repo
    base = json.loads((repo / "metrics" / "vmaf_v0.6.1" / "train.json").read_text())
    base_epochs = {a: m["epochs"] for a, m in base["archs"].items()}
    # A learning rate near the default, not one epoch: the experiment must still pass the default gate.
    out = run(["dvc", "exp", "run", "-S", "train.lr=0.015", "-n", "lower-lr"], repo, env)
    # Only what depends on train params ran; the features were not extracted again.
    for stage in ("extract", "golden", "label@v061", "sample@v061"):
        assert f"Stage '{stage}' didn't change" in out, out
    for stage in ("train@v061", "export@v061", "eval@v061", "gate@v061"):
        assert f"Running stage '{stage}'" in out, out
    assert journal_lines(Path(env["TINYVMAF_CACHE_DIR"])) == []

    exp = experiments(repo, env)["lower-lr"]
    assert exp["params"]["train"]["lr"] == 0.015
    # The override reached the model (its checkpoint records it); the scores moved, the epochs did not.
    ckpt = torch.load(repo / "models" / "vmaf_v0.6.1" / "best.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["train"]["lr"] == 0.015
    train = exp["metrics"]["metrics/vmaf_v0.6.1/train.json"]
    assert {a: m["epochs"] for a, m in train["archs"].items()} == base_epochs
    for arch, m in train["archs"].items():  # (trained to the default gate, PLCC rounds to 0.999999 either way)
        assert m["val_rmse"] != base["archs"][arch]["val_rmse"], arch
    gate = exp["metrics"]["metrics/vmaf_v0.6.1/gate.json"]
    assert gate is not None and gate["pass"] is True

    # Back to the baseline for the next test (a queued run starts from the workspace).
    run(["git", "checkout", "--", "."], repo, env)
    run(["dvc", "checkout", "--force"], repo, env)


#: `make stress` runs the queued sweep this many times in a row (CI: once); each round trains new experiments.
ROUNDS = int(os.environ.get("TINYVMAF_STRESS_ROUNDS", "1"))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_queued_arch_sweep_and_exp_show(exp_repo: tuple[Path, dict[str, str]], round_: int) -> None:
    repo, env = exp_repo
    before = set(experiments(repo, env))
    seed = [] if round_ == 0 else ["-S", f"seed={1234 + round_}"]  # round 0 is the default config
    queue = ["dvc", "exp", "run", "-S", "arch=mlp_32x2,mlp_64x2", "-S", "sweep=single", *seed, "--queue"]
    out = run(queue, repo, env)
    assert out.count("Queued experiment") == 2, out
    # Not `dvc exp run --run-all -j 2`: its workers can hang after every experiment succeeded
    # (DVC #10398, #10428). `tinyvmaf queue` waits on the tasks, with a deadline, and stops the workers.
    out = run(["tinyvmaf", "queue", "-j", "2", "--timeout", "500"], repo, env, timeout=600)
    assert "2 experiment(s) succeeded" in out, out
    status = run(["dvc", "queue", "status"], repo, env)
    assert "Failed" not in status and "Queued" not in status and "Running" not in status, status
    assert "0 active, 0 idle" in status, status  # no worker left behind
    assert worker_processes(repo) == [], "queue workers still running"

    new = {name: e for name, e in experiments(repo, env).items() if name not in before}
    by_arch = {e["params"]["arch"]["name"]: e for e in new.values()}
    assert sorted(by_arch) == ["mlp_32x2", "mlp_64x2"], sorted(new)
    for arch, e in by_arch.items():
        assert e["params"]["sweep"]["archs"] == [arch]
        train = e["metrics"]["metrics/vmaf_v0.6.1/train.json"]
        assert train["winner"] == arch and list(train["archs"]) == [arch]
        gate = e["metrics"]["metrics/vmaf_v0.6.1/gate.json"]
        assert gate is not None and gate["pass"] is True, (arch, gate)
    # Different models, different scores: each experiment trained its own arch.
    assert (
        by_arch["mlp_32x2"]["metrics"]["metrics/vmaf_v0.6.1/train.json"]["val_rmse"]
        != (by_arch["mlp_64x2"]["metrics"]["metrics/vmaf_v0.6.1/train.json"]["val_rmse"])
    )
    assert journal_lines(Path(env["TINYVMAF_CACHE_DIR"])) == []
