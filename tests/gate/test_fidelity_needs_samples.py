"""The point of the sample stage, as a test: one config, trained without samples it fails the gate's
fidelity checks (dense set, test contents, golden pairs), trained with them it passes.

Both runs go through the real stages (``tinyvmaf sample``, ``train``, ``export``, ``gate``) with the
default gate thresholds; only the sample size and the epochs are cut so that it fits in the suite.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kit import Kit

pytestmark = pytest.mark.slow

#: One arch, a smaller sample, more epochs over it: ~15k optimiser steps, about a minute on one core.
#: 64x2, not 32x2: a hard-swish 32x2 this short misses dense/max_abs (0.59 > 0.5; 64x2: 0.28).
SMALL = (
    "sweep=single",
    "arch=mlp_64x2",
    "sample.count=300000",
    "sample.val_count=20000",
    "train.epochs=50",
    "train.jobs=1",
)


def start_pipeline(kit: Kit, out: Path, *, samples: bool) -> tuple[subprocess.Popen, Path]:
    """sample → train → export → gate (fidelity) through the real CLI, in a process of its own."""
    paths = {"samples_dir": out / "samples", "models_dir": out / "models", "model_dir": out / "model"}
    params = kit.params(out, *SMALL, paths=paths)
    cli = f"{shlex.quote(sys.executable)} -m tinyvmaf.cli"
    p = f"--params {shlex.quote(str(params))}"
    script = " && ".join(
        [
            f"{cli} sample {p}",
            f"{cli} train {p} --no-mlflow" + ("" if samples else " --no-samples"),
            f"{cli} export {p}",
            f"({cli} gate {p} --checks fidelity || true)",
        ]
    )
    log = out / "pipeline.log"
    return subprocess.Popen(["bash", "-c", script], stdout=log.open("w"), stderr=subprocess.STDOUT), log


def fidelity(out: Path) -> dict:
    return json.loads((out / "metrics" / "vmaf_v0.6.1" / "gate.json").read_text())["checks"]["fidelity"]


def test_the_gate_fails_without_samples_and_passes_with_them(kit: Kit, tmp_path: Path) -> None:
    # The two runs are independent: side by side, one process each (the suite's time, not the result).
    runs = {name: start_pipeline(kit, tmp_path / name, samples=name == "with") for name in ("without", "with")}
    for name, (proc, log) in runs.items():
        assert proc.wait(timeout=600) == 0, f"{name}: {log.read_text()[-3000:]}"
    without, with_ = fidelity(tmp_path / "without"), fidelity(tmp_path / "with")
    assert with_["pass"] is True, with_["criteria"]
    assert without["pass"] is False
    failed = {k for k, c in without["criteria"].items() if not c["pass"]}
    assert {"dense/rmse", "dense/max_abs"} <= failed, without["criteria"]
    for k in ("dense/rmse", "dense/max_abs", "golden/pooled_abs_max"):
        assert with_["criteria"][k]["value"] < without["criteria"][k]["value"], k
