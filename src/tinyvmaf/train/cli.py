"""``tinyvmaf train``: the DVC train stage (labels + samples → models/best.ckpt, metrics, plots)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config.params import CONF_DIR, PARAMS_FILE, add_student_argument, load_params


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=PARAMS_FILE, help="composed params (default: params.yaml)")
    parser.add_argument("--conf-dir", default=CONF_DIR, help="where conf/arch/<name>.yaml live")
    parser.add_argument("--labels", help="override paths.labels")
    parser.add_argument("--samples", help="override paths.samples")
    parser.add_argument("--no-samples", action="store_true", help="train on the real frames only")
    parser.add_argument("--out", help="override paths.ckpt")
    parser.add_argument("--metrics", help="override paths.train_metrics")
    parser.add_argument("--plots", help="override paths.train_plots (a folder of per-arch per-epoch CSVs)")
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow tracking")
    add_student_argument(parser)


def run(args: argparse.Namespace) -> int:
    from .stage import run_train

    params = load_params(args.params)
    st = params.student(args.student)
    p = st.paths
    out = Path(args.out or p.ckpt)
    sweep = run_train(
        params,
        labels=Path(args.labels or p.labels),
        samples=None if args.no_samples else Path(args.samples or p.samples),
        ckpt=out,
        arch_ckpts=Path(p.arch_ckpts),
        metrics=Path(args.metrics or p.train_metrics),
        plots=Path(args.plots or p.train_plots),
        conf_dir=args.conf_dir,
        track=not args.no_mlflow,
        student=st.key,
    )
    lines = [
        f"  {r.arch:<10} val RMSE {r.val['val_rmse']:.4f} (frames {r.val['val_frames_rmse']:.4f}) "
        f"PLCC {r.val['val_plcc']:.6f} SROCC {r.val['val_srocc']:.6f} "
        f"(best epoch {r.best_epoch}/{r.epochs}, {r.seconds:.1f}s)"
        for r in sweep.results
    ]
    print(
        f"train {st.key} ({st.teacher}):\n"
        + "\n".join(lines)
        + f"\n  winner {sweep.winner.arch} -> {out} ({sweep.seconds:.1f}s)"
    )
    return 0
