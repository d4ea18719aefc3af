"""A libvmaf JSON model evaluated in float64 NumPy: the teacher as a function of its features.

libvmaf scores a frame with a libsvm nu-SVR (``predict.c``): each feature
is rescaled linearly (``slope · value + intercept``, the model's
``slopes[1:]``/``intercepts[1:]``), the SVR sums RBF kernels over its
support vectors minus ``rho``, the result is mapped back to the score scale
(``(s − intercepts[0]) / slopes[0]``), passed through the score transform
only where the model enables it (``score_transform.enabled``; the
polynomial ``p0 + p1·s + p2·s²``, then ``out_gte_in``/``out_lte_in``), and
clipped to ``score_clip``.  This module does exactly that, in float64, on
any batch of feature vectors — a label costs microseconds, so the student
can be taught the teacher everywhere, not only on frames someone encoded.

The model file lists its features in its own order (``feature_names``,
alphabetical: ``adm2, motion2, vif_scale0..3``); callers pass canonical-6
rows (:data:`tinyvmaf.contract.FEATURES`) and the columns are mapped by
name, never by position.

``vmaf_v0.6.1neg.json`` carries the very SVR of ``vmaf_v0.6.1`` (the same
support vectors, coefficients, rho, gamma, slopes and intercepts); NEG
differs only in how libvmaf *extracts* the features
(``adm_enhn_gain_limit``/``vif_enhn_gain_limit`` = 1, in
``feature_opts_dicts``).  So one student serves both: fed NEG-extracted
features, it approximates NEG.  :func:`same_svr` checks the claim on the
files themselves.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..common import exactmath
from ..contract import FEATURES

#: Rows scored per block: the ``[rows, n_sv]`` float64 temporaries (1.7 MB for 211 SVs) stay in cache.
_BLOCK = 1024
_NAME_RE = re.compile(r"_feature_(?P<name>.+)_score$")


class TeacherModelError(ValueError):
    """A model file cannot be read as a libvmaf nu-SVR model; the message names the file and key."""


@dataclass(frozen=True)
class ScoreTransform:
    """libvmaf's optional score transform (a polynomial, then one-sided bounds against the input)."""

    enabled: bool
    p0: float | None = None
    p1: float | None = None
    p2: float | None = None
    out_gte_in: bool = False
    out_lte_in: bool = False

    def apply(self, score: np.ndarray) -> np.ndarray:
        out = np.zeros_like(score)
        if self.p0 is not None:
            out = out + self.p0
        if self.p1 is not None:
            out = out + self.p1 * score
        if self.p2 is not None:
            out = out + self.p2 * score * score
        if self.out_lte_in:
            out = np.minimum(out, score)
        if self.out_gte_in:
            out = np.maximum(out, score)
        return out


@dataclass(frozen=True)
class SvrTeacher:
    """One libvmaf nu-SVR model: ``predict(rows)`` is libvmaf's per-frame score of those feature rows."""

    name: str
    source: str
    features: tuple[str, ...]  # the model's own order (short names: adm2, motion2, ...)
    slopes: np.ndarray  # [1 + n_features]: [0] the score's, [1:] the features'
    intercepts: np.ndarray
    norm_type: str
    gamma: float
    rho: float
    coef: np.ndarray  # [n_sv]
    support_vectors: np.ndarray  # [n_sv, n_features], in the model's feature order
    score_clip: tuple[float, float] | None
    transform: ScoreTransform | None
    feature_opts: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    #: ``chroma_correction_parameter`` (v1.0.16): a ``speed_chroma`` of exactly 0 becomes ``c·(1 − adm3)``.
    chroma_correction: float | None = None
    #: libvmaf's feature names as the file writes them (``VMAF_integer_feature_adm3_score``), model order.
    feature_names: tuple[str, ...] = ()

    @property
    def n_support_vectors(self) -> int:
        return int(self.coef.shape[0])

    @property
    def input_order(self) -> tuple[str, ...]:
        """The column order callers pass by default: canonical-6 for the v0.6.1 family, else the file's own."""
        return FEATURES if sorted(self.features) == sorted(FEATURES) else self.features

    def column_order(self, order: tuple[str, ...] | None = None) -> list[int]:
        """Indices into ``order`` (default :attr:`input_order`) that give the model's feature order (by name)."""
        order = self.input_order if order is None else order
        missing = [f for f in self.features if f not in order]
        if missing:
            raise TeacherModelError(f"{self.source}: model needs feature(s) {missing}, the rows have {list(order)}")
        return [order.index(f) for f in self.features]

    def predict(
        self,
        rows: np.ndarray,
        *,
        order: tuple[str, ...] | None = None,
        clip: bool = True,
        transform: bool | None = None,
    ) -> np.ndarray:
        """Per-row scores for feature ``rows`` ``[N, len(order)]`` (default :attr:`input_order`), float64.

        For the v0.6.1 family the default order is canonical-6; for any
        other model it is the file's own (v1.0.16: ``cambi,
        speed_chroma_uv, adm3, motion3``).

        ``clip=False`` skips ``score_clip`` (the smooth function under the
        clip: what a student can learn without a kink at 0 and 100).
        ``transform=None`` follows the model (libvmaf applies it only when
        the model enables it); True/False force it.
        """
        order = self.input_order if order is None else order
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(order):
            raise ValueError(f"rows must be [N, {len(order)}], got shape {x.shape}")
        x = x[:, self.column_order(order)]
        if self.norm_type == "linear_rescale":
            x = x * self.slopes[1:] + self.intercepts[1:]
        elif self.norm_type != "none":
            raise TeacherModelError(f"{self.source}: norm_type {self.norm_type!r} is not supported")
        if self.chroma_correction is not None:
            x = self._correct_chroma(x)
        out = np.empty(len(x), dtype=np.float64)
        sv = self.support_vectors
        for start in range(0, len(x), _BLOCK):
            xb = x[start : start + _BLOCK]
            # Every step an exactly rounded elementwise op in a fixed order (common.exactmath): the
            # labels are shared by hash, so they must not depend on the CPU's BLAS kernel or exp.
            kernel = exactmath.exp(-self.gamma * exactmath.squared_distances(xb, sv))
            kernel *= self.coef[None, :]
            out[start : start + len(xb)] = exactmath.sum_columns(kernel) - self.rho
        if self.norm_type == "linear_rescale":
            out = (out - self.intercepts[0]) / self.slopes[0]
        apply_transform = self.transform is not None and (
            self.transform.enabled if transform is None else bool(transform)
        )
        if apply_transform:
            assert self.transform is not None
            out = self.transform.apply(out)
        if clip and self.score_clip is not None:
            out = np.clip(out, self.score_clip[0], self.score_clip[1])
        return out

    def _guide_columns(self) -> tuple[int, int]:
        """(guiding adm3, guided speed_chroma) columns, found by substring like libvmaf's ``strstr``."""
        names = self.feature_names or self.features
        found = []
        for sub in ("adm3", "speed_chroma"):
            hits = [i for i, n in enumerate(names) if sub in n]
            if len(hits) != 1:
                raise TeacherModelError(
                    f"{self.source}: chroma correction needs exactly one feature named like {sub!r}, got {hits}"
                )
            found.append(hits[0])
        return found[0], found[1]

    def _correct_chroma(self, xn: np.ndarray) -> np.ndarray:
        """libvmaf's ``post_process_feature_from_another`` on normalised rows, step for step.

        Both features are denormalised back (``(v − intercept)/slope``), the
        guided one compared with exactly 0.0, and where it is 0 it becomes
        ``(−c·adm3) + c``, normalised again.  Done on the normalised values,
        as libvmaf does, so the bits match (the round trip can move adm3 by
        an ULP).
        """
        c = float(self.chroma_correction)  # type: ignore[arg-type]
        if c == 0.0:  # libvmaf skips the correction for a zero parameter
            return xn
        gi, si = self._guide_columns()
        linear = self.norm_type == "linear_rescale"
        sg, ig = (self.slopes[1 + gi], self.intercepts[1 + gi]) if linear else (1.0, 0.0)
        ss, is_ = (self.slopes[1 + si], self.intercepts[1 + si]) if linear else (1.0, 0.0)
        guiding = (xn[:, gi] - ig) / sg if linear else xn[:, gi]
        guided = (xn[:, si] - is_) / ss if linear else xn[:, si]
        hit = guided == 0.0
        if not hit.any():
            return xn
        corrected = (-c * guiding[hit]) + c
        out = xn.copy()
        out[hit, si] = ss * corrected + is_ if linear else corrected
        return out

    def svr_signature(self) -> tuple[bytes, ...]:
        """The arrays and scalars that define the SVR itself (not the feature options)."""
        parts = (self.slopes, self.intercepts, self.coef, self.support_vectors, np.array([self.gamma, self.rho]))
        return (
            self.norm_type.encode(),
            repr(self.features).encode(),
            *(np.ascontiguousarray(p).tobytes() for p in parts),
        )


def short_feature_name(name: str) -> str:
    """``VMAF_integer_feature_adm2_score`` → ``adm2`` (libvmaf's feature naming)."""
    m = _NAME_RE.search(name)
    return m["name"] if m else name


def _parse_libsvm(text: str, n_features: int, source: str) -> tuple[float, float, np.ndarray, np.ndarray]:
    """``gamma, rho, coef[n_sv], sv[n_sv, n_features]`` from a libsvm ``nu_svr``/``rbf`` model string."""
    header: dict[str, str] = {}
    lines = text.splitlines()
    try:
        sv_at = lines.index("SV")
    except ValueError:
        raise TeacherModelError(f"{source}: model string has no 'SV' section") from None
    for line in lines[:sv_at]:
        key, _, value = line.partition(" ")
        header[key] = value.strip()
    if header.get("svm_type") != "nu_svr" or header.get("kernel_type") != "rbf":
        raise TeacherModelError(
            f"{source}: only nu_svr with an rbf kernel is supported, got svm_type={header.get('svm_type')!r} "
            f"kernel_type={header.get('kernel_type')!r}"
        )
    try:
        gamma, rho, total = float(header["gamma"]), float(header["rho"]), int(header["total_sv"])
    except (KeyError, ValueError) as exc:
        raise TeacherModelError(f"{source}: model header lacks a valid {exc}") from None
    coef = np.zeros(total, dtype=np.float64)
    sv = np.zeros((total, n_features), dtype=np.float64)  # absent indices are 0 (libsvm's sparse form)
    body = [ln for ln in lines[sv_at + 1 :] if ln.strip()]
    if len(body) != total:
        raise TeacherModelError(f"{source}: total_sv {total} but {len(body)} support vector line(s)")
    for i, line in enumerate(body):
        first, *pairs = line.split()
        coef[i] = float(first)
        for pair in pairs:
            idx, _, val = pair.partition(":")
            j = int(idx) - 1
            if not 0 <= j < n_features:
                raise TeacherModelError(f"{source}: support vector {i} has index {idx} outside 1..{n_features}")
            sv[i, j] = float(val)
    return gamma, rho, coef, sv


def parse_model(doc: dict[str, Any], *, name: str, source: str) -> SvrTeacher:
    """A :class:`SvrTeacher` from a parsed libvmaf JSON model document."""
    md = doc.get("model_dict")
    if not isinstance(md, dict):
        raise TeacherModelError(f"{source}: no 'model_dict' (a bootstrap or non-libvmaf model?)")
    if md.get("model_type") != "LIBSVMNUSVR":
        raise TeacherModelError(f"{source}: model_type {md.get('model_type')!r} is not LIBSVMNUSVR")
    try:
        names = tuple(short_feature_name(n) for n in md["feature_names"])
        slopes = np.asarray(md["slopes"], dtype=np.float64)
        intercepts = np.asarray(md["intercepts"], dtype=np.float64)
        model = md["model"]
    except KeyError as exc:
        raise TeacherModelError(f"{source}: model_dict lacks {exc}") from None
    n = len(names)
    norm_type = str(md.get("norm_type", "none"))
    if norm_type == "linear_rescale" and (len(slopes) != n + 1 or len(intercepts) != n + 1):
        raise TeacherModelError(
            f"{source}: {n} features need {n + 1} slopes and intercepts, got {len(slopes)} and {len(intercepts)}"
        )
    gamma, rho, coef, sv = _parse_libsvm(model, n, source)
    clip = md.get("score_clip")
    st = md.get("score_transform")
    transform = None
    if isinstance(st, dict):
        transform = ScoreTransform(
            enabled=_truthy(st.get("enabled", False)),
            p0=_opt_float(st.get("p0")),
            p1=_opt_float(st.get("p1")),
            p2=_opt_float(st.get("p2")),
            out_gte_in=_truthy(st.get("out_gte_in", False)),
            out_lte_in=_truthy(st.get("out_lte_in", False)),
        )
    return SvrTeacher(
        name=name,
        source=source,
        features=names,
        slopes=slopes,
        intercepts=intercepts,
        norm_type=norm_type,
        gamma=gamma,
        rho=rho,
        coef=coef,
        support_vectors=sv,
        score_clip=(float(clip[0]), float(clip[1])) if clip else None,
        transform=transform,
        feature_opts=tuple(dict(d) for d in md.get("feature_opts_dicts") or ()),
        chroma_correction=_opt_float(md.get("chroma_correction_parameter")),
        feature_names=tuple(str(n) for n in md["feature_names"]),
    )


def _truthy(v: Any) -> bool:
    """libvmaf's JSON writes booleans as true or as the string "true"."""
    return v is True or (isinstance(v, str) and v.strip().lower() == "true")


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def packaged_models() -> list[str]:
    """Names of the libvmaf model files shipped with the package (``teacher/models/*.json``)."""
    folder = resources.files(__package__).joinpath("models")
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=16)
def load_teacher(model: str | Path) -> SvrTeacher:
    """A packaged model by name (``vmaf_v0.6.1``), or any libvmaf JSON model file by path."""
    path = Path(model)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such model file")
        text, name, source = path.read_text(), path.stem, str(path)
    else:
        name = str(model)
        res = resources.files(__package__).joinpath("models", f"{name}.json")
        if not res.is_file():
            raise TeacherModelError(f"unknown teacher model {name!r}; packaged: {packaged_models()} (or pass a path)")
        text, source = res.read_text(), f"tinyvmaf/teacher/models/{name}.json"
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TeacherModelError(f"{source}: not JSON ({exc})") from None
    return parse_model(doc, name=name, source=source)


def same_svr(a: SvrTeacher, b: SvrTeacher) -> bool:
    """True when two models share one SVR (same features, rescaling, kernel, vectors and coefficients)."""
    return a.svr_signature() == b.svr_signature() and a.score_clip == b.score_clip
