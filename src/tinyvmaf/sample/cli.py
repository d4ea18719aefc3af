"""``tinyvmaf sample``: the DVC sample stage (labels.parquet → samples.parquet, teacher-labelled vectors)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config.params import PARAMS_FILE, add_student_argument, load_params


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=PARAMS_FILE, help="composed params (default: params.yaml)")
    parser.add_argument("--labels", help="override paths.labels")
    parser.add_argument("--out", help="override paths.samples")
    parser.add_argument("--metrics", help="override paths.sample_metrics")
    add_student_argument(parser)


def run(args: argparse.Namespace) -> int:
    from .stage import run_sample

    params = load_params(args.params)
    st = params.student(args.student)
    p = st.paths
    out = Path(args.out or p.samples)
    summary = run_sample(
        Path(args.labels or p.labels),
        out,
        Path(args.metrics or p.sample_metrics),
        params.sample,
        teacher=st.teacher,
        tolerance=params.golden.teacher_tolerance,
        golden_frames=Path(p.golden_frames),
    )
    rows = "; ".join(f"{s}: " + ", ".join(f"{g} {n}" for g, n in c.items()) for s, c in summary.rows.items())
    check = summary.teacher_check
    dev = check.get("max_abs_dev")
    seen = f"teacher = libvmaf within {dev:.2g} on {check['frames']} frames" if dev is not None else check["skipped"]
    print(f"sample: {rows} ({seen}) -> {out}")
    return 0
