"""Describe and probe video inputs: raw planar YUV with declared geometry, or any container.

libvmaf needs both inputs at one size and one pixel format, and FFmpeg's
framesync silently repeats the last frame of the shorter input.  Probing
each input first (frame count, size, pixel format) lets the extractor turn
those silent behaviours into explicit errors or configured policies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .ffmpeg import FFmpegError, run_ffmpeg

RAW_SUFFIXES = {".yuv", ".raw"}

# Bytes per frame relative to width*height, per raw pixel format libvmaf accepts.
_RAW_FORMATS: dict[str, tuple[float, int]] = {}
for _bits, _suffix in ((8, ""), (10, "10le"), (12, "12le"), (16, "16le")):
    _bpp = 1 if _bits == 8 else 2
    for _sub, _factor in (("420", 1.5), ("422", 2.0), ("444", 3.0)):
        _RAW_FORMATS[f"yuv{_sub}p{_suffix}"] = (_factor * _bpp, _bits)

SUPPORTED_PIX_FMTS = tuple(_RAW_FORMATS)


class MediaError(ValueError):
    """An input file is missing, malformed, or inconsistent with its declared geometry."""


@dataclass(frozen=True)
class Video:
    """One input clip. ``width/height/pix_fmt`` are required for raw YUV, ignored otherwise."""

    path: Path
    width: int | None = None
    height: int | None = None
    pix_fmt: str | None = None

    @property
    def is_raw(self) -> bool:
        # The suffix decides, not the declared geometry: a manifest row (or
        # `features --width ...`) declares one geometry for both clips, and a
        # container beside a raw reference must not be read as rawvideo.
        return self.path.suffix.lower() in RAW_SUFFIXES

    def input_args(self) -> list[str]:
        """FFmpeg arguments that open this clip (demuxer options for raw YUV)."""
        if self.is_raw:
            self._check_raw_declared()
            return [
                "-f",
                "rawvideo",
                "-pix_fmt",
                str(self.pix_fmt),
                "-s",
                f"{self.width}x{self.height}",
                "-framerate",
                "25",
                "-i",
                str(self.path),
            ]
        return ["-i", str(self.path)]

    def _check_raw_declared(self) -> None:
        if self.width is None or self.height is None or self.pix_fmt is None:
            raise MediaError(
                f"{self.path}: raw YUV needs width, height and pix_fmt (manifest columns or --width/--height/--pix-fmt)"
            )
        if self.pix_fmt not in _RAW_FORMATS:
            raise MediaError(
                f"{self.path}: pix_fmt {self.pix_fmt!r} is not one libvmaf reads; "
                f"use one of {', '.join(SUPPORTED_PIX_FMTS)}"
            )


@dataclass(frozen=True)
class Probe:
    width: int
    height: int
    pix_fmt: str
    frames: int


_STREAM_RE = re.compile(r"Video: [^,]+(?:\([^)]*\))?, (?P<pix>[a-z0-9_]+)(?:\([^)]*\))?, (?P<w>\d+)x(?P<h>\d+)")
_FRAME_RE = re.compile(r"frame=\s*(\d+)")


def probe(video: Video, ffmpeg: str) -> Probe:
    """Frame count, size and pixel format of ``video``.

    Raw YUV is measured from the file size (a size that is not a whole number
    of frames is an error: a wrong geometry would otherwise score garbage).
    Containers are counted by remuxing the video stream to the null muxer
    (``-c copy``: no decoding, one packet per frame).
    """
    if not video.path.is_file():
        raise MediaError(f"{video.path}: no such file")
    if video.is_raw:
        video._check_raw_declared()
        assert video.width and video.height and video.pix_fmt
        factor, _ = _RAW_FORMATS[video.pix_fmt]
        frame_bytes = int(video.width * video.height * factor)
        size = video.path.stat().st_size
        if size == 0 or size % frame_bytes:
            raise MediaError(
                f"{video.path}: size {size} B is not a whole number of {video.width}x{video.height} "
                f"{video.pix_fmt} frames ({frame_bytes} B each); check the declared geometry"
            )
        return Probe(video.width, video.height, video.pix_fmt, size // frame_bytes)
    try:
        proc = run_ffmpeg(
            [*video.input_args(), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
            ffmpeg,
            what=f"probing {video.path}",
            loglevel="info",
        )
    except FFmpegError as exc:
        raise MediaError(f"{video.path}: FFmpeg cannot read it as video: {exc}") from exc
    stream = _STREAM_RE.search(proc.stderr)
    frames = _FRAME_RE.findall(proc.stderr)
    if not stream or not frames:
        raise MediaError(f"{video.path}: could not find a video stream and its frame count")
    return Probe(int(stream["w"]), int(stream["h"]), stream["pix"], int(frames[-1]))


_probe_memo: dict[tuple[str, str, int, int, str | None, int | None, int | None], Probe] = {}


def probe_once(video: Video, ffmpeg: str) -> Probe:
    """:func:`probe`, remembered per file identity (path, size, mtime) and declared geometry in this process.

    A ladder's rungs share one reference: it is read once, not once per rung.
    """
    if not video.path.is_file():
        raise MediaError(f"{video.path}: no such file")
    st = video.path.stat()
    key = (str(video.path.resolve()), ffmpeg, st.st_size, st.st_mtime_ns, video.pix_fmt, video.width, video.height)
    if key not in _probe_memo:
        _probe_memo[key] = probe(video, ffmpeg)
    return _probe_memo[key]
