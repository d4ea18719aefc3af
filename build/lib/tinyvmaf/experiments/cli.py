"""``tinyvmaf queue``: run the queued DVC experiments to completion (bounded, no stray workers).

dvc exp run -S 'arch=mlp_32x2,mlp_64x2' -S sweep=single --queue
tinyvmaf queue -j 2            # instead of `dvc exp run --run-all -j 2` (see tinyvmaf/experiments/queue.py)
dvc exp show
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-j", "--jobs", type=int, default=1, help="queue workers (experiments at once)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up (and kill what runs) after SECONDS")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the DVC repository (default: here)")


def run(args: argparse.Namespace) -> int:
    from .queue import run_queue

    res = run_queue(args.repo, jobs=args.jobs, timeout=args.timeout)
    if not res.succeeded and not res.failed:
        print("queue: nothing queued")
        return 0
    extra = f"; killed stuck worker(s) {res.killed_workers}" if res.killed_workers else ""
    print(
        f"queue: {len(res.succeeded)} experiment(s) succeeded in {res.seconds:.0f}s{extra}: {', '.join(res.succeeded)}"
    )
    return 0
