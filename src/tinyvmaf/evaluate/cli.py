"""``tinyvmaf eval``: fidelity figures of any tiny model beside the peers, or leave-one-content-out.

tinyvmaf eval                         # the pipeline's model and the peers, on dense/test/golden
tinyvmaf eval --model a.onnx --model b.onnx --json
tinyvmaf eval --stage --student KEY   # the DVC eval stage: eval.json, figures, model card
tinyvmaf eval --loco                  # retrain per held-out content -> loco/<teacher>.json (make loco)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config.params import PARAMS_FILE, add_student_argument, load_params
from ..contract import FEATURES


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=PARAMS_FILE, help="composed params (default: params.yaml)")
    parser.add_argument("--model", type=Path, action="append", help="ONNX model(s) (default: paths.onnx)")
    parser.add_argument("--no-peers", action="store_true", help="leave the libvmaf fork's models out")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--loco", action="store_true", help="leave-one-content-out instead (slow: one training per content)"
    )
    parser.add_argument("--contents", help="with --loco: only these contents (comma-separated)")
    parser.add_argument("--jobs", type=int, help="with --loco: folds at once (default evaluate.loco.jobs)")
    parser.add_argument("--out", type=Path, help="with --loco: override the student's loco.json")
    parser.add_argument(
        "--stage", action="store_true", help="the DVC eval stage: eval.json, figures and model card of the student"
    )
    add_student_argument(parser)


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    st = params.student(args.student)
    p = st.paths
    if args.stage:
        from ..export.stage import ExportPaths, evaluate_model

        doc = evaluate_model(params, ExportPaths.from_params(params, st.key), st.key)
        ours = doc[st.id]
        parts = ", ".join(
            f"{name} RMSE {f['rmse']:.4f} max {f['max_abs']:.3f}"
            for name, f in ours.items()
            if isinstance(f, dict) and "rmse" in f
        )
        print(f"eval {st.key}: {parts} -> {p.eval_metrics}, {p.model_card}")
        return 0
    if args.loco:
        from .loco import run_loco

        contents = [c.strip() for c in args.contents.split(",")] if args.contents else None
        out = Path(args.out or p.loco_metrics)
        doc = run_loco(
            params, Path(p.labels), out, data_dvc=Path(p.data_dvc), contents=contents, jobs=args.jobs, student=st.key
        )
        for c, f in doc["folds"].items():
            print(f"  {c:<20} RMSE {f['rmse']:.4f}  max {f['max_abs']:.4f}  p99 {f['p99_abs']:.4f}  n {f['n']}")
        w = doc["worst"]
        print(
            f"loco ({doc['arch']}): worst RMSE {w['rmse']:.4f} ({w['content_by_rmse']}), "
            f"worst max {w['max_abs']:.4f} -> {out}"
        )
        return 0
    from ..model.runtime import load_tiny_model
    from .measure import comparison_table, measure_models
    from .peers import load_peers
    from .sets import student_sets

    models = {}
    spec = st.spec
    for path in args.model or [Path(p.onnx), Path(p.exact_onnx)]:
        m = load_tiny_model(path, order=spec.order, keys=spec.keys)
        models[m.name] = m.predict
    if not args.no_peers and spec.order == FEATURES:
        models.update({n: m.predict for n, m in load_peers(Path(p.peers_dir), params.evaluate.peers).items()})
    sets = student_sets(params, st)
    results = measure_models(models, sets, within=params.evaluate.within)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for s in sets:
        print(f"\n{s.name} ({len(s)} rows)")
        print("\n".join(comparison_table(results, s.name)))
    return 0
