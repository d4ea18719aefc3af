"""Every code path that picks its instructions by CPU, and how each one is pinned.

A team shares the corpus, the features, the samples and every checkpoint by
hash, so the same inputs and params must give the same bytes on any x86-64
machine, Intel or AMD, with or without AVX-512.  Much of the stack chooses
SIMD kernels at run time from CPUID, and several of those kernels round
differently (another accumulation order, a fused multiply-add, another
polynomial).  The table, measured on this project's stack (README,
"Reproducible on any CPU"):

===========================  =====================================  ==========================================
code                         picks by CPU                           pinned by
===========================  =====================================  ==========================================
x264 / x265 / SVT-AV1        their own asm (bitstreams differ)      ``asm=0`` / ``no-asm=1`` / ``asm=0``
FFmpeg (swscale, filters,    ``av_get_cpu_flags`` (the demo refs    ``-cpuflags 0`` on every FFmpeg run
decoders, FFV1)              and the upscaled rungs differ)
glibc libm (exp, log, pow,   ifunc: FMA / AVX2 / SSE2 variants      ``GLIBC_TUNABLES`` masks AVX2, FMA, FMA4
sin, cos) in every process
NumPy (exp, log, ...)        its own AVX2 / AVX-512 loops           ``NPY_DISABLE_CPU_FEATURES``
OpenBLAS (NumPy's ``@``)     kernel per CPU family                  not used on any hashed output: the teacher
                                                                    sums in a fixed order (``exactmath``)
ATen (torch CPU kernels)     DEFAULT / AVX2 / AVX-512 builds        ``ATEN_CPU_CAPABILITY=avx2``
MKL GEMM (torch ``Linear``)  per ISA, and other paths on AMD        ``MKL_CBWR=AVX2,STRICT`` and
                                                                    ``MKL_ENABLE_INSTRUCTIONS=AVX2``
oneDNN                       per ISA                                ``ONEDNN_MAX_CPU_ISA=AVX2``
ONNX Runtime (MLAS)          per ISA                                the graph has no GEMM nor transcendental:
                                                                    every op is one IEEE rounding
libvmaf (adm, vif, motion    its own CPUID; FFmpeg's flags do not   not pinnable through FFmpeg; the v0.6.1
integer; speed, cambi)       reach it                               features are integer arithmetic (same
                                                                    values on every path)
===========================  =====================================  ==========================================

AVX2 is the floor for torch and MKL: every Intel CPU since 2013 (Haswell)
and every AMD since 2017 (Zen).  Pinning them to AVX2 costs nothing on an
AVX-512 machine (measured: AVX2 and AVX-512 ATen give the same training
bits; MKL's AVX2 branch costs ~1.3x on these GEMMs), where the fully
portable ``COMPATIBLE``/``default`` pair cost 2.6x.

The pins are environment variables, read by those libraries when they load,
so :func:`pin_process` re-executes the interpreter once with them set before
anything heavy is imported.  ``TINYVMAF_CPU_PIN=0`` turns the whole thing
off (outputs then depend on the CPU; the tests use it as the control).
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: Off switch (any of these values); the default is on.
PIN_SWITCH = "TINYVMAF_CPU_PIN"
_OFF = {"0", "false", "no", "off"}

#: glibc's ifunc selection: without these its libm takes the SSE2 variants on every CPU.
GLIBC_HWCAPS_MASK = "glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4,-AVX512F"
#: NumPy's dispatchable SIMD targets (2.x names, and 1.x names for older builds; unknown names are ignored).
NUMPY_DISPATCH = (
    "X86_V3 X86_V4 AVX512_ICL AVX512_SPR "
    "AVX AVX2 F16C FMA3 AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_FP16"
)

#: Variables set in every pinned process (and so in every FFmpeg it starts).
PINNED_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # it overrides MKL_CBWR when set (measured: AVX512 changes the bits)
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": NUMPY_DISPATCH,
}

#: Global FFmpeg options: FFmpeg's own code (swscale, filters, decoders, encoders it implements) in plain C.
FFMPEG_ARGS: tuple[str, ...] = ("-cpuflags", "0")
#: The external encoders' own switches (they ignore ``-cpuflags``).
X264_PARAMS = "asm=0"
X265_PARAMS = "no-asm=1"
SVTAV1_PARAMS = "asm=0"


def enabled() -> bool:
    """Whether pinning is on (``$TINYVMAF_CPU_PIN`` not set to 0/false/no/off)."""
    return os.environ.get(PIN_SWITCH, "1").strip().lower() not in _OFF


def pinned_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the pins set; a user's own GLIBC_TUNABLES are kept beside ours."""
    out = dict(os.environ if env is None else env)
    out.update(PINNED_ENV)
    tunables = [t for t in out.get("GLIBC_TUNABLES", "").split(":") if t and not t.startswith("glibc.cpu.hwcaps=")]
    out["GLIBC_TUNABLES"] = ":".join([*tunables, GLIBC_HWCAPS_MASK])
    return out


def is_pinned(env: dict[str, str] | None = None) -> bool:
    """Whether ``env`` already carries every pin (then nothing needs re-executing)."""
    env = dict(os.environ if env is None else env)
    return all(env.get(k) == v for k, v in PINNED_ENV.items()) and GLIBC_HWCAPS_MASK in env.get(
        "GLIBC_TUNABLES", ""
    ).split(":")


def pin_process() -> None:
    """Re-execute this interpreter with the pins, once, unless they are set or pinning is off.

    Call it first thing in an entry point, before NumPy or torch is imported:
    the libraries read these variables when they load (and glibc when the
    process starts), so setting them later would do nothing.
    """
    if not enabled() or is_pinned():
        return
    heavy = [m for m in ("numpy", "torch", "onnxruntime") if m in sys.modules]
    if heavy:
        raise RuntimeError(f"pin_process() must run before importing {heavy}: they read the pins when they load")
    argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], pinned_environment())


def ffmpeg_global_args() -> list[str]:
    """FFmpeg's global options for a run whose output must not depend on the CPU."""
    return list(FFMPEG_ARGS) if enabled() else []


def encoder_params(encoder: str, params: str = "") -> str:
    """An encoder's ``-x264-params`` / ``-x265-params`` / ``-svtav1-params`` string with its asm switched off."""
    pin = {"libx264": X264_PARAMS, "libx265": X265_PARAMS, "libsvtav1": SVTAV1_PARAMS}.get(encoder)
    if pin is None:
        raise ValueError(f"no asm switch known for encoder {encoder!r}")
    parts = [p for p in params.split(":") if p]
    if enabled():
        parts.append(pin)
    return ":".join(parts)


def mkl_cbwr_branch() -> int | None:
    """MKL's conditional-numerical-reproducibility branch as torch's MKL reports it (10 = AVX2), or None."""
    import ctypes

    import torch

    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        get = lib.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    return int(get(1))  # MKL_CBWR_BRANCH


def report() -> dict[str, Any]:
    """What is in effect in this process: the pins' variables and what each library says it uses."""
    import numpy as np

    out: dict[str, Any] = {
        "pinning": enabled(),
        "env": {k: os.environ.get(k) for k in [*PINNED_ENV, "GLIBC_TUNABLES"]},
        "ffmpeg_args": ffmpeg_global_args(),
    }
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    active = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    out["numpy"] = {"version": np.__version__, "dispatch_active": active}
    try:
        import torch
    except ImportError:
        return out
    out["torch"] = {
        "version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr_branch": mkl_cbwr_branch(),
    }
    return out
