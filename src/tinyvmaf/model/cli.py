"""``tinyvmaf model check|release|promote``: the shipped artifact's own commands.

tinyvmaf model check model/tiny          # sidecar and registry against the ONNX files, by name
tinyvmaf model release                   # copy the gated model into the package (then commit it)
tinyvmaf model promote                   # MLflow Model Registry: new version per student; champion if better
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config.params import PARAMS_FILE


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="validate sidecars and registry.json against the ONNX files in DIR")
    check.add_argument("dir", type=Path)
    for name, text in (
        ("release", "copy the gated model, sidecar and registry into the package (src/tinyvmaf/packaged)"),
        ("promote", "register the gated model in MLflow; move the champion alias if it is better"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--params", default=PARAMS_FILE, help="composed params (default: params.yaml)")
        p.add_argument("--model", type=Path, help="override the student's ONNX file")
        p.add_argument("--gate", type=Path, help="override the student's gate.json")
        p.add_argument("--student", help="one configured student (default: promote every one; release the first)")
        if name == "release":
            p.add_argument("--to", type=Path, help="destination folder (default: the package's packaged/)")


def run(args: argparse.Namespace) -> int:
    from ..export.exact import ALLOWED_OPS
    from ..export.graph import CHECKABLE_OPS, EMITTED_OPS

    if args.action == "check":
        from .check import check_dir

        # Any tiny model, the fork's Gemm peers and our exact graphs included (every op on the fork's
        # allow-list); release (below) holds ours to the export's own ops.
        report = check_dir(args.dir, tuple(sorted({*CHECKABLE_OPS, *ALLOWED_OPS})))
        for f in report.findings:
            print(f, file=sys.stderr if f.severity == "error" else sys.stdout)
        status = "FAIL" if report.errors else "ok"
        print(f"model check {args.dir}: {status} ({len(report.models)} model(s), {len(report.errors)} error(s))")
        return 1 if report.errors else 0

    from ..config.params import load_params

    params = load_params(args.params)
    if args.action == "promote" and not args.student and not args.model:
        from .promote import promote

        for key in params.students:
            sp = params.student(key).paths
            print(_promoted(params, promote(params, Path(sp.onnx), Path(sp.gate_metrics), key)))
        return 0
    st = params.student(args.student)
    onnx_path = Path(args.model or st.paths.onnx)
    gate = Path(args.gate or st.paths.gate_metrics)
    if args.action == "release":
        from .release import release

        for path in release(onnx_path, gate, EMITTED_OPS, args.to):
            print(f"released {path}")
        print("now review and commit them: git add src/tinyvmaf/packaged && git commit")
        return 0
    from .promote import promote

    print(_promoted(params, promote(params, onnx_path, gate, st.key)))
    return 0


def _promoted(params, p) -> str:  # noqa: ANN001 - Config, Promotion (imported lazily)
    verdict = (
        f"-> @{params.mlflow.alias}"
        if p.champion
        else f"(@{params.mlflow.alias} stays on version {p.previous_champion})"
    )
    return f"registered {p.name} version {p.version} {verdict}: {p.reason}"
