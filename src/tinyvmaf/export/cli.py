"""``tinyvmaf export``: the DVC stage that turns a student's best checkpoint into the shipped ONNX file.

Beside it goes the teacher's exact graph (``<teacher>_exact.onnx``, dots as
``_``: the reference row); the evaluation and the model card are the eval
stage's (``tinyvmaf eval --stage``).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ..config.params import PARAMS_FILE, add_student_argument, load_params


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=PARAMS_FILE, help="composed params (default: params.yaml)")
    parser.add_argument("--ckpt", type=Path, help="override the student's checkpoint")
    parser.add_argument("--out", type=Path, help="override the student's ONNX path (the sidecar goes beside it)")
    add_student_argument(parser)


def run(args: argparse.Namespace) -> int:
    from .stage import ExportPaths, export_model

    params = load_params(args.params)
    paths = ExportPaths.from_params(params, args.student)
    paths = replace(paths, **{k: v for k, v in {"ckpt": args.ckpt, "onnx": args.out}.items() if v is not None})
    res = export_model(params, paths, args.student)
    ours = next(iter(res.evaluation.values()))
    d, t, g = ours["dense"], ours["test"], ours["golden"]
    print(
        f"exported {res.path} ({res.n_bytes} B, sha256 {res.sha256[:16]}): "
        f"dense RMSE {d['rmse']:.4f} max {d['max_abs']:.3f}; test RMSE {t['rmse']:.4f} max {t['max_abs']:.3f}; "
        f"golden max pooled {g['pooled_abs_max']:.4f}; exact graph {paths.exact_onnx}"
    )
    return 0
