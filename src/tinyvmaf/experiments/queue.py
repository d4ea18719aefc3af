"""Run the DVC experiment queue to completion, with a deadline, and leave no worker behind.

``dvc exp run --run-all -j N`` and ``dvc queue start -j N`` hand the queue
to Celery workers.  A known upstream race (DVC issues #10398, #10428, #8165)
lets a worker log "shutting down due to empty queue" while its task still
runs and then never exit, so ``--run-all``, which waits for the workers,
hangs although every experiment succeeded; another (#10562) lets workers
stop with tasks still queued.  Neither is ours to fix, both are ours to
survive.  So this never waits on a worker, only on the *tasks*:

1. ``dvc queue start -j N``;
2. poll ``dvc queue status`` until no task is ``Queued`` or ``Running``,
   restarting workers if tasks are queued and none is alive, and giving up
   after ``timeout`` seconds (``dvc queue kill`` on what still runs);
3. ``dvc queue stop``, then wait a few seconds for each worker to exit and
   kill the ones that do not (their process groups, found from the pid
   files DVC writes, only when the process really is a DVC queue worker).

Exit status: 0 when every task that was queued succeeded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

WORKER_RE = re.compile(r"Worker status:\s*(\d+)\s+active,\s*(\d+)\s+idle")
ACTIVE = ("Queued", "Running")
CELERY_DIR = Path(".dvc") / "tmp" / "exps" / "celery"


class QueueError(RuntimeError):
    """The queue did not finish in time, or a task failed; the message names them."""


@dataclass
class QueueStatus:
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> status
    names: dict[str, str] = field(default_factory=dict)  # task id -> experiment name
    active: int = 0
    idle: int = 0

    def count(self, *statuses: str) -> int:
        return sum(1 for s in self.tasks.values() if s in statuses)


def dvc(args: list[str], repo: Path, timeout: float = 120.0) -> str:
    proc = subprocess.run(["dvc", *args], cwd=repo, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise QueueError(f"`dvc {' '.join(args)}` failed in {repo} (exit {proc.returncode}):\n{proc.stderr.strip()}")
    return proc.stdout


def parse_status(text: str) -> QueueStatus:
    """``dvc queue status``: a table ``Task Name Created Status`` and a ``Worker status`` line."""
    st = QueueStatus()
    for line in text.splitlines():
        m = WORKER_RE.search(line)
        if m:
            st.active, st.idle = int(m[1]), int(m[2])
            continue
        parts = line.split()
        if len(parts) >= 2 and parts[0] != "Task" and re.fullmatch(r"[0-9a-f]{7,40}", parts[0]):
            st.tasks[parts[0]] = parts[-1]
            st.names[parts[0]] = parts[1] if len(parts) >= 5 else ""
    return st


def status(repo: Path) -> QueueStatus:
    return parse_status(dvc(["queue", "status"], repo))


def worker_pids(repo: Path) -> list[int]:
    """Pids of live DVC queue workers of this repo (from DVC's pid files, checked against /proc)."""
    pids = []
    for pidfile in sorted((repo / CELERY_DIR).glob("*.pid")):
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError):
            continue
        if b"dvc" in cmdline and b"queue-worker" in cmdline:
            pids.append(pid)
    return pids


def stop_workers(repo: Path, grace: float = 15.0) -> list[int]:
    """``dvc queue stop``, then SIGTERM/SIGKILL whatever worker is left; returns the pids that had to be killed."""
    with contextlib.suppress(QueueError, subprocess.TimeoutExpired):
        dvc(["queue", "stop"], repo, timeout=60)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and worker_pids(repo):
        time.sleep(0.5)
    killed = worker_pids(repo)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in worker_pids(repo):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), sig)
        time.sleep(1.0)
    if killed:
        log.warning("queue workers %s did not exit after `dvc queue stop` (DVC #10398); killed them", killed)
    return killed


@dataclass
class QueueResult:
    succeeded: list[str]
    failed: list[str]
    seconds: float
    killed_workers: list[int]


def run_queue(repo: Path, *, jobs: int, timeout: float, poll: float = 2.0) -> QueueResult:
    """Run every queued experiment; raise :class:`QueueError` on a timeout or a failed task."""
    repo = Path(repo)
    before = status(repo)
    todo = {t for t, s in before.tasks.items() if s in ACTIVE}
    t0 = time.monotonic()
    if not todo:
        return QueueResult([], [], 0.0, [])
    log.info("running %d queued experiment(s) with %d worker(s)", len(todo), jobs)
    # The start is part of the run's budget: on a loaded machine `dvc queue start` took over the
    # 120 s default of a plain dvc call in one fresh-clone run.
    dvc(["queue", "start", "-j", str(jobs)], repo, timeout=timeout)
    try:
        while True:
            st = status(repo)
            left = [t for t in todo if st.tasks.get(t) in ACTIVE]
            if not left:
                break
            if time.monotonic() - t0 > timeout:
                with contextlib.suppress(QueueError, subprocess.TimeoutExpired):
                    dvc(["queue", "kill", *[t for t in left if st.tasks.get(t) == "Running"]], repo)
                raise QueueError(f"queue not done after {timeout:.0f}s: {len(left)} task(s) left ({', '.join(left)})")
            if st.count("Queued") and st.active + st.idle == 0:
                log.warning("tasks queued but no worker alive (DVC #10562): starting workers again")
                dvc(["queue", "start", "-j", str(jobs)], repo, timeout=timeout)
            time.sleep(poll)
    finally:
        killed = stop_workers(repo)
    final = status(repo)
    ok = sorted(final.names.get(t) or t for t in todo if final.tasks.get(t) == "Success")
    bad = sorted(final.names.get(t) or t for t in todo if final.tasks.get(t) != "Success")
    result = QueueResult(ok, bad, time.monotonic() - t0, killed)
    if bad:
        raise QueueError(f"{len(bad)} experiment(s) failed: {', '.join(bad)} (`dvc queue logs NAME` says why)")
    return result
