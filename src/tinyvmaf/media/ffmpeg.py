"""Locate and run the FFmpeg binary that carries libvmaf.

Debian does not package libvmaf, so the default is the static FFmpeg inside
the PyPI package ``imageio-ffmpeg`` (built with ``--enable-libvmaf``).
``TINYVMAF_FFMPEG`` (or an explicit path from config) points at another
build; one without the ``libvmaf`` filter is refused up front with a clear
error rather than failing obscurely in the middle of an extraction.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..common import cpu

ENV_VAR = "TINYVMAF_FFMPEG"


class FFmpegError(RuntimeError):
    """FFmpeg is missing, lacks libvmaf, or a run failed."""


def resolve_ffmpeg(explicit: str | os.PathLike[str] | None = None) -> str:
    """Return the FFmpeg binary to use: explicit > $TINYVMAF_FFMPEG > imageio-ffmpeg."""
    candidate = explicit or os.environ.get(ENV_VAR)
    if candidate:
        path = Path(candidate)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise FFmpegError(f"FFmpeg binary {candidate!r} (from {ENV_VAR} or config) is not an executable file")
        return str(path)
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a dependency
        raise FFmpegError("imageio-ffmpeg is not installed and TINYVMAF_FFMPEG is not set") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class FFmpegInfo:
    """What the extraction cache key needs to know about a binary."""

    path: str
    version: str
    digest: str


def _memo_file(path: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tinyvmaf" / "ffmpeg"
    return base / f"{hashlib.sha1(path.encode()).hexdigest()}.json"


@functools.lru_cache(maxsize=8)
def _inspect(path: str) -> FFmpegInfo:
    """Version, libvmaf check and sha256 of a binary; remembered on disk per (path, size, mtime, inode).

    Hashing an 80 MB static FFmpeg and running it twice costs ~0.3 s, which
    every ``tinyvmaf score`` would otherwise pay before its one libvmaf run.
    """
    st = Path(path).stat()
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
    memo = _memo_file(path)
    try:
        doc = json.loads(memo.read_text())
        if doc.get("stamp") == stamp and doc.get("path") == path:
            return FFmpegInfo(path=path, version=doc["version"], digest=doc["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    info = _inspect_uncached(path)
    try:
        from ..common.atomic import atomic_write_text

        atomic_write_text(
            memo, json.dumps({"path": path, "stamp": stamp, "version": info.version, "digest": info.digest})
        )
    except OSError:
        pass  # a read-only home: inspect again next time
    return info


def _inspect_uncached(path: str) -> FFmpegInfo:
    try:
        version = subprocess.run(
            [path, "-hide_banner", "-version"], capture_output=True, text=True, check=True
        ).stdout.splitlines()[0]
        filters = subprocess.run([path, "-hide_banner", "-filters"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise FFmpegError(f"cannot run FFmpeg at {path}: {exc}") from exc
    if not re.search(r"^\s*\S*\s+libvmaf\s", filters, flags=re.MULTILINE):
        raise FFmpegError(
            f"FFmpeg at {path} has no 'libvmaf' filter (was it built with --enable-libvmaf?); "
            f"unset {ENV_VAR} to use imageio-ffmpeg's build"
        )
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return FFmpegInfo(path=path, version=version, digest=digest)


def ffmpeg_info(explicit: str | os.PathLike[str] | None = None) -> FFmpegInfo:
    """Resolve the binary and check it has libvmaf (cached per path)."""
    return _inspect(resolve_ffmpeg(explicit))


def run_ffmpeg(args: list[str], ffmpeg: str, *, what: str, loglevel: str = "error") -> subprocess.CompletedProcess[str]:
    """Run FFmpeg quietly; on failure raise with the tail of its stderr and ``what`` it was doing."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", loglevel, *cpu.ffmpeg_global_args(), *args]
    env = cpu.pinned_environment() if cpu.enabled() else None  # glibc's libm inside FFmpeg too
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise FFmpegError(f"FFmpeg failed while {what} (exit {proc.returncode}):\n{tail}")
    return proc
