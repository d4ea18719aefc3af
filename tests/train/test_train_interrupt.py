"""Ctrl-C during training or export leaves the previous files in place: nothing half-written at a final path."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import project
from kit import MODEL_ID, REPO, Kit
from project import kill_group

pytestmark = pytest.mark.slow


def start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    return project.start([sys.executable, "-m", "tinyvmaf.cli", *args], cwd, log)


def interrupt(proc: subprocess.Popen, log: Path) -> int:
    """SIGINT to the whole group, as a terminal's Ctrl-C does; the exit status, within a deadline."""
    import os

    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AssertionError(f"did not stop within 90 s of SIGINT:\n{log.read_text()[-2000:]}") from None


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*.tmp"))


def test_sigint_during_training_keeps_the_previous_checkpoint(kit: Kit, tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / "models" / "vmaf_v0.6.1").mkdir(parents=True)
    (out / "samples").mkdir()
    ckpt = out / "models" / "vmaf_v0.6.1" / "best.ckpt"
    shutil.copy(kit.ckpt, ckpt)  # a good checkpoint from an earlier run
    old = ckpt.read_bytes()
    from tinyvmaf.sample.stage import make_samples

    over = [
        "train.epochs=500",
        "train.jobs=2",
        "sweep.archs=[mlp_32x2,mlp_64x2]",
    ]
    params = kit.params(out, *over, paths={"models_dir": out / "models", "samples_dir": out / "samples"})
    import numpy as np
    import pandas as pd

    from tinyvmaf.contract import FEATURES

    from conftest import config

    labels = pd.read_parquet(kit.labels)
    train = labels.loc[labels["split"] == "train", list(FEATURES)].to_numpy(np.float64)
    samples, _ = make_samples(train, config("sample.count=20000", "sample.val_count=2000").sample, "vmaf_v0.6.1")
    samples.to_parquet(out / "samples" / "vmaf_v0.6.1.parquet", index=False)

    metrics = out / "metrics" / "vmaf_v0.6.1" / "train.json"
    metrics_before = metrics.read_bytes()  # the kit's, from the earlier run
    log = out / "train.log"
    proc = start(["train", "--params", str(params), "--no-mlflow", "--conf-dir", str(REPO / "conf")], out, log)
    deadline = time.monotonic() + 180
    while "epoch 5/500" not in log.read_text():
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.2)
    rc = interrupt(proc, log)
    assert rc == 130, log.read_text()[-2000:]
    assert "interrupted" in log.read_text()
    assert ckpt.read_bytes() == old
    assert metrics.read_bytes() == metrics_before
    assert leftovers(out) == []


@pytest.mark.parametrize("delay", [1.5, 3.0, 4.5])
def test_sigint_during_export_leaves_old_or_whole_files(kit: Kit, tmp_path: Path, delay: float) -> None:
    out = tmp_path / "run"
    model_dir = out / "model"
    model_dir.mkdir(parents=True)
    target = model_dir / f"{MODEL_ID}.onnx"
    shutil.copy(REPO / "assets" / "peers" / "vmaf_tiny_v2.onnx", target)  # some earlier file
    old, new = target.read_bytes(), kit.onnx.read_bytes()
    params = kit.params(out, paths={"model_dir": model_dir})
    log = out / "export.log"
    proc = start(["export", "--params", str(params)], out, log)
    time.sleep(delay)
    rc = proc.poll()
    if rc is None:
        rc = interrupt(proc, log)
    # 130: main caught the KeyboardInterrupt; -SIGINT: it arrived while the interpreter was already
    # shutting down (after the work finished) or inside a finaliser; 0: it finished first.
    assert rc in (0, 130, -signal.SIGINT), log.read_text()[-2000:]
    assert target.read_bytes() in (old, new)  # never a torn file
    sidecar = target.with_suffix(".json")
    if sidecar.exists():
        assert sidecar.read_bytes() == kit.onnx.with_suffix(".json").read_bytes()
    assert leftovers(out) == []
