"""Metrics, plots and reports are committed files: a fresh clone shows them without DVC's cache.

On the shared pipeline (``servers.pipeline``: its results committed with ``git add -A``): every
``cache: false`` out of dvc.yaml is tracked by git and ignored by nothing; a fresh ``git clone``,
before any ``dvc pull`` or ``dvc repro``, runs ``dvc metrics show`` and ``dvc metrics diff HEAD~1``
with the gate, eval and train figures; and the README's generated blocks render from those files,
with a changed metric failing the check.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tinyvmaf.report.readme import check_readme, render_blocks, write_readme

from project import env, resolved, run

if TYPE_CHECKING:
    from servers import Pipeline

pytest_plugins = ["servers"]
pytestmark = pytest.mark.slow


def uncached_outs(project: Path) -> list[str]:
    params = yaml.safe_load((project / "params.yaml").read_text())
    found = []
    for stage in resolved(yaml.safe_load((project / "dvc.yaml").read_text()), params).values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                if isinstance(entry, dict):
                    (path, opts), *_ = entry.items()
                    if opts.get("cache") is False:
                        found.append(path)
    return found


def test_uncached_outs_are_committed(pipeline: Pipeline) -> None:
    outs = uncached_outs(pipeline.path)
    assert {
        "metrics/vmaf_v0.6.1/gate.json",
        "metrics/vmaf_v0.6.1/eval.json",
        "metrics/vmaf_v0.6.1/train.json",
        "reports/vmaf_v0.6.1/model_card.md",
    } <= set(outs)
    tracked = set(run(["git", "ls-files"], pipeline.path).split())
    for out in outs:
        files = [out] if (pipeline.path / out).is_file() else [
            p.relative_to(pipeline.path).as_posix() for p in (pipeline.path / out).rglob("*") if p.is_file()
        ]  # fmt: skip
        assert files, out
        assert set(files) <= tracked, f"{out}: not committed: {sorted(set(files) - tracked)}"
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *outs], cwd=pipeline.path, capture_output=True)
    assert ignored.returncode == 1 and not ignored.stdout, ignored.stdout  # 1: none of them is ignored


def json_out(cmd: list[str], cwd: Path) -> dict:
    """A DVC command's ``--json`` output (stdout only: DVC warns on stderr)."""
    proc = subprocess.run([*cmd, "--json"], cwd=cwd, capture_output=True, text=True, timeout=300, env=env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_a_fresh_clone_shows_and_diffs_the_metrics(pipeline: Pipeline, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(pipeline.path), str(clone)], tmp_path)
    assert not (clone / ".dvc" / "cache").exists()
    m = clone / "metrics" / "vmaf_v0.6.1"
    gate = json.loads((m / "gate.json").read_text())
    train = json.loads((m / "train.json").read_text())
    ours = yaml.safe_load((clone / "params.yaml").read_text())["students"]["v061"]["id"]
    dense_rmse = json.loads((m / "eval.json").read_text())[ours]["dense"]["rmse"]

    table = run(["dvc", "metrics", "show"], clone)
    for name in (
        "vmaf_v0.6.1/gate.json",
        "vmaf_v0.6.1/eval.json",
        "vmaf_v0.6.1/train.json",
        "val_rmse",
        "checks.parity.pass",
    ):
        assert name in table, table
    shown = json_out(["dvc", "metrics", "show"], clone)[""]["data"]
    assert shown["metrics/vmaf_v0.6.1/gate.json"]["data"]["pass"] is gate["pass"] is True
    assert shown["metrics/vmaf_v0.6.1/train.json"]["data"]["val_rmse"] == train["val_rmse"]
    assert shown["metrics/vmaf_v0.6.1/eval.json"]["data"][ours]["dense"]["rmse"] == dense_rmse

    diff = json_out(["dvc", "metrics", "diff", "HEAD~1"], clone)
    assert diff["metrics/vmaf_v0.6.1/train.json"]["val_rmse"]["new"] == train["val_rmse"]
    assert diff["metrics/vmaf_v0.6.1/eval.json"][f"{ours}.dense.rmse"]["new"] == dense_rmse
    text = run(["dvc", "metrics", "diff", "HEAD~1"], clone)
    assert "vmaf_v0.6.1/train.json" in text and "val_rmse" in text, text

    plots = json_out(["dvc", "plots", "show"], clone)
    assert any(k.startswith("plots/vmaf_v0.6.1/train/") for k in plots["data"]), list(plots["data"])
    assert any(k.startswith("reports/vmaf_v0.6.1/figures/") for k in plots["data"]), list(plots["data"])
    # the markdown reports are stage-level plots only so that DVC run-caches their stages (dvc.yaml)
    assert {e["name"] for e in plots.get("errors", [])} <= {
        "reports/golden.md",
        "reports/vmaf_v0.6.1/model_card.md",
        "reports/vmaf_v0.6.1/gate.md",
    }


def test_readme_blocks_render_from_the_committed_metrics(pipeline: Pipeline, tmp_path: Path) -> None:
    root = tmp_path / "p"
    shutil.copytree(pipeline.path / "metrics", root / "metrics")
    shutil.copytree(pipeline.path / "loco", root / "loco")
    for rel in ("README.md", "params.yaml"):
        shutil.copy2(pipeline.path / rel, root / rel)
    blocks = render_blocks(root)
    train = json.loads((root / "metrics" / "vmaf_v0.6.1" / "train.json").read_text())
    assert f"{train['val_rmse']:.4f}" in blocks["train"]
    assert "`vmaf_v0.6.1`" in blocks["teachers"] and "is configured in this project" in blocks["fidelity_v1016"]
    changed = write_readme(root)
    assert changed and check_readme(root) == []
    assert write_readme(root) == []  # idempotent

    # one figure moves: the check names every block that quotes it
    ours = yaml.safe_load((root / "params.yaml").read_text())["students"]["v061"]["id"]
    doc = json.loads((root / "metrics" / "vmaf_v0.6.1" / "eval.json").read_text())
    doc[ours]["dense"]["rmse"] += 0.5
    (root / "metrics" / "vmaf_v0.6.1" / "eval.json").write_text(json.dumps(doc))
    assert check_readme(root) == ["headline", "fidelity", "teachers"]
    cmd = [sys.executable, "-m", "tinyvmaf.report", "readme", "--check", "--root", str(root)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "'headline'" in proc.stderr and "'fidelity'" in proc.stderr, proc.stderr
