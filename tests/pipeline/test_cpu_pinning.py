"""The same bytes on another CPU: every CPU-dependent setting varied, the outputs byte-equal.

One machine cannot be an AMD EPYC without AVX-512, but it can be told to act
like one: each library that picks its kernels by CPU has a switch for it
(:mod:`tinyvmaf.common.cpu` lists them).  :data:`OTHER_CPU` flips every such
switch the way another machine (or a user's shell) would, and an FFmpeg
wrapper forces FFmpeg's own SIMD level, as a different CPU would.  Under it:

* the pins are in effect in a stage process (``tinyvmaf cpu``), and every
  FFmpeg the stages start runs with ``-cpuflags 0``, glibc's libm pinned and
  the encoders' asm off;
* the demo ladder (all ten rungs) is byte-equal to the normal build's (and
  ``tests/pipeline/test_reproducible.py`` runs a fresh clone's whole pipeline
  on the "other CPU": the corpus subset, ``features.parquet``,
  ``labels.parquet``, ``samples.parquet``, the checkpoints and the ONNX come
  out byte-equal);
* the control: with pinning off (``TINYVMAF_CPU_PIN=0``) the same settings
  DO change the bytes, so the variation is real and the pins are what hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from other_cpu import other_cpu_env, tree_digests

from tinyvmaf.common import cpu

from project import run

pytestmark = pytest.mark.slow

#: One source through the whole ladder (x264, x265, SVT-AV1, downscaled rungs).
LADDER_SOURCE = "coffee_pan"


def render_ladder(dest: Path, extra_env: dict[str, str]) -> dict[str, str]:
    cmd = ["tinyvmaf", "corpus", "demo", str(dest), "--frames", "12", "--no-progress", "--source", LADDER_SOURCE]
    dest.parent.mkdir(parents=True, exist_ok=True)
    run(cmd, dest.parent, extra_env)
    return tree_digests(dest)


def cpu_report(cwd: Path, extra_env: dict[str, str]) -> dict:
    return json.loads(run(["tinyvmaf", "cpu"], cwd, extra_env))


@pytest.fixture(scope="module")
def normal_ladder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return render_ladder(tmp_path_factory.mktemp("ladder-normal") / "data", {})


def test_a_stage_process_runs_pinned_whatever_the_shell_says(tmp_path: Path) -> None:
    env, _ = other_cpu_env(tmp_path, pinned=True)
    got = cpu_report(tmp_path, env)
    assert got["pinning"] is True
    assert got["torch"]["cpu_capability"] == "AVX2"
    assert got["torch"]["mkl_cbwr_branch"] == 10  # MKL_CBWR_AVX2
    assert got["numpy"]["dispatch_active"] == []
    for key, value in cpu.PINNED_ENV.items():
        assert got["env"][key] == value, key
    assert got["env"]["GLIBC_TUNABLES"].split(":")[-1] == cpu.GLIBC_HWCAPS_MASK
    assert got["ffmpeg_args"] == ["-cpuflags", "0"]
    # The control: unpinned, the same shell reaches the libraries (so the pins are what hold).
    env_off, _ = other_cpu_env(tmp_path, pinned=False)
    off = cpu_report(tmp_path, env_off)
    assert off["torch"]["cpu_capability"] == "DEFAULT"
    assert off["torch"]["mkl_cbwr_branch"] != 10
    assert "X86_V4" not in off["numpy"]["dispatch_active"]


def test_the_ladder_is_byte_equal_on_another_cpu(tmp_path: Path, normal_ladder: dict[str, str]) -> None:
    env, log = other_cpu_env(tmp_path, pinned=True)
    other = render_ladder(tmp_path / "other" / "data", env)
    assert len(normal_ladder) == 12  # a reference, ten rungs and the manifest
    differ = sorted(k for k in normal_ladder if normal_ladder[k] != other.get(k))
    assert not differ, f"files that differ on the other CPU: {differ}"
    calls = [c for c in log.read_text().splitlines() if " -i " in c]  # media, not `-version`/`-filters`
    assert len(calls) >= 11
    for call in calls:
        assert "-cpuflags 0" in call, call
        assert cpu.GLIBC_HWCAPS_MASK in call.split("| GLIBC_TUNABLES=")[1], call
    encodes = [c for c in calls if "-c:v lib" in c]
    assert len(encodes) == 10
    for c in encodes:
        switch = {"libx264": "asm=0", "libx265": "no-asm=1", "libsvtav1": "asm=0"}[c.split("-c:v ")[1].split()[0]]
        assert switch in c, c


def test_unpinned_the_other_cpu_changes_the_ladder(tmp_path: Path, normal_ladder: dict[str, str]) -> None:
    env, _ = other_cpu_env(tmp_path, pinned=False)
    other = render_ladder(tmp_path / "other" / "data", env)
    differ = sorted(k for k in normal_ladder if k != "manifest.csv" and normal_ladder[k] != other.get(k))
    assert len(differ) >= 8, differ  # the reference (swscale) and the encoders' bitstreams
