"""``tinyvmaf export``: the DVC stage that turns ``models/best.ckpt`` into the shipped ONNX file."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="composed params (export: section)")
    parser.add_argument("--ckpt", type=Path, help="checkpoint (default: export.ckpt)")
    parser.add_argument("--labels", type=Path, help="labels parquet with the test split (default: export.labels)")
    parser.add_argument("--train-metrics", type=Path, help="metrics/train.json of the sweep (winner's val metrics)")
    parser.add_argument("--out", type=Path, help="ONNX path (default: export.path)")
    parser.add_argument("--model-card", type=Path, help="model card markdown (default: export.model_card)")
    parser.add_argument("--figures", type=Path, help="folder for the model card's plots (default: export.figures)")
    parser.add_argument("--git-commit", help="commit recorded in the metadata (default: git rev-parse HEAD)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .config import load_params
    from .export import ExportConfig, export_model

    cfg = ExportConfig.from_params(load_params(args.params))
    overrides = {
        "ckpt": args.ckpt,
        "labels": args.labels,
        "train_metrics": args.train_metrics,
        "out": args.out,
        "model_card": args.model_card,
        "figures": args.figures,
        "git_commit": args.git_commit,
    }
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    res = export_model(cfg)
    t = res.test_metrics
    print(
        f"exported {res.path} ({res.n_bytes} B, sha256 {res.sha256[:16]}): test PLCC {t['plcc']:.4f} "
        f"SROCC {t['srocc']:.4f} RMSE {t['rmse']:.3f} max|err| {t['max_abs']:.2f} over {t['n']} frames"
    )
    return 0
