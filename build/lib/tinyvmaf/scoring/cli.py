"""``tinyvmaf score REF DIST [--model X.onnx ...]``: tiny models' VMAF next to the teacher's."""

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


def run(args: argparse.Namespace) -> int:
    from ..contract import TEACHER
    from .scorer import format_table, score

    result = score(
        args.ref,
        args.dist,
        args.model,
        width=args.width,
        height=args.height,
        pix_fmt=args.pix_fmt,
        teacher=(args.teacher or [TEACHER])[0],
        frame_policy=args.frame_policy,
    )
    for w in result["warnings"]:
        print(f"tinyvmaf score: warning: {w}", file=sys.stderr)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
