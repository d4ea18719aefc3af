"""The features of one (reference, distorted) pair, outside any manifest: ``tinyvmaf features`` and scoring.

Goes through the extract stage's own cached path
(:func:`tinyvmaf.extract.stage.extract_pairs`), so a pair the corpus
already holds costs no libvmaf run, and a pair scored once is free the
second time.
"""

from __future__ import annotations

from pathlib import Path

from ..config.schema import ExtractConfig
from ..corpus.manifest import Pair
from ..media.video import Video
from .plan import plan_for
from .stage import extract_pairs


def make_pair(
    ref: str | Path,
    dist: str | Path,
    *,
    width: int | None = None,
    height: int | None = None,
    pix_fmt: str | None = None,
    dist_width: int | None = None,
    dist_height: int | None = None,
    dist_pix_fmt: str | None = None,
) -> Pair:
    """A pair from two paths; raw YUV takes the geometry (the distorted clip's own via ``dist_*``)."""
    ref, dist = Path(ref), Path(dist)
    return Pair(
        key=f"{ref.name}:{dist.name}",
        content=ref.name,
        ref=Video(ref, width, height, pix_fmt),
        dist=Video(dist, dist_width or width, dist_height or height, dist_pix_fmt or pix_fmt),
    )


def pair_features(pair: Pair, cfg: ExtractConfig) -> dict:
    """Per-frame rows and pooled means (the VMAF of a clip is the mean of its frame scores)."""
    results, _ = extract_pairs([pair], cfg, progress=False)
    frames = results[pair.key]
    cols = plan_for(cfg.teachers).columns
    pooled = {c: sum(f[c] for f in frames) / len(frames) for c in cols}
    return {
        "ref": str(pair.ref.path),
        "dist": str(pair.dist.path),
        "frames": [{"frame": i, **f} for i, f in enumerate(frames)],
        "pooled": pooled,
    }
