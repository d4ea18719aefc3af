"""``tinyvmaf label``: the DVC label stage (features.parquet + manifest → labels.parquet)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import PARAMS_FILE, load_params
from .label import LabelConfig, run_label, split_summary


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=PARAMS_FILE, help="composed params (default: params.yaml)")
    parser.add_argument("--features", default="features.parquet")
    parser.add_argument("--manifest", help="override data.manifest")
    parser.add_argument("--out", default="labels.parquet")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    cfg = LabelConfig.from_mapping(params.label)
    manifest = Path(args.manifest or params.data.manifest)
    labels = run_label(Path(args.features), manifest, Path(args.out), cfg)
    parts = ", ".join(f"{s}: {v['contents']} contents, {v['frames']} frames" for s, v in split_summary(labels).items())
    print(f"label: {len(labels)} frames labelled by {cfg.teacher} ({parts}) -> {args.out}")
    return 0
