"""``tinyvmaf gate``: run the gate checks, write ``metrics/gate.json`` and ``reports/gate.md``.

Exit status 0 when every check passes, 1 when any fails (the failed checks
are named on stderr), so ``dvc repro`` stops at a model that is not fit to
ship.  ``--model`` gates another ONNX file against the same data.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ..config.params import PARAMS_FILE, add_student_argument, load_params


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=PARAMS_FILE, help="composed params (default: params.yaml)")
    parser.add_argument("--model", type=Path, help="override paths.onnx")
    parser.add_argument("--ckpt", type=Path, help="override paths.ckpt (the checkpoint the ONNX file came from)")
    parser.add_argument("--out", type=Path, help="override paths.gate_metrics")
    parser.add_argument("--report", type=Path, help="override paths.gate_report")
    parser.add_argument("--checks", help="comma-separated subset of: contract,ops,golden,fidelity,parity,exact")
    add_student_argument(parser)


def run(args: argparse.Namespace) -> int:
    from .stage import CHECKS, GatePaths, run_gate, write_reports

    params = load_params(args.params)
    over = {"onnx": args.model, "ckpt": args.ckpt, "gate_metrics": args.out, "gate_report": args.report}
    paths = replace(GatePaths.from_params(params, args.student), **{k: v for k, v in over.items() if v is not None})
    checks = tuple(c.strip() for c in args.checks.split(",") if c.strip()) if args.checks else CHECKS
    report = run_gate(params, paths, checks, args.student)
    write_reports(report, paths)
    return report.verdict("gate", [paths.gate_metrics, paths.gate_report])
