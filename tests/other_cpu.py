"""Another CPU, simulated on this one: every switch a different x86-64 machine flips (tests/pipeline).

Used by ``test_cpu_pinning.py`` (the ladder, the pins in effect, the unpinned control) and
``test_reproducible.py`` (a fresh clone's whole pipeline on the "other CPU" reproduces the lock).
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from tinyvmaf.common import cpu

from project import run

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
#: What the acceptance compares byte for byte (besides the corpus and dvc.lock).
STAGE_OUTS = (
    "features.parquet",
    "labels/vmaf_v0.6.1.parquet",
    "samples/vmaf_v0.6.1.parquet",
    "models/vmaf_v0.6.1/best.ckpt",
    "models/vmaf_v0.6.1/archs",
    "model/tiny/vmaf_tiny_fr_v2_nflx.onnx",
    "model/tiny/vmaf_v0_6_1_exact.onnx",
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
