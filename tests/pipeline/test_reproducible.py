"""The same data and params give the same outputs, byte for byte, in another clone (a reproducible dvc.lock).

Clone B checks out A's commit before its pipeline ran (no dvc.lock), with its
own empty DVC cache and extraction cache, renders its corpus and runs ``dvc
repro`` from scratch on a simulated other CPU (``tests/other_cpu.py``), and
must write A's ``dvc.lock`` outputs: the same md5 for every output (the ONNX
file, its sidecar and registry, the model card and figures, every metric and
report, the checkpoint, the parquet files).  Nothing in an output may depend on
the commit, the clock, the host, the path of the clone or the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from other_cpu import STAGE_OUTS, other_cpu_env, render_corpus_like, tree_digests

from tinyvmaf.config import compose_conf, validate

from project import REPO, run
from servers import BASE_BRANCH

if TYPE_CHECKING:
    from servers import Pipeline

pytest_plugins = ["servers"]
pytestmark = pytest.mark.slow


#: The golden stage's report names the FFmpeg binary's sha256 (B runs a logging wrapper around it).
GOLDEN_REPORTS = ("metrics/golden.json", "reports/golden.md")


def outs(lock: dict) -> dict[str, str]:
    return {o["path"]: o["md5"] for stage in lock["stages"].values() for o in stage.get("outs", [])}


def test_the_shared_pipeline_passes_the_default_gate(pipeline: Pipeline) -> None:
    """Tests shrink the corpus, not the gates: the fixture's ``dvc repro`` passed the checkout's own thresholds."""
    gate = json.loads((pipeline.path / "metrics" / "vmaf_v0.6.1" / "gate.json").read_text())
    assert gate["pass"] is True and gate["failed"] == [], gate["failed"]
    th = validate(compose_conf(REPO / "conf")).gate.fidelity
    crit = gate["checks"]["fidelity"]["criteria"]
    expected = {
        "dense/rmse": th.dense.rmse_max, "dense/max_abs": th.dense.max_abs_max,
        "test/rmse": th.test.rmse_max, "test/max_abs": th.test.max_abs_max,
        "test/plcc": th.test.plcc_min, "test/srocc": th.test.srocc_min,
        "golden/pooled_abs_max": th.golden.pooled_abs_max,
    }  # fmt: skip
    assert {k: crit[k]["threshold"] for k in expected} == expected
    assert all(crit[k]["pass"] for k in expected), {k: crit[k]["value"] for k in expected}
    print(f"shared pipeline: dvc repro {pipeline.repro_seconds:.0f} s;", {k: crit[k]["value"] for k in expected})


def test_a_fresh_clone_on_another_cpu_reproduces_the_lock(pipeline: Pipeline, tmp_path: Path) -> None:
    """Clone B renders its corpus and runs every stage from scratch on a simulated other CPU (tests/other_cpu.py).

    Every CPU switch flipped (ATen, MKL, oneDNN, NumPy, glibc, FFmpeg's SIMD): the corpus subset
    (so ``data.dvc``), ``features.parquet``, ``labels.parquet``, ``samples.parquet``, the checkpoints,
    the ONNX and every other output must come out as A's, byte for byte.
    """
    b = tmp_path / "B"
    run(["git", "clone", "-q", "--branch", BASE_BRANCH, str(pipeline.path), str(b)], tmp_path)
    assert not (b / "dvc.lock").exists()
    env, calls_log = other_cpu_env(tmp_path, pinned=True)
    corpus = render_corpus_like(pipeline.corpus, b / "data", env)
    assert tree_digests(corpus) == tree_digests(pipeline.corpus)
    run(["dvc", "add", "-q", "data"], b)
    assert run(["git", "status", "--porcelain", "data.dvc"], b).strip() == "", "data.dvc differs from A's"
    out = run(["dvc", "repro"], b, {**env, "TINYVMAF_CACHE_DIR": str(tmp_path / "cache")}, timeout=900)
    for stage in ("extract", "golden", *(f"{s}@v061" for s in ("label", "sample", "train", "export", "eval", "gate"))):
        assert f"Running stage '{stage}'" in out, out  # really recomputed, not restored
    digests = {rel: tree_digests(b / rel) for rel in STAGE_OUTS}
    differ = [rel for rel in STAGE_OUTS if digests[rel] != tree_digests(pipeline.path / rel)]
    assert not differ, f"outputs that differ on the other CPU: {differ}"
    print(json.dumps({"corpus": tree_digests(corpus), **digests}, indent=1))  # for the record (pytest -s)
    media = [c for c in calls_log.read_text().splitlines() if " -i " in c]  # not FFmpeg's -version/-filters
    assert media and all("-cpuflags 0" in c for c in media)
    a_lock = yaml.safe_load((pipeline.path / "dvc.lock").read_text())
    b_lock = yaml.safe_load((b / "dvc.lock").read_text())
    a_outs, b_outs = outs(a_lock), outs(b_lock)
    assert set(a_outs) == set(b_outs) and len(a_outs) >= 15
    # golden.json/golden.md name FFmpeg's sha256, here the wrapper's: the one expected difference.
    differ = sorted(p for p in a_outs if a_outs[p] != b_outs[p] and p not in GOLDEN_REPORTS)
    assert not differ, f"outputs that differ between two runs of the same pipeline: {differ}"
    for rel in (
        "model/tiny/vmaf_tiny_fr_v2_nflx.onnx",
        "reports/vmaf_v0.6.1/model_card.md",
        "metrics/vmaf_v0.6.1/gate.json",
        "model/tiny/registry.json",
    ):
        assert (b / rel).read_bytes() == (pipeline.path / rel).read_bytes(), rel
