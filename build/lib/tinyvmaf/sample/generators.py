"""Feature-vector generators: where in the six-dimensional feature space the student is taught.

A student trained on the frames of a dozen contents has seen a thin
manifold of the space real videos reach and extrapolates badly off it.  The
teacher is a known function, so labels are free anywhere; what matters is
*where* to ask.  Three generators, mixed by ``sample.mix``:

uniform   every feature independently over the box (``adm2`` and
          ``vif_scale0..3`` in ``[0, quality_max]``, ``motion2`` with a long
          tail up to ``motion2_max``): covers combinations no corpus has.
quality   one latent quality per row drives all five quality features
          through content-dependent curves (the higher VIF scales stay
          closer to 1 than scale 0, adm2 the least sensitive), plus noise,
          and a share of rows with enhancement gains above 1 (sharpening,
          contrast boosts: Netflix's own tests see adm2 1.117): the
          correlated region real encodes live in.
jitter    Gaussian jitter around real *train* frames (absolute on the
          quality features, log-normal on motion2): the manifold itself,
          thickened.  Only train frames: val and test contents must not
          leak into the model through their neighbourhoods.

The held-out dense set the student is *measured* on is none of these
(:func:`tinyvmaf.evaluate.sets.dense_rows`: a Gaussian copula with its own
correlation, bounds and seed).

Every generator takes a NumPy ``Generator`` and returns float64 rows in
canonical-6 order inside the box; the same seed gives the same rows.
"""

from __future__ import annotations

import numpy as np

from ..config.schema import BoundsConfig, JitterConfig, MixConfig, QualityGenConfig
from ..contract import FEATURES

GENERATORS = ("uniform", "quality", "jitter")
_N_QUALITY = len(FEATURES) - 1  # adm2, vif_scale0..3; motion2 is last
_MOTION = FEATURES.index("motion2")


def motion2_tail(rng: np.random.Generator, n: int, bounds: BoundsConfig) -> np.ndarray:
    """Exponential with mean ``motion2_scale`` (values past the cap redrawn uniformly), 5 % uniform, 3 % zero."""
    hi = bounds.motion2_max
    m = rng.exponential(bounds.motion2_scale, n)
    over = m > hi
    m[over] = rng.uniform(0.0, hi, int(over.sum()))
    flat = rng.random(n) < 0.05
    m[flat] = rng.uniform(0.0, hi, int(flat.sum()))
    m[rng.random(n) < 0.03] = 0.0  # a clip's first frame has no motion
    return m


def clip_to_box(x: np.ndarray, bounds: BoundsConfig) -> np.ndarray:
    x[:, :_N_QUALITY] = np.clip(x[:, :_N_QUALITY], 0.0, bounds.quality_max)
    x[:, _MOTION] = np.clip(x[:, _MOTION], 0.0, bounds.motion2_max)
    return x


def uniform(rng: np.random.Generator, n: int, bounds: BoundsConfig) -> np.ndarray:
    x = np.empty((n, len(FEATURES)))
    x[:, :_N_QUALITY] = rng.uniform(0.0, bounds.quality_max, (n, _N_QUALITY))
    x[:, _MOTION] = motion2_tail(rng, n, bounds)
    return x


def quality(rng: np.random.Generator, n: int, bounds: BoundsConfig, cfg: QualityGenConfig) -> np.ndarray:
    q = rng.beta(1.2, 0.8, n)  # latent quality, more mass towards good encodes
    texture = rng.uniform(0.0, 1.0, n)
    adm2 = 0.35 + 0.65 * q ** (0.4 + 1.2 * rng.random(n))
    base = 0.3 + 1.5 * rng.random(n)
    vif = np.column_stack([q ** (base * (1.8 / (s + 1)) * (0.6 + 0.8 * texture)) for s in range(4)])
    x = np.column_stack([adm2, vif, motion2_tail(rng, n, bounds)])
    x[:, :_N_QUALITY] += cfg.noise * rng.standard_normal((n, _N_QUALITY))
    enhanced = rng.random(n) < cfg.enhance
    k = int(enhanced.sum())
    gain = 1.0 + rng.uniform(0.0, cfg.enhance_gain, (k, 1)) * rng.uniform(0.5, 1.0, (k, _N_QUALITY))
    x[enhanced, :_N_QUALITY] = np.maximum(x[enhanced, :_N_QUALITY], 0.85) * gain
    return clip_to_box(x, bounds)


def jitter(rng: np.random.Generator, n: int, frames: np.ndarray, bounds: BoundsConfig, cfg: JitterConfig) -> np.ndarray:
    if n and not len(frames):
        raise ValueError("jitter needs at least one train frame")
    x = np.asarray(frames, dtype=np.float64)[rng.integers(0, len(frames), n)].copy()
    x[:, :_N_QUALITY] += cfg.sigma * rng.standard_normal((n, _N_QUALITY))
    x[:, _MOTION] = x[:, _MOTION] * np.exp(cfg.motion2_sigma * rng.standard_normal(n)) + rng.exponential(0.05, n)
    return clip_to_box(x, bounds)


def allocate(count: int, mix: MixConfig, generators: tuple[str, ...] = GENERATORS) -> dict[str, int]:
    """Rows per generator: ``count`` split by the normalised shares (the remainder to the largest share)."""
    shares = {g: float(getattr(mix, g)) for g in generators}
    total = sum(shares.values())
    if total <= 0:
        raise ValueError(f"no positive share among {list(generators)} in sample.mix")
    out = {g: int(count * s / total) for g, s in shares.items()}
    out[max(shares, key=shares.__getitem__)] += count - sum(out.values())
    return out


def draw(
    rng: np.random.Generator,
    counts: dict[str, int],
    train_frames: np.ndarray,
    bounds: BoundsConfig,
    quality_cfg: QualityGenConfig,
    jitter_cfg: JitterConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[N, 6]`` and their generator names, in :data:`GENERATORS` order."""
    parts, names = [], []
    for g in GENERATORS:
        n = counts.get(g, 0)
        if not n:
            continue
        if g == "uniform":
            parts.append(uniform(rng, n, bounds))
        elif g == "quality":
            parts.append(quality(rng, n, bounds, quality_cfg))
        else:
            parts.append(jitter(rng, n, train_frames, bounds, jitter_cfg))
        names.append(np.full(n, g))
    if not parts:
        return np.empty((0, len(FEATURES))), np.empty(0, dtype=str)
    return np.concatenate(parts), np.concatenate(names)
