"""``tinyvmaf score REF DIST [--model X.onnx ...] [--teacher T] [--interval]``: tiny models' VMAF next to the teacher's.

The features extracted are the ones each model's sidecar names (its teacher's); ``--teacher`` (default:
the first model's) is the libvmaf score printed beside them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    from ..extract.features_cli import add_video_arguments

    add_video_arguments(parser)
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        help="ONNX tiny model (repeatable: one column each; default: the packaged model)",
    )
    parser.add_argument(
        "--interval",
        action="store_true",
        help="bootstrap students (vmaf_b_v0.6.3): also print score, bagging, stddev and the 95%% interval "
        "per frame and pooled, beside the teacher's",
    )


def run(args: argparse.Namespace) -> int:
    from ..teacher.spec import UnsafeFilterPath
    from .scorer import ScoreError, format_interval, format_table, score

    if args.teacher and len(args.teacher) > 1:
        print("tinyvmaf score: --teacher takes one teacher here", file=sys.stderr)
        return 2
    try:
        result = score(
            args.ref,
            args.dist,
            args.model,
            width=args.width,
            height=args.height,
            pix_fmt=args.pix_fmt,
            teacher=(args.teacher or [None])[0],
            frame_policy=args.frame_policy,
            interval=args.interval,
        )
    except (ScoreError, UnsafeFilterPath) as exc:
        print(f"tinyvmaf score: {exc}", file=sys.stderr)
        return 2
    for w in result["warnings"]:
        print(f"tinyvmaf score: warning: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result) + (format_interval(result) if args.interval else ""))
    return 0
