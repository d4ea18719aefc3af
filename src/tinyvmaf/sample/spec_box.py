"""Where to teach a student of any teacher: the box, three generic generators and a held-out dense set.

:mod:`.generators` is hand-tuned for the canonical-6 features of the v0.6.1
family.  This module needs nothing but a :class:`~tinyvmaf.teacher.spec.TeacherSpec`
(plus, where the spec says too little, the corpus): it serves any teacher,
v0.6.1 included, though the pipeline keeps the old generators for that family.

The box
    Per feature, in spec order.  An extractor bound is used as it is where
    it is *tight*: an upper bound set below libvmaf's "no clamp" default
    (``cambi_max_val`` 17, ``speed_max_val`` 45, ``motion_max_val`` 18,
    ``adm_enhn_gain_limit`` 1), a floor set by the file (``adm_min_val``
    0.5), and the zero floor of cambi, SpEED and motion (flat frames,
    grey chroma and still frames reach it).  The extractors clamp their
    outputs there, and real content sits *on* those bounds (see below), so
    nothing less covers real frames and nothing more can occur.  Where the
    bound is only a default (vif's and adm's gain limit 100, motion's
    10000), it is the corpus (+ golden) range widened by ``margin`` times
    its width, clamped to the extractor bound.  :func:`check_box` fails by
    name when a real frame lies outside: a box that misses real content
    never silently trains a student.

Exact zeros
    ``speed_chroma`` and motion features have a point mass at exactly 0
    (grey chroma, tiny frames and prescaled SpEED log 0; a clip's first
    frame has no motion2), and so does any feature whose real frames hold
    exact zeros (cambi does: 14 % of the demo frames).  For
    ``speed_chroma_uv`` the point matters: the chroma correction replaces an
    exact 0 by ``120·(1 − adm3)``, a jump no continuous draw ever lands on.
    Every generator (and the dense set) draws exact zeros in those columns
    at the box's ``zero_share`` = max(the corpus' share, ``zero_share_min``)
    (capped by ``zero_share_max``), and never an exact 0 otherwise.

Generators (:data:`GENERIC_GENERATORS`)
    uniform  every feature independently over the box: combinations no
             corpus has.
    jitter   Gaussian jitter around real *train* frames, sigma relative to
             each feature's box width, reflected at the box walls (clipping
             would pile extra mass, and extra exact zeros, on the bounds).
    corner   each feature at its lower bound, its upper bound or uniform,
             a third each: the clamps real content sits on, combined; the
             lower edge of a zero column is the smallest positive value
             libvmaf logs (1e-6), the zero itself comes from the zero share.

The dense set (:func:`dense_generic`)
    Not a training generator: a Gaussian copula with correlation
    :data:`DENSE_CORRELATION` in the *quality direction* (each feature
    signed by whether the teacher's score rises or falls with it over real
    frames, so bad adm3 goes with high speed_chroma_uv as in real encodes;
    the box alone where there are none), each marginal a power of
    the uniform that moves its median half-way (in the exponent) from the
    box's middle towards the corpus' median, exact zeros at the zero share,
    and its own random stream per teacher (``[seed, crc32 of the order]``).

What the demo corpus shows (FFmpeg's libvmaf via imageio-ffmpeg, the
carried ``vmaf_v1.0.16_3d0h.json``; 120 pairs, 12 contents, 5760 frames at
576x324; the teacher matches libvmaf's score within 1.8e-4 on all of them):

================  ========  ======  ======  =======================================
feature           min       median  max     exact zeros / at the bound
================  ========  ======  ======  =======================================
cambi             0         0.341   17      13.9 % zero (cellauto, life, ...);
                                            1.5 % at cambi_max_val 17 (rocket_tilt)
speed_chroma_uv   0         3.84    45      8.4 % zero (all of cellauto: grey chroma,
                                            1 frame of life); 1.1 % at 45 (life)
adm3              0.5       0.947   0.9966  0.56 % at the adm_min_val floor 0.5
motion3           0.0207    3.18    18      no zeros; 8.3 % at motion_max_val 18
================  ========  ======  ======  =======================================

So every tight bound is reached by real content, all four at once in this
small corpus.  motion3 is *not* 0 on a clip's first frame in this libvmaf
(frame 0 repeats frame 1's value; motion2 is 0 there); with
``vmaf_v1.0.16_hfr_3d0h``'s five-frame moving average motion3 starts at 1.5.
``vmaf_v1.0.16_5d0h`` (``speed_prescale`` 0.6) logs speed_chroma_uv = 0 on
*every* demo frame (576x324 is too small for the prescaled SpEED), so its
corpus zero share is 1: pass ``zero_share_max`` < 1 there or the non-zero
branch is never taught.  Netflix's golden pairs with the same model: src01
(3 frames) lies inside; sparks (480x270, 5 frames) logs cambi and
speed_chroma_uv exactly 0 on every frame.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ..teacher.spec import (
    DEFAULT_ADM_ENHN_GAIN_LIMIT,
    DEFAULT_CAMBI_MAX_VAL,
    DEFAULT_MOTION_MAX_VAL,
    DEFAULT_SPEED_MAX_VAL,
    DEFAULT_VIF_ENHN_GAIN_LIMIT,
    FeatureSpec,
    TeacherSpec,
)

GENERIC_GENERATORS = ("uniform", "jitter", "corner")

#: Extractors whose output has an exact-zero point mass on real content (grey chroma, still frames).
ZERO_EXTRACTORS = ("speed_chroma", "integer_motion")
#: Extractors whose floor 0 real content reaches (flat frames, grey chroma, still frames): a tight lower bound.
ZERO_FLOOR_EXTRACTORS = ("cambi", "speed_chroma", "integer_motion")
#: libvmaf's "no clamp" defaults: an upper bound at (or above) these is no information about real values.
UNBOUNDED_DEFAULTS: Mapping[str, float] = MappingProxyType(
    {
        "cambi": DEFAULT_CAMBI_MAX_VAL,
        "speed_chroma": DEFAULT_SPEED_MAX_VAL,
        "integer_motion": DEFAULT_MOTION_MAX_VAL,
        "integer_adm": DEFAULT_ADM_ENHN_GAIN_LIMIT,
        "integer_vif": DEFAULT_VIF_ENHN_GAIN_LIMIT,
    }
)
#: The smallest positive value libvmaf's six-decimal log holds: the corner generator's lower edge of a zero column.
SMALLEST_LOGGED = 1e-6
#: The dense set's copula correlation, in the quality direction.
DENSE_CORRELATION = 0.5
#: The corner generator's chance of each bound, per feature (the rest uniform).
CORNER_P_BOUND = 1.0 / 3.0


@dataclass(frozen=True, eq=False)
class Box:
    """The region a teacher's student is taught over, in spec order (arrays read-only).

    ``direction`` (+1/−1: the teacher's score rises/falls with the feature
    over real frames, else over the box) and
    ``typical`` (the corpus' median, of the non-zero values in a zero column)
    shape the dense set only; the training generators ignore them.
    """

    order: tuple[str, ...]
    lo: np.ndarray
    hi: np.ndarray
    zero_columns: tuple[str, ...]
    zero_share: dict[str, float]  # per zero column
    source: tuple[str, ...]
    direction: np.ndarray
    typical: np.ndarray

    @property
    def width(self) -> np.ndarray:
        return self.hi - self.lo

    def zero_index(self) -> list[tuple[int, float]]:
        """``(column, share)`` of each zero column."""
        return [(self.order.index(n), float(self.zero_share[n])) for n in self.zero_columns]

    def describe(self) -> dict[str, dict[str, object]]:
        """A JSON-able summary (bounds, where they came from, the zero share) for metrics files."""
        return {
            n: {
                "lo": float(lo),
                "hi": float(hi),
                "from": src,
                **({"zero_share": float(self.zero_share[n])} if n in self.zero_share else {}),
            }
            for n, lo, hi, src in zip(self.order, self.lo, self.hi, self.source, strict=True)
        }


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def _rows(frames: np.ndarray | None, n_features: int, name: str) -> np.ndarray:
    """``frames`` as float64 ``[N, n_features]`` (``[0, n]`` for None); a wrong shape is an error naming the set."""
    if frames is None:
        return np.empty((0, n_features))
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ValueError(f"{name} frames must be [N, {n_features}] in spec order, got shape {x.shape}")
    return x


def _split_bounds_from(f: FeatureSpec) -> tuple[str, str]:
    """(lower's source, upper's source) from the spec's ``bounds_from`` (``"adm_min_val (file), ..."``)."""
    parts = [p.strip() for p in f.bounds_from.split(",")]
    if len(parts) == 2:
        return parts[0], parts[1]
    return "extractor floor 0", parts[0]


def _upper_tight(f: FeatureSpec) -> bool:
    """An upper bound below libvmaf's "no clamp" default: the extractor clamps real values there."""
    return f.upper is not None and f.upper < UNBOUNDED_DEFAULTS.get(f.extractor, np.inf)


def _lower_tight(f: FeatureSpec, lo_src: str) -> bool:
    """A floor set by the file, or the zero floor of an extractor whose real output reaches 0."""
    return f.lower is not None and (f.extractor in ZERO_FLOOR_EXTRACTORS or "(file)" in lo_src)


def _directions(spec: TeacherSpec, lo: np.ndarray, hi: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per feature, +1 where the teacher's score rises with it (quality direction), −1 where it falls.

    From real frames where there are any: the sign of the feature's rank
    correlation with the teacher's score over them, i.e. how the feature
    moves with quality *in real encodes* (the dense set's correlation is to
    mimic that; the SVR's partial slopes off the manifold need not: on
    ``vmaf_v0.6.1`` they fall with vif_scale0/1 on average over the box).
    Where the frames say nothing (no frames, a constant column), the sign
    of the unclipped teacher's mean rise from the lower to the upper bound
    over 256 fixed points in the box, off exact zeros (the chroma
    correction's jump is not the trend).  Deterministic.
    """
    from scipy.stats import rankdata

    d = len(lo)
    out = np.zeros(d)
    if len(real) >= 3:
        score = rankdata(spec.predict(real, clip=False))
        for j in range(d):
            col = real[:, j]
            if col.min() < col.max() and score.min() < score.max():
                out[j] = np.sign(np.corrcoef(rankdata(col), score)[0, 1])
    todo = [j for j in range(d) if out[j] == 0.0]
    if todo:
        base = lo + (hi - lo) * np.random.default_rng(0).random((256, d))
        for j in todo:
            a, b = base.copy(), base.copy()
            a[:, j] = max(lo[j], SMALLEST_LOGGED) if lo[j] <= 0.0 <= hi[j] else lo[j]
            b[:, j] = hi[j]
            out[j] = -1.0 if float(np.mean(spec.predict(b, clip=False) - spec.predict(a, clip=False))) < 0 else 1.0
    return out


def box_for(
    spec: TeacherSpec,
    frames: np.ndarray | None,
    *,
    golden: np.ndarray | None = None,
    margin: float,
    zero_share_min: float,
    zero_share_max: float = 1.0,
) -> Box:
    """The box of ``spec``'s teacher: tight extractor bounds, else the corpus (+ golden) range widened by ``margin``.

    ``frames``/``golden``: real rows in spec order (the corpus, Netflix's
    golden frames), or None.  A bound that is neither tight nor backed by
    real rows falls back to the extractor bound (its source says
    ``no corpus``); with no extractor bound either it is an error.  The box
    is checked against both sets (:func:`check_box`) before it is returned.
    """
    if not margin >= 0.0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    if not 0.0 <= zero_share_min <= zero_share_max <= 1.0:
        raise ValueError(f"need 0 <= zero_share_min <= zero_share_max <= 1, got {zero_share_min!r}, {zero_share_max!r}")
    n = len(spec.features)
    corpus = _rows(frames, n, "corpus")
    gold = _rows(golden, n, "golden")
    real = np.concatenate([corpus, gold])
    if not np.isfinite(real).all():
        i, j = np.argwhere(~np.isfinite(real))[0]
        which = "corpus" if i < len(corpus) else "golden"
        raise ValueError(f"{spec.name}: {which} frames hold a non-finite {spec.order[j]} ({float(real[i, j])!r})")
    lo, hi, sources, zero_cols, shares, typical = [], [], [], [], {}, []
    for j, f in enumerate(spec.features):
        lo_src, hi_src = _split_bounds_from(f)
        col = real[:, j]
        width = float(col.max() - col.min()) if len(col) else 0.0
        pad = margin * (width if width > 0 else max(abs(float(col.max())), 1.0)) if len(col) else 0.0
        if f.lower is not None and _lower_tight(f, lo_src):
            a, a_src = float(f.lower), lo_src
        elif len(col):
            a = float(col.min()) - pad
            a_src = f"corpus min {col.min():.6g} - margin {margin:g}"
            if f.lower is not None and a < f.lower:
                a, a_src = float(f.lower), f"{a_src}, clamped to {lo_src}"
        elif f.lower is not None:
            a, a_src = float(f.lower), f"{lo_src} (no corpus)"
        else:
            raise ValueError(f"{spec.name}: {f.name} has no extractor lower bound and no corpus to take one from")
        if f.upper is not None and _upper_tight(f):
            b, b_src = float(f.upper), hi_src
        elif len(col):
            b = float(col.max()) + pad
            b_src = f"corpus max {col.max():.6g} + margin {margin:g}"
            if f.upper is not None and b > f.upper:
                b, b_src = float(f.upper), f"{b_src}, clamped to {hi_src}"
        elif f.upper is not None:
            b, b_src = float(f.upper), f"{hi_src} (no corpus)"
        else:
            raise ValueError(f"{spec.name}: {f.name} has no extractor upper bound and no corpus to take one from")
        zero = f.extractor in ZERO_EXTRACTORS or bool((col == 0.0).any())
        if zero:
            if a > 0.0:
                raise ValueError(f"{spec.name}: {f.name} has exact zeros but its box starts at {a:g} ({a_src})")
            zero_cols.append(f.name)
            share = float((corpus[:, j] == 0.0).mean()) if len(corpus) else 0.0
            shares[f.name] = min(max(share, zero_share_min), zero_share_max)
        nonzero = corpus[:, j][corpus[:, j] != 0.0] if zero else corpus[:, j]
        typical.append(float(np.median(nonzero)) if len(nonzero) else 0.5 * (a + b))
        lo.append(a)
        hi.append(b)
        sources.append(f"lo: {a_src}; hi: {b_src}")
    lo_a, hi_a = np.array(lo), np.array(hi)
    if not (lo_a < hi_a).all():
        j = int(np.argmin(hi_a - lo_a))
        raise ValueError(f"{spec.name}: {spec.order[j]}'s box [{lo_a[j]:g}, {hi_a[j]:g}] is empty ({sources[j]})")
    box = Box(
        order=spec.order,
        lo=_frozen(lo_a),
        hi=_frozen(hi_a),
        zero_columns=tuple(zero_cols),
        zero_share=shares,
        source=tuple(sources),
        direction=_frozen(_directions(spec, lo_a, hi_a, real)),
        typical=_frozen(np.clip(typical, lo_a, hi_a)),
    )
    check_box(box, corpus, "corpus")
    check_box(box, gold, "golden")
    return box


def check_box(box: Box, frames: np.ndarray | None, name: str) -> None:
    """Raise a ValueError naming the feature, the value, the frame and the set when a real frame lies outside the box.

    A NaN is outside too (fails closed).  ``name`` is the set (``corpus``,
    ``golden``).
    """
    x = _rows(frames, len(box.order), name)
    inside = (x >= box.lo) & (x <= box.hi)  # NaN compares False
    if inside.all():
        return
    i, j = np.argwhere(~inside)[0]
    n_out = int((~inside.all(axis=1)).sum())
    raise ValueError(
        f"{name} frame {int(i)}: {box.order[j]} = {float(x[i, j])!r} lies outside the box "
        f"[{box.lo[j]:g}, {box.hi[j]:g}] ({box.source[j]}); {n_out} of {len(x)} {name} frame(s) outside"
    )


def _put_zeros(rng: np.random.Generator, x: np.ndarray, box: Box) -> np.ndarray:
    """Exact zeros in each zero column at its share; a 0 left elsewhere in one becomes the smallest logged value."""
    for j, share in box.zero_index():
        zero = rng.random(len(x)) < share
        col = x[:, j]
        col[(col == 0.0) & ~zero] = SMALLEST_LOGGED
        col[zero] = 0.0
    return x


def _reflect(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Fold values back into ``[lo, hi]`` at the walls (a triangle wave), so no mass piles up on a bound."""
    w = hi - lo
    y = np.mod(x - lo, 2.0 * w)
    y = np.where(y > w, 2.0 * w - y, y)
    return np.clip(lo + y, lo, hi)


def _uniform(rng: np.random.Generator, n: int, box: Box) -> np.ndarray:
    return box.lo + box.width * rng.random((n, len(box.order)))


def _jitter(rng: np.random.Generator, n: int, frames: np.ndarray, box: Box, sigma: float) -> np.ndarray:
    if n and not len(frames):
        raise ValueError("the jitter generator needs at least one train frame")
    x = frames[rng.integers(0, len(frames), n)] + sigma * box.width * rng.standard_normal((n, len(box.order)))
    return _reflect(x, box.lo, box.hi)


def _corner(rng: np.random.Generator, n: int, box: Box) -> np.ndarray:
    lo = box.lo.copy()
    for j, _ in box.zero_index():
        if lo[j] == 0.0:
            lo[j] = SMALLEST_LOGGED  # the edge of the non-zero branch; the zero itself comes from the share
    pick = rng.random((n, len(box.order)))
    x = _uniform(rng, n, box)
    x = np.where(pick < CORNER_P_BOUND, lo, x)
    return np.where(pick >= 1.0 - CORNER_P_BOUND, box.hi, x)


def draw_generic(
    rng: np.random.Generator,
    counts: dict[str, int],
    train_frames: np.ndarray,
    box: Box,
    *,
    jitter_sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Float64 rows ``[N, len(box.order)]`` in spec order inside the box, and each row's generator name.

    In :data:`GENERIC_GENERATORS` order, ``counts[g]`` rows each (missing:
    0).  Only *train* frames may be passed (val and test contents must not
    leak in through their neighbourhoods).  The same ``rng`` state gives the
    same rows.
    """
    unknown = sorted(set(counts) - set(GENERIC_GENERATORS))
    if unknown:
        raise ValueError(f"unknown generator(s) {unknown}; known: {list(GENERIC_GENERATORS)}")
    if any(int(c) < 0 for c in counts.values()):
        raise ValueError(f"negative row count in {counts}")
    if not jitter_sigma >= 0.0:
        raise ValueError(f"jitter_sigma must be >= 0, got {jitter_sigma!r}")
    frames = _rows(train_frames, len(box.order), "train")
    parts, names = [], []
    for g in GENERIC_GENERATORS:
        n = int(counts.get(g, 0))
        if not n:
            continue
        if g == "uniform":
            x = _uniform(rng, n, box)
        elif g == "jitter":
            x = _jitter(rng, n, frames, box, jitter_sigma)
        else:
            x = _corner(rng, n, box)
        parts.append(_put_zeros(rng, x, box))
        names.append(np.full(n, g))
    if not parts:
        return np.empty((0, len(box.order))), np.empty(0, dtype=str)
    return np.concatenate(parts), np.concatenate(names)


def order_hash(order: tuple[str, ...]) -> int:
    """A stable 32-bit hash of a feature order (CRC-32; Python's ``hash`` of a str changes per process)."""
    return zlib.crc32("\x1f".join(order).encode("utf-8"))


def dense_exponents(box: Box) -> np.ndarray:
    """Per feature, ``k`` in ``lo + width·u**k``: the median ``0.5**k`` moves half-way (in ``k``) to the corpus'."""
    rel = np.clip((box.typical - box.lo) / box.width, 0.02, 0.98)
    return np.sqrt(np.log(rel) / np.log(0.5))


def dense_generic(box: Box, count: int, seed: int) -> np.ndarray:
    """The held-out dense set of the box's teacher: ``count`` float64 rows in spec order, inside the box.

    A Gaussian copula (correlation :data:`DENSE_CORRELATION` in the quality
    direction), power-skewed marginals towards the corpus' medians
    (:func:`dense_exponents`), exact zeros at the zero share.  Its own
    stream, ``default_rng([seed, order_hash(box.order)])``: each teacher
    family gets its own set, and none of it is a training generator's.
    """
    from scipy.special import ndtr

    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = np.random.default_rng([int(seed), order_hash(box.order)])
    d = len(box.order)
    latent = rng.standard_normal((count, 1))
    own = rng.standard_normal((count, d))
    z = box.direction * (np.sqrt(DENSE_CORRELATION) * latent + np.sqrt(1.0 - DENSE_CORRELATION) * own)
    x = box.lo + box.width * ndtr(z) ** dense_exponents(box)
    return _put_zeros(rng, np.clip(x, box.lo, box.hi), box)
