"""``tinyvmaf gate``: run the gate checks, write ``metrics/gate.json`` and ``reports/gate.md``.

Exit status 0 when every check passes, 1 when any fails (the failed checks
are named on stderr), so ``dvc repro`` stops at a model that is not fit to
ship.  ``--regenerate-golden`` re-pins the project's golden set instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="composed params (gate: section)")
    parser.add_argument("--model", type=Path, help="ONNX file (default: gate.model or export.path)")
    parser.add_argument("--ckpt", type=Path, help="checkpoint the ONNX file was exported from")
    parser.add_argument("--labels", type=Path, help="labels parquet with the test split")
    parser.add_argument("--out", type=Path, help="gate.json path (default: gate.out)")
    parser.add_argument("--report", type=Path, help="markdown report path (default: gate.report)")
    parser.add_argument("--golden-dir", type=Path, help="folder of the pinned project golden set (conf/golden)")
    parser.add_argument("--netflix-dir", type=Path, help="Netflix golden folder (default: $TINYVMAF_GOLDEN_DIR)")
    parser.add_argument("--checks", help="comma-separated subset of: contract,ops,golden,fidelity,parity")
    parser.add_argument(
        "--regenerate-golden",
        action="store_true",
        help="regenerate and re-pin the project golden set in GOLDEN_DIR/project.json, then exit",
    )


def run(args: argparse.Namespace) -> int:
    from .config import load_params
    from .gate import GateConfig, regenerate_project_golden, run_gate, write_reports

    checks = tuple(c.strip() for c in args.checks.split(",") if c.strip()) if args.checks else None
    cfg = GateConfig.from_params(
        load_params(args.params),
        model=args.model,
        ckpt=args.ckpt,
        labels=args.labels,
        out=args.out,
        report=args.report,
        golden_dir=args.golden_dir,
        netflix_dir=args.netflix_dir,
        checks=checks,
    )
    if args.regenerate_golden:
        path = regenerate_project_golden(cfg.golden_dir, cfg.teacher, cfg.ffmpeg)
        print(f"pinned the project golden set in {path}")
        return 0
    report = run_gate(cfg)
    write_reports(report, cfg)
    for check in report.checks:
        status = "pass" if check.passed else "FAIL"
        print(f"{check.name:<9} {status}")
        for line in check.failures() if not check.passed else []:
            print(f"          {line}")
    if report.passed:
        print(f"gate passed; wrote {cfg.out} and {cfg.report}")
        return 0
    print(f"gate failed: {', '.join(report.failed)} (see {cfg.out}, {cfg.report})", file=sys.stderr)
    return 1
