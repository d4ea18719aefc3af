"""Content-addressed cache of per-pair libvmaf results.

The key is a SHA-256 over the bytes of both inputs, their declared
geometry, the extractor version, the FFmpeg binary, its CPU pinning
(:mod:`tinyvmaf.common.cpu`) and the extraction params, so a cached entry is valid whatever the file is called and
wherever it lives.  The cache sits outside DVC's outs (DVC deletes outs
before re-running a stage), defaults to ``.tinyvmaf-cache/`` at the project
root and can be pointed at a shared path (``TINYVMAF_CACHE_DIR``) so that
several machines extract a corpus once between them.

Every real libvmaf run appends one line to ``journal.log`` in the cache
folder: tests and users can count extractions without parsing logs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from ..common import cpu
from ..common.atomic import atomic_write_text
from ..common.provenance import file_sha256
from ..media.video import Video

log = logging.getLogger(__name__)

ENV_VAR = "TINYVMAF_CACHE_DIR"
#: Bump when the extraction graph or the row format changes: old entries stop matching.
EXTRACTOR_VERSION = "2"  # 2: rows keyed by libvmaf keys, teachers loaded by path=


def default_cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    return Path(explicit or os.environ.get(ENV_VAR) or ".tinyvmaf-cache").resolve()


_digest_memo: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, memoised per (path, size, mtime) within a process."""
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _digest_memo:
        _digest_memo[memo_key] = file_sha256(path)
    return _digest_memo[memo_key]


def pair_key(ref: Video, dist: Video, ffmpeg_digest: str, params: dict) -> str:
    """The cache key of one extraction."""
    payload = {
        "extractor": EXTRACTOR_VERSION,
        "ffmpeg": ffmpeg_digest,
        "ffmpeg_args": cpu.ffmpeg_global_args(),  # -cpuflags 0 changes the upscaled rungs' features
        "params": params,
        "ref": [file_digest(ref.path), ref.width, ref.height, ref.pix_fmt] if ref.is_raw else [file_digest(ref.path)],
        "dist": [file_digest(dist.path), dist.width, dist.height, dist.pix_fmt]
        if dist.is_raw
        else [file_digest(dist.path)],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class PairCache:
    """Read/write cached results; entries are JSON written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / "pairs" / key[:2] / f"{key}.json"

    def get(self, key: str, columns: tuple[str, ...] = ()) -> list[dict[str, float]] | None:
        """The cached frames (each with a float for every one of ``columns``), or ``None``: absent, or unreadable.

        Entries are written atomically, so a torn entry should not exist; one
        that does (a disk error, a hand edit, another tool) is recomputed and
        overwritten rather than trusted or fatal.
        """
        path = self._path(key)
        try:
            frames = json.loads(path.read_bytes())["frames"]
            if (
                not isinstance(frames, list)
                or not frames
                or not all(isinstance(f, dict) and all(isinstance(f.get(k), float) for k in columns) for f in frames)
            ):
                raise ValueError(f"not a list of frames with the columns {list(columns)}")
            return frames
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            log.warning("%s: unreadable cache entry (%s); extracting the pair again", path, exc)
            return None

    def put(self, key: str, frames: list[dict[str, float]], label: str) -> None:
        atomic_write_text(self._path(key), json.dumps({"label": label, "frames": frames}))

    def journal(self, label: str) -> None:
        """One line per real libvmaf run, appended in one write (O_APPEND: concurrent writers do not mix lines)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = f"{time.time():.3f}\t{os.getpid()}\t{label}\n".encode()
        fd = os.open(self.root / "journal.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
