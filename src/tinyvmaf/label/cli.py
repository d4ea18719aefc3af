"""``tinyvmaf label``: the DVC label stage (features.parquet + manifest → labels.parquet)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config.params import PARAMS_FILE, add_student_argument, load_params


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=PARAMS_FILE, help="composed params (default: params.yaml)")
    parser.add_argument("--features", help="override paths.features")
    parser.add_argument("--manifest", help="override paths.manifest")
    parser.add_argument("--out", help="override the student's labels file")
    add_student_argument(parser)


def run(args: argparse.Namespace) -> int:
    from .stage import run_label, split_summary

    params = load_params(args.params)
    st = params.student(args.student)
    p = st.paths
    out = Path(args.out or p.labels)
    labels = run_label(
        Path(args.features or p.features), Path(args.manifest or p.manifest), out, params.label, teacher=st.teacher
    )
    parts = ", ".join(f"{s}: {v['contents']} contents, {v['frames']} frames" for s, v in split_summary(labels).items())
    print(f"label: {len(labels)} frames labelled by {st.teacher} ({parts}) -> {out}")
    return 0
