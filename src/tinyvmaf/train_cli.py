"""``tinyvmaf train``: the DVC train stage (labels.parquet → models/best.ckpt, metrics, plots).

It reads ``params.yaml`` — never ``conf/`` — because that is the file
``dvc exp run -S train.lr=...`` rewrites; re-composing ``conf/`` here would
silently drop the override.  The arch *definitions* come from
``conf/arch/<name>.yaml`` for each name in ``sweep.archs`` (a DVC dep), with
the selected ``arch`` node of params.yaml merged over its namesake, so
``-S arch.width=48`` reaches the model too.

Outputs: ``models/best.ckpt`` (the winner on val PLCC), ``metrics/train.json``
(every arch's val metrics at its best epoch, and the winner; no test
numbers — test is the gate's), ``plots/train/<arch>.csv`` (per-epoch
curves).  MLflow gets one parent run for the stage and a child per arch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .atomic import atomic_path, atomic_write_text
from .config import CONF_DIR, PARAMS_FILE, arch_config, load_params


def resolve_archs(params: Mapping, conf_dir: str | Path = CONF_DIR) -> list[DictConfig]:
    """The ``sweep.archs`` definitions, the params' own ``arch`` node merged over its namesake."""
    names = [str(n) for n in (params.get("sweep") or {}).get("archs") or []]
    if not names:
        raise ValueError("sweep.archs is empty: nothing to train")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"sweep.archs lists {dup} more than once")
    selected = params.get("arch")
    out = []
    for name in names:
        arch = arch_config(name, conf_dir)
        if selected is not None and str(selected.get("name")) == name:
            arch = OmegaConf.merge(arch, selected)
        out.append(arch)
    return out


def train_metrics(sweep: Any) -> dict[str, Any]:
    """``metrics/train.json``: the winner's val numbers at the top (for `dvc metrics diff`), then every arch.

    Wall times stay out (they are logged and sent to MLflow): same data and
    params must give the same metrics file on any machine.
    """
    w = sweep.winner
    return {
        "winner": w.arch,
        **{k: round(v, 6) for k, v in w.val.items()},
        "archs": {r.arch: r.summary() for r in sweep.results},
    }


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=PARAMS_FILE, help="composed params (default: params.yaml)")
    parser.add_argument("--conf-dir", default=CONF_DIR, help="where conf/arch/<name>.yaml live")
    parser.add_argument("--labels", default="labels.parquet")
    parser.add_argument("--out", default="models/best.ckpt")
    parser.add_argument("--metrics", default="metrics/train.json")
    parser.add_argument("--plots", default="plots/train", help="folder for per-arch per-epoch CSVs")
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow tracking")


def run(args: argparse.Namespace) -> int:
    from .training import run_sweep, write_history_csv

    params = load_params(args.params)
    archs = resolve_archs(params, args.conf_dir)
    plots = Path(args.plots)
    with tempfile.TemporaryDirectory(prefix="tinyvmaf-train-") as tmp:
        sweep = run_sweep(params, archs, Path(args.labels), workdir=Path(tmp), track=not args.no_mlflow)
        with atomic_path(args.out) as dst:
            shutil.copyfile(sweep.winner.ckpt_path, dst)
    if plots.is_dir():  # a manual rerun with fewer archs must not leave stale curves behind
        for old in plots.glob("*.csv"):
            old.unlink()
    for r in sweep.results:
        write_history_csv(r.history, plots / f"{r.arch}.csv")
    atomic_write_text(args.metrics, json.dumps(train_metrics(sweep), indent=2) + "\n")
    lines = [
        f"  {r.arch:<10} val PLCC {r.val['val_plcc']:.5f} SROCC {r.val['val_srocc']:.5f} "
        f"RMSE {r.val['val_rmse']:.3f} (best epoch {r.best_epoch}/{r.epochs}, {r.seconds:.1f}s)"
        for r in sweep.results
    ]
    print("train:\n" + "\n".join(lines) + f"\n  winner {sweep.winner.arch} -> {args.out} ({sweep.seconds:.1f}s)")
    return 0
