"""``tinyvmaf golden``: the DVC golden stage (the extractor and the teacher against golden values).

Exit status 0 when every check passes, 1 when any fails (named on stderr),
so ``dvc repro`` stops before a model is trained on features from a broken
extractor.  ``--regenerate`` re-pins the project's own set instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config.params import PARAMS_FILE, load_params


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=PARAMS_FILE, help="composed params (default: params.yaml)")
    parser.add_argument("--golden-dir", help="override paths.golden_dir (netflix/ and project.json)")
    parser.add_argument("--frames", help="override paths.golden_frames")
    parser.add_argument("--metrics", help="override paths.golden_metrics")
    parser.add_argument("--report", help="override paths.golden_report")
    parser.add_argument(
        "--regenerate", action="store_true", help="regenerate and re-pin GOLDEN_DIR/project.json, then exit"
    )


def run(args: argparse.Namespace) -> int:
    from .stage import regenerate_project_golden, run_golden, write_outputs

    params = load_params(args.params)
    p = params.paths
    golden_dir = Path(args.golden_dir or p.golden_dir)
    teachers, ffmpeg = params.teachers(), params.extract.ffmpeg
    if args.regenerate:
        path = regenerate_project_golden(golden_dir, ffmpeg)
        print(f"pinned the project golden set in {path}")
        return 0
    report, table = run_golden(golden_dir, params.golden, teachers=teachers, ffmpeg=ffmpeg)
    metrics = Path(args.metrics or p.golden_metrics)
    out_report = Path(args.report or p.golden_report)
    write_outputs(
        report, table, frames_out=Path(args.frames or p.golden_frames), metrics_out=metrics, report_out=out_report
    )
    return report.verdict("golden", [metrics, out_report], note=f" on {len(table)} frames")
