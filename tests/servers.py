"""Servers, clusters and a shared small pipeline for the team-workflow tests (a pytest plugin).

Test modules load it with ``pytest_plugins = ["servers"]``, so its
session-scoped fixtures are built once per run, whichever module asks first
(also under pytest-xdist: ``pipeline`` and ``small_corpus`` go through ``once.build_once``):

* ``pipeline`` — project copy "A" (the working tree, a small demo corpus,
  one arch, a smaller sample, the default gate thresholds) after a full, timed
  ``dvc repro`` that passes the gate.
  Its ``labels.parquet`` feeds the MLflow and scale-out tests too. Tests only
  read A (two xdist workers use it at once); one that changes a project works
  on its own :meth:`Pipeline.copy`.
* ``ray_cluster`` — a Ray head on 127.0.0.1 (all its ports chosen free),
  stopped after the session (its users sit in one module, so under xdist's
  ``--dist loadscope`` one worker starts it).

and context managers for servers that a test starts and stops itself
(:func:`mlflow_server`, :func:`moto_s3`).  Every server binds 127.0.0.1,
waits for readiness with a deadline, runs in its own process group and is
stopped by that group (never by a process name), and leaves its log in the
test's temporary folder; a server that dies or never answers fails the test
with the tail of its log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from once import build_once
from project import SMALL_HRCS, SMALL_SOURCES, copy_project, env, journal_lines, run

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"

#: Config overrides (``conf/config.yaml``) for the copies: a smaller corpus, sample and sweep, never
#: looser gates. The gate keeps its default thresholds (the schema rejects ones that would switch it
#: off), so the shared pipeline proves a full ``dvc repro`` passes the real gate: one arch (the
#: defaults list below), 300k samples, 50 epochs (~15k steps, the fewest that leave a margin under
#: dense RMSE 0.05: 25 epochs or 150k samples end at 0.054-0.058 with mlp_32x2).
FAST_CONF: dict[str, object] = {
    # One student (v0.6.1): the team workflow does not change with the teacher, and each student's
    # stages cost a training; the v1.0.16 student's own pipeline is tests/pipeline/test_teachers.py.
    "students": {"v061": "keep"},
    "train.epochs": 50,
    "sample.count": 300_000,
    "sample.val_count": 20_000,
    "evaluate.dense.count": 5000,
    "gate.parity.random_rows": 2000,
}
#: Config groups chosen in ``conf/config.yaml``'s defaults list for the copies: one arch, not the sweep.
FAST_DEFAULTS: dict[str, str] = {"sweep": "single", "arch": "mlp_32x2"}

#: Secrets a user's environment may hold; nothing the project writes may contain them. One value per run:
#: under xdist, from the run's id (each worker imports this module; the pipeline is built by one of them).
_RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
CANARY = "canary-" + hashlib.sha256(f"tinyvmaf-canary-{_RUN_ID}".encode()).hexdigest()[:32]
CANARY_ENV = {
    "AWS_SECRET_ACCESS_KEY": f"{CANARY}-aws",
    "MLFLOW_TRACKING_PASSWORD": f"{CANARY}-mlflow",
}

#: Timings (label → seconds) printed at the end of the run (conftest.py's ``pytest_terminal_summary``).
TIMINGS: dict[str, float] = {}


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def log_tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return "(no log)"


@dataclass
class Service:
    """A server process in its own session; :meth:`stop` ends the whole process group."""

    name: str
    proc: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, name: str, cmd: list[str], *, cwd: Path, log: Path, extra_env: dict[str, str] | None = None):
        fh = log.open("ab")
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env(extra_env), stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        fh.close()
        return cls(name, proc, log)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{log_tail(self.log)}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds (only our own group)."""
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.proc.poll() is not None and not _group_alive(pgid):
                    return
                time.sleep(0.2)
        self.proc.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_until(check, *, timeout: float, what: str, service: Service | None = None, interval: float = 0.3):
    """Poll ``check()`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if service is not None:
            service.check_alive()
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        time.sleep(interval)
    tail = log_tail(service.log) if service is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})\n{tail}")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return 200 <= resp.status < 300


# --------------------------------------------------------------------------- MLflow


@contextlib.contextmanager
def mlflow_server(
    backend_uri: str,
    workdir: Path,
    *,
    artifacts: Path | None = None,
    ui: bool = False,
    timeout: float = 120.0,
) -> Iterator[str]:
    """``mlflow server`` (or ``mlflow ui``, as ``make ui`` runs it) on 127.0.0.1; yields its URL.

    With ``artifacts`` the server proxies artifact uploads and downloads
    (``--serve-artifacts``), so clients need no access to the store.
    """
    port = free_port()
    cmd = [str(BIN / "mlflow"), "ui" if ui else "server", "--backend-store-uri", backend_uri]
    cmd += ["--host", HOST, "--port", str(port), "--workers", "1"]
    if artifacts is not None:
        cmd += ["--artifacts-destination", artifacts.as_uri(), "--serve-artifacts"]
    svc = Service.start("mlflow ui" if ui else "mlflow server", cmd, cwd=workdir, log=workdir / f"mlflow-{port}.log")
    url = f"http://{HOST}:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/health"), timeout=timeout, what=f"{svc.name} at {url}", service=svc)
        yield url
    finally:
        svc.stop()


# --------------------------------------------------------------------------- S3 (moto)

#: Fake credentials for moto, fresh each session (so a leak check cannot match this source file);
#: they go to ``.dvc/config.local`` or the environment, never to a tracked file.
S3_KEY_ID = f"AKIATEST{uuid.uuid4().hex[:12].upper()}"
S3_SECRET = f"moto-secret-{uuid.uuid4().hex}"


@dataclass
class S3:
    endpoint: str
    bucket: str


@contextlib.contextmanager
def moto_s3(bucket: str = "tinyvmaf-remote") -> Iterator[S3]:
    """moto's S3 server in a thread on 127.0.0.1 with one bucket; stopped on exit."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    endpoint = f"http://{HOST}:{port}"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )
        wait_until(lambda: client.list_buckets() is not None, timeout=30, what=f"moto S3 at {endpoint}")
        client.create_bucket(Bucket=bucket)
        yield S3(endpoint, bucket)
    finally:
        server.stop()


# --------------------------------------------------------------------------- Ray


@dataclass
class RayCluster:
    address: str  # HOST:PORT of the GCS, what `ray.init(address=...)` and RAY_ADDRESS take
    workdir: Path  # the head's working directory: Ray workers start there
    env: dict[str, str]  # what a driver on this machine needs in its environment


#: Environment for Ray on loopback: no usage stats, a loopback node IP, no 30 s drain on SIGTERM.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
}


@contextlib.contextmanager
def ray_head(workdir: Path, *, num_cpus: int = 2, timeout: float = 120.0) -> Iterator[RayCluster]:
    """``ray start --head --block`` on 127.0.0.1 with every port chosen free; the group is ended on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    # Ray's socket paths must stay short (AF_UNIX limit): a temp dir under /tmp, not pytest's.
    temp_dir = Path(tempfile.mkdtemp(prefix="rayh-", dir="/tmp"))
    # Eight distinct single ports, and a worker-port range that contains none of them (a
    # random range could otherwise swallow, e.g., the node manager's port and fail the start).
    singles: list[int] = []
    while len(singles) < 8:
        candidate = free_port()
        if candidate not in singles:
            singles.append(candidate)
    worker_lo = free_port()
    while any(worker_lo <= p <= worker_lo + 40 for p in singles):
        worker_lo = free_port()
    port, client_port, nm_port, om_port, agent_port, agent_grpc, rt_port, metrics_port = singles
    cmd = [
        str(BIN / "ray"), "start", "--head", "--block",
        "--node-ip-address", HOST, "--port", str(port),
        "--num-cpus", str(num_cpus), "--object-store-memory", str(100 * 1024 * 1024),
        "--include-dashboard=false", "--disable-usage-stats",
        "--temp-dir", str(temp_dir),
        "--ray-client-server-port", str(client_port),
        "--node-manager-port", str(nm_port),
        "--object-manager-port", str(om_port),
        "--dashboard-agent-listen-port", str(agent_port),
        "--dashboard-agent-grpc-port", str(agent_grpc),
        "--runtime-env-agent-port", str(rt_port),
        "--metrics-export-port", str(metrics_port),
        "--min-worker-port", str(worker_lo), "--max-worker-port", str(worker_lo + 40),
    ]  # fmt: skip
    svc = Service.start("ray head", cmd, cwd=workdir, log=workdir / "ray-head.log", extra_env=RAY_ENV)
    address = f"{HOST}:{port}"
    try:
        wait_until(
            lambda: "Ray runtime started" in svc.log.read_text(errors="replace"),
            timeout=timeout,
            what=f"the Ray head at {address}",
            service=svc,
        )
        yield RayCluster(address, workdir, {**RAY_ENV, "RAY_ADDRESS": address})
    finally:
        svc.stop(grace=15)
        shutil.rmtree(temp_dir, ignore_errors=True)


# --------------------------------------------------------------------------- project copies


def tune_conf(project: Path, overrides: dict[str, object], groups: dict[str, str] | None = None) -> None:
    """Edit ``conf/config.yaml`` itself (so ``dvc exp run`` composes the same values) and recompose params.yaml.

    ``groups`` replaces the choice of a config group in its defaults list (``sweep: single``), so that
    ``dvc exp run -S sweep=... -S arch=...`` still overrides it.
    """
    path = project / "conf" / "config.yaml"
    cfg = OmegaConf.load(path)
    for group, choice in (groups or {}).items():
        entries = [i for i, d in enumerate(cfg.defaults) if isinstance(d, Mapping) and group in d]
        assert len(entries) == 1, f"{path}: no single '{group}' entry in the defaults list"
        cfg.defaults[entries[0]] = {group: choice}
    for key, value in overrides.items():
        if key == "students":  # {key: "keep"}: only these students stay
            for k in [k for k in cfg.students if k not in value]:
                del cfg.students[k]
            continue
        OmegaConf.update(cfg, key, value, merge=False)
    path.write_text(OmegaConf.to_yaml(cfg))
    run(["tinyvmaf", "params"], project)


def render_corpus(dest: Path, *, sources=SMALL_SOURCES, hrcs=SMALL_HRCS, frames: int = 12) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["tinyvmaf", "corpus", "demo", str(dest), "--frames", str(frames), "--no-progress"]
    for s in sources:
        cmd += ["--source", s]
    for h in hrcs:
        cmd += ["--hrc", h]
    run(cmd, dest.parent)
    return dest


#: The branch of a team project before its pipeline ran (code and data.dvc, no dvc.lock).
BASE_BRANCH = "base"


def make_team_project(dest: Path, corpus: Path, conf: dict[str, object] | None = None) -> Path:
    """A committed project copy with ``corpus`` as its ``data/`` (tracked by data.dvc), no dvc.lock."""
    copy_project(dest)
    # The checkout's dvc.lock describes its own corpus; this copy's pipeline has not run yet.
    (dest / "dvc.lock").unlink(missing_ok=True)
    shutil.copytree(corpus, dest / "data")
    tune_conf(dest, {**FAST_CONF, **(conf or {})}, FAST_DEFAULTS)
    run(["dvc", "add", "-q", "data"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "team test project"], dest)
    run(["git", "branch", BASE_BRANCH], dest)
    return dest


@dataclass
class Pipeline:
    """Project copy A after a full ``dvc repro``, its results (dvc.lock, git-tracked outs) committed on main.

    Branch :data:`BASE_BRANCH` is the commit before: same code and data, no dvc.lock.
    """

    path: Path
    cache_dir: Path  # its TINYVMAF_CACHE_DIR
    corpus: Path
    repro_seconds: float
    repro_output: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def labels(self) -> Path:
        return self.path / "labels" / "vmaf_v0.6.1.parquet"

    @property
    def samples(self) -> Path:
        return self.path / "samples" / "vmaf_v0.6.1.parquet"

    def copy(self, dest: Path) -> Pipeline:
        """A private copy of A at ``dest`` (its git repository, DVC cache and outputs, byte for byte)."""
        shutil.copytree(self.path, dest, symlinks=True)
        return dataclasses.replace(self, path=dest)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small demo corpus (3 contents x 3 rungs x 12 frames), rendered once per run."""
    built = build_once(tmp_path_factory, "corpus", lambda root: {"path": str(render_corpus(root / "data"))})
    return Path(built["path"])


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory, small_corpus: Path) -> Pipeline:
    """Project copy A after its full ``dvc repro`` (once per run, see ``once``); tests only read it.

    A test that changes a project (a remote in ``.dvc/config.local``, a tag, a promotion, experiments in
    its DVC cache) works on :meth:`Pipeline.copy`: tests on the other xdist worker read A meanwhile.
    """

    def build(root: Path) -> dict[str, object]:
        proj = make_team_project(root / "A", small_corpus)
        cache = root / "A-extract-cache"
        extra = {"TINYVMAF_CACHE_DIR": str(cache)}
        t0 = time.perf_counter()
        # With secrets in the environment, as on a team member's machine: tests/pipeline/test_secrets.py
        # searches everything this run wrote for them.
        out = run(["dvc", "repro"], proj, {**extra, **CANARY_ENV}, timeout=900)
        seconds = time.perf_counter() - t0
        TIMINGS["A: dvc repro (full pipeline, empty caches)"] = seconds
        for stage in ("extract", "golden", "label@v061", "sample@v061", "train@v061", "export@v061", "eval@v061"):
            assert f"Running stage '{stage}'" in out, out
        for stage in ("gate@v061", "registry"):
            assert f"Running stage '{stage}'" in out, out
        assert journal_lines(cache), "A extracted nothing"
        run(["git", "add", "-A"], proj)
        run(["git", "commit", "-q", "-m", "pipeline results"], proj)
        return {"path": str(proj), "cache_dir": str(cache), "seconds": seconds, "output": out, "extra": extra}

    built = build_once(tmp_path_factory, "team", build)
    return Pipeline(
        Path(built["path"]), Path(built["cache_dir"]), small_corpus, built["seconds"], built["output"], built["extra"]
    )


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    with ray_head(tmp_path_factory.mktemp("ray-work")) as cluster:
        yield cluster
