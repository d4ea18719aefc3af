"""``tinyvmaf features REF DIST``: per-frame libvmaf features and teacher scores of one pair."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config.schema import FRAME_POLICIES
from ..contract import TEACHER


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """REF/DIST and raw-YUV geometry options, shared with ``tinyvmaf score``."""
    parser.add_argument("ref", type=Path, help="reference clip (raw .yuv needs --width/--height/--pix-fmt)")
    parser.add_argument("dist", type=Path, help="distorted clip (upscaled bicubic to REF's size if smaller)")
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--pix-fmt", help="raw YUV pixel format, e.g. yuv420p, yuv420p10le")
    parser.add_argument(
        "--teacher",
        action="append",
        help=f"teacher model(s) the project carries, e.g. vmaf_v1.0.16_3d0h (repeatable; default {TEACHER})",
    )
    parser.add_argument("--frame-policy", choices=FRAME_POLICIES, default=FRAME_POLICIES[0])
    parser.add_argument("--json", action="store_true", help="print JSON (default: a table)")


def extract_config(args: argparse.Namespace, teachers: list[str] | None = None):
    """The extraction options of an ad-hoc pair (the cache and FFmpeg come from the environment).

    An unknown teacher is an error naming it and listing the carried ones.
    """
    from ..config.schema import ConfigError, ExtractConfig, check_teacher

    teachers = list(dict.fromkeys(teachers or args.teacher or [TEACHER]))
    for t in teachers:
        try:
            check_teacher("--teacher", t)
        except ConfigError as exc:
            raise SystemExit(f"tinyvmaf: {exc}") from None
    return ExtractConfig(
        teachers=teachers,
        frame_policy=args.frame_policy,
        workers=1,
        ffmpeg=None,
        cache_dir=None,
    )


def register(parser: argparse.ArgumentParser) -> None:
    add_video_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from .pair import make_pair, pair_features

    cfg = extract_config(args)
    pair = make_pair(args.ref, args.dist, width=args.width, height=args.height, pix_fmt=args.pix_fmt)
    out = pair_features(pair, cfg)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    from .plan import plan_for

    cols = list(plan_for(cfg.teachers).columns)
    print("frame " + " ".join(f"{c:>12}" for c in cols))
    for row in out["frames"]:
        print(f"{row['frame']:>5} " + " ".join(f"{row[c]:>12.6f}" for c in cols))
    print("mean  " + " ".join(f"{out['pooled'][c]:>12.6f}" for c in cols))
    return 0
