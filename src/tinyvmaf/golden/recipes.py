"""The project's own golden pairs: small clips FFmpeg makes byte-reproducibly, with pinned libvmaf values.

Netflix's golden pairs (``assets/golden/netflix``) prove the extractor
reproduces Netflix's numbers; these prove it still reproduces *its own*
numbers on container inputs and a downscaled rung (paths the Netflix pairs,
raw YUV at one size, do not exercise), and that the FFmpeg build still
encodes bit for bit as when they were pinned (``project.json``).

The reference is raw planar YUV (no container, nothing to stamp); the
distorted clip is a libx264 encode with the flags that make it
byte-reproducible (DESIGN.md: bitexact, no metadata, one thread) on any CPU
(x264's asm off, FFmpeg's ``-cpuflags 0``: :mod:`tinyvmaf.common.cpu`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common import cpu
from ..common.provenance import file_sha256
from ..media.ffmpeg import ffmpeg_info, run_ffmpeg
from ..media.video import Video

PROJECT_FILE = "project.json"


@dataclass(frozen=True)
class GoldenRecipe:
    """One project golden pair, made by FFmpeg from a lavfi source."""

    name: str
    source: str  # lavfi source graph producing the reference frames
    width: int
    height: int
    frames: int
    dist_filter: str | None  # applied to the reference before encoding (e.g. a downscale)
    crf: int
    dist_ext: str = "mp4"
    pix_fmt: str = "yuv420p"

    @property
    def ref_name(self) -> str:
        return f"{self.name}_ref_{self.width}x{self.height}.yuv"

    @property
    def dist_name(self) -> str:
        return f"{self.name}_dist.{self.dist_ext}"

    def ref_args(self, ref: Path) -> list[str]:
        return [
            *("-f", "lavfi", "-i", self.source),
            *("-frames:v", str(self.frames), "-pix_fmt", self.pix_fmt),
            *("-sws_flags", "bicubic+accurate_rnd+bitexact", "-f", "rawvideo", "-y", str(ref)),
        ]

    def dist_args(self, ref: Path, dist: Path) -> list[str]:
        vf = ["-vf", self.dist_filter] if self.dist_filter else []
        return [
            *("-f", "rawvideo", "-pix_fmt", self.pix_fmt, "-s", f"{self.width}x{self.height}"),
            *("-framerate", "25", "-i", str(ref)),
            *vf,
            *("-sws_flags", "bicubic+accurate_rnd+bitexact"),
            *("-c:v", "libx264", "-preset", "medium", "-crf", str(self.crf), "-threads", "1"),
            *("-x264-params", cpu.encoder_params("libx264")),  # x264's asm paths differ by CPU
            *("-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", "-y", str(dist)),
        ]


#: A low- and a high-quality encode and a downscaled one: small, few frames.
PROJECT_RECIPES: tuple[GoldenRecipe, ...] = (
    GoldenRecipe("testsrc2_x264_crf36", "testsrc2=size=256x144:rate=25", 256, 144, 6, None, 36),
    GoldenRecipe(
        "mandelbrot_half_x264_crf28",
        "mandelbrot=size=256x144:rate=25:maxiter=256",
        256,
        144,
        6,
        "scale=128:72",
        28,
        dist_ext="mkv",
    ),
    GoldenRecipe("testsrc2_x264_crf10", "testsrc2=size=256x144:rate=25", 256, 144, 6, None, 10),
)


def generate_project_media(folder: Path, ffmpeg: str | None) -> dict[str, dict[str, Any]]:
    """Write each recipe's ref/dist into ``folder``; returns per pair the Videos, file hashes and recipe."""
    exe = ffmpeg_info(ffmpeg).path
    out: dict[str, dict[str, Any]] = {}
    for r in PROJECT_RECIPES:
        ref, dist = folder / r.ref_name, folder / r.dist_name
        run_ffmpeg(r.ref_args(ref), exe, what=f"generating golden reference {r.name}")
        run_ffmpeg(r.dist_args(ref, dist), exe, what=f"encoding golden distorted {r.name}")
        out[r.name] = {
            "ref": Video(ref, r.width, r.height, r.pix_fmt),
            "dist": Video(dist),
            "sha256": {"ref": file_sha256(ref), "dist": file_sha256(dist)},
            "recipe": r,
        }
    return out
