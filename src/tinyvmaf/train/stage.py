"""The DVC train stage, per student: labels + samples → ``models/<teacher>/best.ckpt``, metrics, curves.

It reads ``params.yaml`` — never ``conf/`` — because that is the file
``dvc exp run -S train.lr=...`` rewrites; re-composing ``conf/`` here would
silently drop the override.  The arch *definitions* come from
``conf/arch/<name>.yaml`` for each name in the student's ``archs`` (a DVC dep), and
the selected ``arch`` node of params.yaml replaces its namesake, so
``-S arch.width=48`` reaches the model too.

Outputs: the winner's checkpoint (:func:`~tinyvmaf.train.loop.choose_winner`), every
arch's best checkpoint (``models/archs/<arch>.ckpt``: export measures each),
``metrics/train.json`` (every arch's val metrics at its best epoch, and the
winner; no test numbers — test is the gate's; no wall times — the same data
and params give the same file on any machine), ``plots/train/<arch>.csv``.
"""

from __future__ import annotations

import errno
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..common.atomic import atomic_path, atomic_write_text
from ..config.params import CONF_DIR, arch_config
from ..config.schema import ArchConfig, Config
from .loop import SweepResult, run_sweep, write_history_csv


def resolve_archs(params: Config, conf_dir: str | Path = CONF_DIR, archs: list[str] | None = None) -> list[ArchConfig]:
    """The definitions of ``archs`` (default ``sweep.archs``), the params' ``arch`` node in place of its namesake."""
    names = params.sweep.archs if archs is None else archs
    return [params.arch if params.arch.name == name else arch_config(name, conf_dir) for name in names]


def train_metrics(sweep: SweepResult) -> dict[str, Any]:
    """``metrics/train.json``: the winner's val numbers at the top (for `dvc metrics diff`), then every arch."""
    w = sweep.winner
    return {
        "winner": w.arch,
        **{k: round(v, 6) for k, v in w.val.items()},
        "archs": {r.arch: r.summary() for r in sweep.results},
    }


def remove_stale(folder: Path, pattern: str) -> None:
    """Delete ``folder``'s files of one arch each: a rerun with fewer archs must not leave the others behind."""
    if folder.is_dir():
        for old in folder.glob(pattern):
            old.unlink()


def run_train(
    params: Config,
    *,
    labels: Path,
    samples: Path | None,
    ckpt: Path,
    arch_ckpts: Path,
    metrics: Path,
    plots: Path,
    conf_dir: str | Path = CONF_DIR,
    track: bool = True,
    student: str | None = None,
) -> SweepResult:
    """Train a student's archs, copy the winner's checkpoint to ``ckpt``, write the metrics and curves (atomic)."""
    for path in (labels, samples):
        if path is not None and not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
    st = params.student(student)
    archs = resolve_archs(params, conf_dir, st.archs)
    with tempfile.TemporaryDirectory(prefix="tinyvmaf-train-") as tmp:
        sweep = run_sweep(
            params,
            archs,
            labels,
            samples,
            workdir=Path(tmp),
            jobs=params.train.jobs,
            track=track,
            teacher=st.teacher,
        )
        with atomic_path(ckpt) as dst:
            shutil.copyfile(sweep.winner.ckpt_path, dst)
        remove_stale(arch_ckpts, "*.ckpt")
        for r in sweep.results:
            with atomic_path(arch_ckpts / f"{r.arch}.ckpt") as dst:
                shutil.copyfile(r.ckpt_path, dst)
    remove_stale(plots, "*.csv")
    for r in sweep.results:
        write_history_csv(r.history, plots / f"{r.arch}.csv")
    atomic_write_text(metrics, json.dumps(train_metrics(sweep), indent=2) + "\n")
    return sweep
