"""The wheel: `pip install` it into a fresh venv and score a golden pair — no checkout, no `dvc pull`, no torch.

The packaged student (src/tinyvmaf/packaged/, put there by `tinyvmaf model release`) ships as
package data; the base install carries only what scoring needs (the pipeline is the `pipeline` extra).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kit import REPO

pytestmark = pytest.mark.slow


def sh(cmd: list[str], cwd: Path, timeout: int = 900, env: dict | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_wheel_in_a_fresh_venv_scores_a_golden_pair(tmp_path: Path, golden_dir: Path) -> None:
    packaged = REPO / "src" / "tinyvmaf" / "packaged" / "vmaf_tiny_fr_v2_nflx.onnx"
    assert packaged.is_file(), f"{packaged}: no packaged model (make release, then commit it)"
    # Built from a copy of what the wheel is made of: setuptools writes build/ and *.egg-info/ beside
    # pyproject.toml, and a test must leave the checkout as it found it.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tmp_path / "dist"
    sh(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)],
        source,
    )
    (wheel,) = dist.glob("tinyvmaf-*.whl")
    venv = tmp_path / "venv"
    sh([sys.executable, "-m", "venv", str(venv)], tmp_path)
    py = venv / "bin" / "python"
    # The lock's versions of whatever the base install needs (downloads from PyPI or pip's cache).
    sh([str(py), "-m", "pip", "install", "-q", str(wheel), "-c", str(REPO / "requirements.lock")], tmp_path)
    probe = "import importlib.util as u; print([m for m in ('torch', 'dvc', 'mlflow') if u.find_spec(m)])"
    assert sh([str(py), "-c", probe], tmp_path).strip() == "[]"  # scoring does not drag the pipeline in

    spec = json.loads((golden_dir / "golden.json").read_text())
    pair = next(p for p in spec["pairs"] if p["name"] == "src01_576x324_10bit")
    work = tmp_path / "elsewhere"  # no checkout here: the model comes from the installed package
    work.mkdir()
    geometry = ["--width", str(pair["width"]), "--height", str(pair["height"]), "--pix-fmt", pair["pix_fmt"]]
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "TINYVMAF_CACHE_DIR": str(tmp_path / "c")}
    out = sh(
        [str(venv / "bin" / "tinyvmaf"), "score", str(golden_dir / pair["ref"]), str(golden_dir / pair["dist"]),
         *geometry, "--json"],
        work,
        env=env,
    )  # fmt: skip
    res = json.loads(out)
    assert res["models"] == ["vmaf_tiny_fr_v2_nflx"]
    assert "site-packages/tinyvmaf/packaged" in res["model_paths"]["vmaf_tiny_fr_v2_nflx"]
    assert res["pooled"]["teacher"] == pytest.approx(pair["expected"]["vmaf"], abs=5e-5)
    assert abs(res["pooled"]["diff"]["vmaf_tiny_fr_v2_nflx"]) < 0.1
