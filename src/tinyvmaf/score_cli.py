"""``tinyvmaf score REF DIST``: a trained ONNX student's VMAF next to the teacher's."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    from .export import DEFAULT_ONNX_PATH
    from .features_cli import add_video_arguments

    add_video_arguments(parser)
    parser.add_argument("--model", type=Path, default=Path(DEFAULT_ONNX_PATH), help="ONNX student")


def run(args: argparse.Namespace) -> int:
    from .score import format_table, score

    result = score(
        args.ref,
        args.dist,
        args.model,
        width=args.width,
        height=args.height,
        pix_fmt=args.pix_fmt,
        teacher=(args.teacher or ["vmaf_v0.6.1"])[0],
        frame_policy=args.frame_policy,
    )
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
