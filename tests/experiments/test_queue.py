"""`tinyvmaf queue`: the queue's status parsed, workers found only when they are DVC's (tinyvmaf.experiments)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tinyvmaf.experiments.queue import CELERY_DIR, parse_status, worker_pids

STATUS = """Task     Name        Created    Status
9a5261f  curly-tiff  04:21 PM   Running
fa57f7e  macro-skat  04:21 PM   Queued
1b2c3d4  old-one     Nov 28, 2026  Success
ab12cd3              04:20 PM   Failed

Worker status: 2 active, 1 idle
"""


def test_parse_status() -> None:
    st = parse_status(STATUS)
    assert st.tasks == {"9a5261f": "Running", "fa57f7e": "Queued", "1b2c3d4": "Success", "ab12cd3": "Failed"}
    assert st.names["9a5261f"] == "curly-tiff"
    assert (st.active, st.idle) == (2, 1)
    assert st.count("Queued", "Running") == 2
    empty = parse_status("Task  Name  Created  Status\n\nWorker status: 0 active, 0 idle\n")
    assert empty.tasks == {} and (empty.active, empty.idle) == (0, 0)


def test_worker_pids_are_only_dvc_queue_workers(tmp_path: Path) -> None:
    folder = tmp_path / CELERY_DIR
    folder.mkdir(parents=True)
    (folder / "dvc-exp-worker-1.pid").write_text(str(os.getpid()))  # a live process that is not a worker
    (folder / "dvc-exp-worker-2.pid").write_text("999999999")  # no such process
    (folder / "dvc-exp-worker-3.pid").write_text("garbage")
    assert worker_pids(tmp_path) == []
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "dvc", "queue-worker"])
    try:
        (folder / "dvc-exp-worker-4.pid").write_text(str(fake.pid))
        # Popen returns once exec has begun; the new command line appears in /proc a moment later.
        deadline = time.monotonic() + 10
        while b"queue-worker" not in Path(f"/proc/{fake.pid}/cmdline").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker_pids(tmp_path) == [fake.pid]
    finally:
        fake.kill()
        fake.wait(timeout=10)
