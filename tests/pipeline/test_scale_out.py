"""Past one machine: the arch sweep through Hydra launchers, and extraction as Ray tasks.

Each launcher runs the same tiny three-arch sweep against labels from the shared
small pipeline, logging to its own MLflow database; the test reads back one
parent run with the three archs as children.  Ray runs against a head started
on 127.0.0.1 for the session (``servers.ray_cluster``); SLURM cannot run here,
so its config (``hydra/launcher=slurm``) is only composed and checked.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from project import REPO, journal_lines, run

if TYPE_CHECKING:
    from servers import Pipeline, RayCluster

pytest_plugins = ["servers"]  # the shared pipeline and the Ray head (session fixtures)
pytestmark = pytest.mark.slow

ARCHS = ("mlp_32x2", "mlp_64x2", "mlp_64x3")
SWEEP = ["-m", f"arch={','.join(ARCHS)}", "train.epochs=2"]


def sweep_runs(db: Path) -> tuple[str, dict[str, object]]:
    """The single parent run of ``db`` and its children by arch name."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("tinyvmaf")
    assert exp is not None, f"no 'tinyvmaf' experiment in {db}"
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    by_arch = {r.data.tags.get("arch", r.info.run_name): r for r in children}
    assert sorted(by_arch) == sorted(ARCHS), sorted(by_arch)
    for arch, r in by_arch.items():
        assert r.info.status == "FINISHED", (arch, r.info.status)
        history = client.get_metric_history(r.info.run_id, "val_plcc")
        assert [m.step for m in history] == [0, 1], (arch, [m.step for m in history])
    return parents[0].info.run_id, by_arch


def run_sweep(cwd: Path, pipeline: Pipeline, launcher: list[str], extra_env: dict[str, str] | None = None) -> str:
    """``python train.py -m`` (the three archs, two epochs) from ``cwd`` with its own MLflow db; returns the log."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}", **(extra_env or {})}
    cmd = [
        sys.executable,
        str(pipeline.path / "train.py"),
        *SWEEP,
        f"+labels={pipeline.labels}",
        f"+samples={pipeline.samples}",
        *launcher,
    ]
    return run(cmd, cwd, env, timeout=400)


def test_joblib_launcher(tmp_path: Path, pipeline: Pipeline) -> None:
    out = run_sweep(tmp_path, pipeline, ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])
    assert "Joblib.Parallel(n_jobs=2" in out and "is launching 3 jobs" in out, out[-2000:]
    sweep_runs(tmp_path / "mlflow.db")


def test_submitit_local_launcher(tmp_path: Path, pipeline: Pipeline) -> None:
    out = run_sweep(tmp_path, pipeline, ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"])
    assert "Submitit 'local' sweep output dir" in out, out[-2000:]
    sweep_runs(tmp_path / "mlflow.db")
    # submitit ran each arch as a job of its own: one pickled result per job.
    results = list(tmp_path.glob("multirun/**/.submitit/*/*_result.pkl"))
    assert len(results) == 3, results


def test_ray_launcher(pipeline: Pipeline, ray_cluster: RayCluster) -> None:
    # Ray workers start in the head's directory; the driver runs there too, so relative paths agree.
    cwd = ray_cluster.workdir
    out = run_sweep(cwd, pipeline, ["hydra/launcher=ray_local"], ray_cluster.env)
    assert "Ray Launcher is launching 3 jobs" in out, out[-2000:]
    assert ray_cluster.address in out  # it joined the running cluster, it did not start its own
    # The jobs (Ray tasks) found the sweep's parent run through the runtime_env: all three are its children.
    sweep_runs(cwd / "mlflow.db")


def test_slurm_config_composes() -> None:
    out = run(
        [sys.executable, "train.py", "hydra/launcher=slurm", "hydra.launcher.partition=cpu", "--cfg", "hydra"],
        REPO,
    )
    assert "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in out
    assert re.search(r"partition: cpu", out)
    assert re.search(r"cpus_per_task: 1", out)


def test_ray_extraction_matches_local(tmp_path: Path, small_corpus: Path, ray_cluster: RayCluster) -> None:
    manifest = small_corpus / "manifest.csv"
    n_pairs = len(manifest.read_text().splitlines()) - 1
    params = REPO / "params.yaml"
    base = ["tinyvmaf", "extract", "--no-progress", "--params", str(params), "--manifest", str(manifest)]

    local_cache, ray_cache = tmp_path / "cache-local", tmp_path / "cache-ray"
    run([*base, "--out", "local.parquet"], tmp_path, {"TINYVMAF_CACHE_DIR": str(local_cache)})
    assert len(journal_lines(local_cache)) == n_pairs

    out = run(
        [*base, "--out", "ray.parquet", "-v", "--engine", "ray", "--ray-address", ray_cluster.address],
        tmp_path,
        {"TINYVMAF_CACHE_DIR": str(ray_cache), **ray_cluster.env},
    )
    assert f"extract: {n_pairs} pair(s) extracted, 0 from cache" in out
    # Every pair was scored by a Ray worker process, none by the driver.
    workers = re.search(r"pairs per worker: (\{.*\})", out)
    assert workers, out
    counts = json.loads(workers.group(1))
    assert sum(counts.values()) == n_pairs
    journal = journal_lines(ray_cache)
    assert len(journal) == n_pairs
    driver_pids = {line.split("\t")[1] for line in journal}
    assert not driver_pids & {k.rsplit(":", 1)[1] for k in counts}

    # Identical results: same rows, same values, same bytes.
    local, remote = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(local), pd.read_parquet(remote), check_exact=True)
    assert local.read_bytes() == remote.read_bytes()

    # The Ray run filled its cache like a local run: extracting again runs nothing anywhere.
    out = run(
        [*base, "--out", "again.parquet", "--engine", "ray", "--ray-address", ray_cluster.address],
        tmp_path,
        {"TINYVMAF_CACHE_DIR": str(ray_cache), **ray_cluster.env},
    )
    assert f"extract: 0 pair(s) extracted, {n_pairs} from cache" in out
    assert len(journal_lines(ray_cache)) == n_pairs
    assert (tmp_path / "again.parquet").read_bytes() == local.read_bytes()


def test_ray_task_refuses_another_ffmpeg(small_corpus: Path) -> None:
    """A node whose FFmpeg is not the driver's build fails its pair instead of mixing results."""
    import dataclasses

    from tinyvmaf.corpus.manifest import read_manifest
    from tinyvmaf.extract.ray_engine import PairTask, score_task
    from tinyvmaf.media.ffmpeg import ffmpeg_info

    pair = read_manifest(small_corpus / "manifest.csv")[0]
    task = PairTask(pair.key, "0" * 64, pair.ref, pair.dist, ("vmaf_v0.6.1",), "error", None, "f" * 64)
    out = score_task(task)
    assert out.frames is None and out.error is not None and "differs from the driver's" in out.error
    ok = score_task(dataclasses.replace(task, ffmpeg_digest=ffmpeg_info().digest))
    assert ok.error is None and ok.frames is not None and len(ok.frames) == 12
