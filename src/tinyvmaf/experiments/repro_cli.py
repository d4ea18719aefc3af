"""``tinyvmaf repro``: ``dvc repro`` with independent stages at once (tinyvmaf/experiments/repro.py).

tinyvmaf repro                 # the whole pipeline, as many stages at once as this process has cores
tinyvmaf repro -j 1            # one at a time: the same files as `dvc repro`
tinyvmaf repro train@vb063     # a target and everything upstream of it
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    from .repro import default_jobs

    parser.add_argument("targets", nargs="*", help="stages to reproduce (default: every stage of dvc.yaml)")
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        help=f"stages at once (default: one more than the cores available, {default_jobs()})",
    )
    parser.add_argument("-f", "--force", action="store_true", help="reproduce every planned stage even if unchanged")
    parser.add_argument(
        "-k", "--keep-going", action="store_true", help="after a failure, go on with what does not depend on it"
    )
    parser.add_argument("--pull", action="store_true", help="pull missing data (dvc repro --pull)")
    parser.add_argument(
        "--allow-missing", action="store_true", help="skip stages with missing data but no other changes"
    )
    parser.add_argument(
        "--dry", action="store_true", help="print the plan (serial order, upstream of each stage) and stop"
    )
    parser.add_argument("--repo", type=Path, default=Path("."), help="the DVC repository (default: here)")


def run(args: argparse.Namespace) -> int:
    from .repro import default_jobs, make_plan, reproduce, summary

    if args.dry:
        plan = make_plan(args.repo, args.targets)
        for stage in plan.order:
            ups = ", ".join(s for s in plan.order if s in plan.upstream[stage]) or "-"
            print(f"{stage:<24} after: {ups}")
        return 0
    res = reproduce(
        args.repo,
        args.targets,
        jobs=args.jobs or default_jobs(),
        force=args.force,
        pull=args.pull,
        allow_missing=args.allow_missing,
        keep_going=args.keep_going,
    )
    print(summary(res), flush=True)
    return 1 if res.failed else 0
