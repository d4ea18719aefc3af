"""`tinyvmaf features` reproduces Netflix's own golden VMAF and feature values (golden.json)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: golden.json calls the pooled score ``vmaf``; the CLI names it after the model.
#: The golden file's names → the pooled output's keys (`tinyvmaf features` prints libvmaf's own keys).
_KEY = {"vmaf": "vmaf_v0.6.1", **{f: f"integer_{f}" for f in ("adm2", "motion2", *(f"vif_scale{i}" for i in range(4)))}}


def _features(golden_dir: Path, pair: dict) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "tinyvmaf.cli",
        "features",
        str(golden_dir / pair["ref"]),
        str(golden_dir / pair["dist"]),
        "--width",
        str(pair["width"]),
        "--height",
        str(pair["height"]),
        "--pix-fmt",
        pair["pix_fmt"],
        "--json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_golden_pair(golden_dir: Path, golden_pair: dict) -> None:
    spec = json.loads((golden_dir / "golden.json").read_text())
    tol = float(spec["tolerance"])
    out = _features(golden_dir, golden_pair)
    assert len(out["frames"]) == golden_pair["frames"]
    pooled = out["pooled"]
    checks = [(name, value, tol) for name, value in golden_pair["expected"].items()]
    checks += [(name, value, float(t)) for name, (value, t) in golden_pair.get("expected_loose", {}).items()]
    assert checks, "golden pair without expectations"
    off = {
        name: (pooled[_KEY.get(name, name)], want, t)
        for name, want, t in checks
        if not abs(pooled[_KEY.get(name, name)] - want) < t
    }
    assert not off, f"{golden_pair['name']}: (got, expected, tolerance) off for {off}"
