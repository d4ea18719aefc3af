"""One FFmpeg + libvmaf pass over a (reference, distorted) pair.

The pass yields, per frame, every feature that the requested teachers'
model files name, under libvmaf's own keys, and each teacher's score
(:mod:`tinyvmaf.extract.plan`).  The graph is built so that nothing happens
silently:

* the distorted clip is upscaled to the reference size with bicubic (the
  way Netflix builds its dataset) and converted to the reference's pixel
  format, both explicitly;
* both inputs are re-timed to their frame index, so frame *n* of one is
  always compared with frame *n* of the other whatever the containers say;
* a frame-count mismatch is an error (policy ``error``) or both clips are
  cut to the shorter one (policy ``truncate``), never FFmpeg's silent
  repetition of the last frame.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..config.schema import FRAME_POLICIES
from ..media.ffmpeg import run_ffmpeg
from ..media.video import SUPPORTED_PIX_FMTS, MediaError, Video, probe, probe_once
from .plan import ExtractionPlan, plan_for


class FrameCountMismatch(MediaError):
    """Reference and distorted clips have different frame counts."""


@dataclass(frozen=True)
class PairResult:
    """Per-frame features and teacher scores of one pair, columns in canonical order."""

    frames: list[dict[str, float]]
    ref_frames: int
    dist_frames: int


def build_filtergraph(
    ref_size: tuple[int, int],
    ref_pix_fmt: str,
    log_path: Path,
    plan: ExtractionPlan,
    n_frames: int | None,
) -> str:
    """The ``-lavfi`` graph: input 0 is the distorted clip, input 1 the reference (libvmaf's order)."""
    if ref_pix_fmt not in SUPPORTED_PIX_FMTS:
        # A container reference in, e.g., RGB: score in 8-bit 4:2:0 like most corpora.
        ref_pix_fmt = "yuv420p"
    w, h = ref_size
    trim = f"trim=end_frame={n_frames}," if n_frames is not None else ""
    retime = "settb=1/25,setpts=N"
    log = str(log_path).replace("\\", "/").replace(":", "\\\\:")
    return (
        f"[0:v]{trim}{retime},scale={w}:{h}:flags=bicubic,format={ref_pix_fmt}[dis];"
        f"[1:v]{trim}{retime},format={ref_pix_fmt}[ref];"
        f"[dis][ref]libvmaf=log_fmt=json:log_path={log}:n_threads=1:"
        f"model='{plan.model_option()}'"
    )


#: FFmpeg's end-of-run statistics at ``-v verbose``: frames each input's decoder produced.
_DECODED_RE = re.compile(r"Input stream #(?P<file>\d+):\d+ \(video\):.*?(?P<n>\d+) frames decoded")


def decoded_frames(stderr: str) -> dict[int, int]:
    """``{input file index: frames decoded}`` from a verbose FFmpeg run (empty when the build prints none)."""
    return {int(m["file"]): int(m["n"]) for m in _DECODED_RE.finditer(stderr)}


def run_pair(
    ref: Video,
    dist: Video,
    *,
    ffmpeg: str,
    teachers: tuple[str, ...] | list[str] | ExtractionPlan,
    frame_policy: str,
) -> PairResult:
    """Score ``dist`` against ``ref`` with libvmaf: one FFmpeg process per pair (plus a probe per reference file).

    The reference is probed (once per file and process: a ladder's rungs share
    it) for the size and pixel format the graph converts to.  The distorted
    clip is not probed under the default ``error`` policy: FFmpeg decodes both
    inputs to the end anyway (it repeats the shorter one's last frame), so the
    run's own statistics say how many frames each had, and a mismatch is an
    error naming both files after the run.  ``truncate`` needs both counts
    before the run (frames are cut at the input, where libvmaf's motion of the
    last common frame cannot see beyond it), so it probes the distorted clip too.
    """
    if frame_policy not in FRAME_POLICIES:
        raise ValueError(f"frame_policy must be one of {FRAME_POLICIES}, got {frame_policy!r}")
    plan = teachers if isinstance(teachers, ExtractionPlan) else plan_for(teachers)
    pr = probe_once(ref, ffmpeg)
    n_frames: int | None = None
    dist_frames: int | None = probe(dist, ffmpeg).frames if (dist.is_raw or frame_policy == "truncate") else None
    if dist_frames is not None and dist_frames != pr.frames:
        if frame_policy == "error":
            raise mismatch(ref, dist, pr.frames, dist_frames)
        n_frames = min(pr.frames, dist_frames)
    with tempfile.TemporaryDirectory(prefix="tinyvmaf-") as tmp:
        log_path = Path(tmp) / "vmaf.json"
        graph = build_filtergraph((pr.width, pr.height), pr.pix_fmt, log_path, plan, n_frames)
        proc = run_ffmpeg(
            [*dist.input_args(), *ref.input_args(), "-lavfi", graph, "-f", "null", "-"],
            ffmpeg,
            what=f"running libvmaf on ref={ref.path} dist={dist.path}",
            loglevel="verbose",
        )
        if dist_frames is None:
            dist_frames = decoded_frames(proc.stderr).get(0)
            if dist_frames is None:  # an FFmpeg that prints no statistics: count the old way
                dist_frames = probe(dist, ffmpeg).frames
            if dist_frames != pr.frames:
                raise mismatch(ref, dist, pr.frames, dist_frames)
        log = json.loads(log_path.read_text())
    where = f"ref={ref.path} dist={dist.path}"
    frames = [plan.frame_row(f["metrics"], pair=where, frame=i) for i, f in enumerate(log["frames"])]
    expected = n_frames if n_frames is not None else pr.frames
    if len(frames) != expected:
        raise MediaError(
            f"libvmaf scored {len(frames)} frames for ref={ref.path} dist={dist.path}, expected {expected}"
        )
    return PairResult(frames=frames, ref_frames=pr.frames, dist_frames=dist_frames)


def mismatch(ref: Video, dist: Video, n_ref: int, n_dist: int) -> FrameCountMismatch:
    return FrameCountMismatch(
        f"frame counts differ: reference {ref.path} has {n_ref}, distorted {dist.path} has "
        f"{n_dist} (set extract.frame_policy=truncate to score the common frames)"
    )
