"""``tinyvmaf features REF DIST``: per-frame libvmaf features and teacher scores of one pair."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .extract import ExtractConfig, extract_pairs
from .libvmaf import FEATURES, KNOWN_TEACHERS
from .manifest import Pair
from .media import Video


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
        choices=KNOWN_TEACHERS,
        help="teacher model(s) (repeatable; default vmaf_v0.6.1)",
    )
    parser.add_argument("--frame-policy", choices=("error", "truncate"), default="error")
    parser.add_argument("--json", action="store_true", help="print JSON (default: a table)")


def pair_from_args(args: argparse.Namespace) -> Pair:
    ref = Video(args.ref, args.width, args.height, args.pix_fmt)
    dist = Video(args.dist, args.width, args.height, args.pix_fmt)
    return Pair(key=f"{args.ref.name}:{args.dist.name}", content=args.ref.name, ref=ref, dist=dist)


def pair_features(pair: Pair, cfg: ExtractConfig) -> dict:
    """Per-frame rows and pooled means (the VMAF of a clip is the mean of its frame scores)."""
    results, _ = extract_pairs([pair], cfg, progress=False)
    frames = results[pair.key]
    cols = [*FEATURES, *cfg.teachers]
    pooled = {c: sum(f[c] for f in frames) / len(frames) for c in cols}
    return {
        "ref": str(pair.ref.path),
        "dist": str(pair.dist.path),
        "frames": [{"frame": i, **f} for i, f in enumerate(frames)],
        "pooled": pooled,
    }


def register(parser: argparse.ArgumentParser) -> None:
    add_video_arguments(parser)


def run(args: argparse.Namespace) -> int:
    cfg = ExtractConfig(teachers=tuple(args.teacher or ("vmaf_v0.6.1",)), frame_policy=args.frame_policy)
    out = pair_features(pair_from_args(args), cfg)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    cols = [*FEATURES, *cfg.teachers]
    print("frame " + " ".join(f"{c:>12}" for c in cols))
    for row in out["frames"]:
        print(f"{row['frame']:>5} " + " ".join(f"{row[c]:>12.6f}" for c in cols))
    print("mean  " + " ".join(f"{out['pooled'][c]:>12.6f}" for c in cols))
    return 0
