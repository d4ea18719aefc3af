"""The same bytes on another CPU: every CPU-dependent setting varied, the outputs byte-equal.

One machine cannot be an AMD EPYC without AVX-512, but it can be told to act
like one: each library that picks its kernels by CPU has a switch for it
(:mod:`tinyvmaf.common.cpu` lists them).  :data:`OTHER_CPU` flips every such
switch the way another machine (or a user's shell) would, and an FFmpeg
wrapper forces FFmpeg's own SIMD level, as a different CPU would.  Under it:

* the pins are in effect in a stage process (``tinyvmaf cpu``), and every
  FFmpeg the stages start runs with ``-cpuflags 0``, glibc's libm pinned and
  the encoders' asm off;
* the demo ladder (all ten rungs), ``features.parquet``, ``labels.parquet``,
  ``samples.parquet``, the checkpoints and the ONNX are byte-equal to the
  normal build's;
* the control: with pinning off (``TINYVMAF_CPU_PIN=0``) the same settings
  DO change the bytes, so the variation is real and the pins are what hold.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tinyvmaf.common import cpu

from project import run
from servers import BASE_BRANCH

if TYPE_CHECKING:
    from servers import Pipeline

pytest_plugins = ["servers"]
pytestmark = pytest.mark.slow

#: What another x86-64 machine changes: an AVX2-only CPU for NumPy and glibc, torch's and MKL's
#: portable paths, oneDNN's AVX-512 one.
OTHER_CPU = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "AUTO",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX512VL",
}
#: FFmpeg's own SIMD on that machine: AVX2, no AVX-512.
OTHER_CPU_FFMPEG_FLAGS = "mmx+mmxext+sse+sse2+sse3+ssse3+sse4.1+sse4.2+avx+avx2+fma3"
#: One source through the whole ladder (x264, x265, SVT-AV1, downscaled rungs).
LADDER_SOURCE = "coffee_pan"
STAGE_OUTS = (
    "features.parquet",
    "labels.parquet",
    "samples.parquet",
    "models/best.ckpt",
    "models/archs",
    "model/tiny/vmaf_tiny_fr_v2_nflx.onnx",
)


def ffmpeg_wrapper(folder: Path, log: Path, flags: str) -> Path:
    """An ``ffmpeg`` that logs each call (argv, GLIBC_TUNABLES) and runs the real one at SIMD level ``flags``.

    Its ``-cpuflags`` comes first: an FFmpeg option given twice takes the later value, so a pinned
    run (which passes ``-cpuflags 0`` itself) overrides it and an unpinned one runs at ``flags``.
    """
    from tinyvmaf.media.ffmpeg import resolve_ffmpeg

    real = resolve_ffmpeg(None)
    script = folder / "ffmpeg"
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$(printf "%q " "$@")| GLIBC_TUNABLES=${{GLIBC_TUNABLES:-}}" >> "{log}"\n'
        f'exec "{real}" -cpuflags "{flags}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def other_cpu_env(tmp: Path, *, pinned: bool) -> tuple[dict[str, str], Path]:
    """:data:`OTHER_CPU` plus the FFmpeg wrapper, pinning on or off; returns it and the wrapper's call log."""
    tag = "pinned" if pinned else "unpinned"
    folder = (tmp / f"bin-{tag}").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "calls.log"
    wrapper = ffmpeg_wrapper(folder, log, OTHER_CPU_FFMPEG_FLAGS)
    return {**OTHER_CPU, "TINYVMAF_FFMPEG": str(wrapper), cpu.PIN_SWITCH: "1" if pinned else "0"}, log


def tree_digests(root: Path) -> dict[str, str]:
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


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


def test_the_pipeline_is_byte_equal_on_another_cpu(pipeline: Pipeline, tmp_path: Path) -> None:
    """Corpus subset, features, labels, samples, checkpoints and ONNX: A's bytes, from scratch, on the other CPU."""
    c = tmp_path / "C"
    run(["git", "clone", "-q", "--branch", BASE_BRANCH, str(pipeline.path), str(c)], tmp_path)
    env, log = other_cpu_env(tmp_path, pinned=True)
    # The corpus subset rendered again here, not pulled: data.dvc must come out as A's.
    corpus = render_corpus_like(pipeline.corpus, c / "data", env)
    assert tree_digests(corpus) == tree_digests(pipeline.corpus)
    run(["dvc", "add", "-q", "data"], c)
    assert run(["git", "status", "--porcelain", "data.dvc"], c).strip() == ""
    run(["dvc", "repro", "export"], c, {**env, "TINYVMAF_CACHE_DIR": str(tmp_path / "cache")}, timeout=900)
    digests = {rel: tree_digests(c / rel) for rel in STAGE_OUTS}
    differ = [rel for rel in STAGE_OUTS if digests[rel] != tree_digests(pipeline.path / rel)]
    assert not differ, f"outputs that differ on the other CPU: {differ}"
    print(json.dumps({"corpus": tree_digests(corpus), **digests}, indent=1))  # for the record (pytest -s)
    a_lock = yaml.safe_load((pipeline.path / "dvc.lock").read_text())
    c_lock = yaml.safe_load((c / "dvc.lock").read_text())
    for stage in ("extract", "label", "sample", "train"):
        assert c_lock["stages"][stage]["outs"] == a_lock["stages"][stage]["outs"], stage
    media = [c for c in log.read_text().splitlines() if " -i " in c]  # not `-version`/`-filters` (identity)
    assert media and all("-cpuflags 0" in c for c in media)


def render_corpus_like(reference: Path, dest: Path, extra_env: dict[str, str]) -> Path:
    """Render the demo subset that ``reference`` holds (its manifest names the sources and rungs)."""
    rows = (reference / "manifest.csv").read_text().splitlines()[1:]
    header = (reference / "manifest.csv").read_text().splitlines()[0].split(",")
    keys = [dict(zip(header, r.split(","), strict=False))["key"] for r in rows]
    sources = sorted({k.split("__")[0] for k in keys})
    hrcs = sorted({k.split("__")[1] for k in keys})
    n_frames = _frames_of(reference)
    cmd = ["tinyvmaf", "corpus", "demo", str(dest), "--frames", str(n_frames), "--no-progress"]
    for s in sources:
        cmd += ["--source", s]
    for h in hrcs:
        cmd += ["--hrc", h]
    dest.parent.mkdir(parents=True, exist_ok=True)
    run(cmd, dest.parent, extra_env)
    return dest


def _frames_of(corpus: Path) -> int:
    """The frame count the small corpus was rendered with (tests/servers.py: 12)."""
    from tinyvmaf.media.ffmpeg import resolve_ffmpeg
    from tinyvmaf.media.video import Video, probe

    ref = next((corpus / "ref").glob("*.mkv"))
    return probe(Video(ref), resolve_ffmpeg(None)).frames
