"""Netflix's bootstrap VMAF (``vmaf_b_v0.6.3``) as a function: 21 component SVRs and the five statistics.

The file holds keys ``"0"`` … ``"20"``, each a ``model_dict``
(``BOOTSTRAP_LIBSVMNUSVR``) over the six v0.6.1 features.  libvmaf
(``read_json_model.c``, ``predict.c``):

* key 0 is the plain model: the **score**, with its own transform and clip;
* the collection is keys 1–20 (n = 20).  Per frame their raw scores
  (transform and clip disabled) give **bagging** = their mean (summed in key
  order), **stddev** = population SD (``sqrt(Σ (s − m)² / n)``), and
  **lo/hi** = percentiles 2.5/97.5 of the sorted raw scores at index
  ``p·(n−1)/100``, linearly interpolated
  (``s[l]·(r − p) + s[r]·(p − l)``);
* bagging, lo and hi then go through key 1's transform (only where enabled:
  off in this file) and clip; stddev is scaled by
  ``(tc(m + 0.01) − tc(m − 0.01)) / 0.02`` with ``tc`` = transform then clip
  (so it is 0 once the raw mean is past 100.01);
* a clip's values are the mean of the frame values, per statistic.

:meth:`BootstrapTeacher.components` gives the ``[N, 21]`` raw component
scores (what a student's heads learn); :func:`statistics_from_components`
turns any such matrix into the five statistics, the same way for the
teacher and for a student.  Every step is an exactly rounded elementwise
operation in a fixed order (``common.exactmath`` inside the SVRs), so the
bits do not depend on the CPU.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..common import exactmath
from .spec import FeatureSpec, filter_safe_path, spec_from_teacher
from .svr import _BLOCK, SvrTeacher, TeacherModelError, parse_model

#: The statistics libvmaf reports for a bootstrap model, in this order (the model's name + suffix in its log).
STATISTICS: tuple[str, ...] = ("score", "bagging", "stddev", "ci_p95_lo", "ci_p95_hi")
#: libvmaf's log suffix of each statistic (the score is logged under the model's own name).
LOG_SUFFIX = {
    "score": "",
    "bagging": "_bagging",
    "stddev": "_stddev",
    "ci_p95_lo": "_ci_p95_lo",
    "ci_p95_hi": "_ci_p95_hi",
}
_DELTA = 0.01  # predict.c's step for the stddev's slope through transform and clip


@dataclass(frozen=True)
class BootstrapTeacher:
    """A libvmaf bootstrap model: component 0 the plain model, components 1..n the collection."""

    name: str
    source: str
    path: Path
    models: tuple[SvrTeacher, ...]  # [0] key "0", [1:] keys "1".."20"
    docs: tuple[dict[str, Any], ...]  # each key's JSON entry, as the file has it

    @property
    def n_components(self) -> int:
        return len(self.models)

    @property
    def features(self) -> tuple[FeatureSpec, ...]:
        """The features the components read (v0.6.1's canonical-6, with their libvmaf keys), from key 0."""
        return spec_from_teacher(self.models[0], self.path).features

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.features)

    @property
    def input_order(self) -> tuple[str, ...]:
        return self.models[0].input_order

    def components(self, rows: np.ndarray, *, order: tuple[str, ...] | None = None) -> np.ndarray:
        """``[N, 21]`` raw component scores (transform and clip off), column k = key ``str(k)``.

        The same bits as each component's own :meth:`SvrTeacher.predict`
        (``tests/teacher/test_bootstrap.py`` holds them equal), ~8x faster:
        the 21 SVRs share the normalisation and gamma and draw their 4,435
        support vectors from only 230 distinct ones, so each kernel value
        ``exp(−γ‖x − sv‖²)`` is computed once per distinct vector (an
        elementwise function of one row and one vector: the same bits
        wherever it is computed) and gathered per component, whose products
        and pairwise sum then run exactly as in ``predict``.
        """
        plan = self._shared_kernel_plan()
        if plan is None:
            return np.stack([m.predict(rows, order=order, clip=False, transform=False) for m in self.models], axis=1)
        unique, index = plan
        first = self.models[0]
        x = np.asarray(rows, dtype=np.float64)
        cols = first.column_order(first.input_order if order is None else order)
        if x.ndim != 2 or x.shape[1] != len(cols):
            raise ValueError(f"rows must be [N, {len(cols)}], got shape {x.shape}")
        x = x[:, cols]
        if first.norm_type == "linear_rescale":
            x = x * first.slopes[1:] + first.intercepts[1:]
        out = np.empty((len(x), self.n_components), dtype=np.float64)
        for start in range(0, len(x), _BLOCK):
            xb = x[start : start + _BLOCK]
            shared = exactmath.exp(-first.gamma * exactmath.squared_distances(xb, unique))
            for k, m in enumerate(self.models):
                kernel = shared[:, index[k]] * m.coef[None, :]
                out[start : start + len(xb), k] = exactmath.sum_columns(kernel) - m.rho
        if first.norm_type == "linear_rescale":
            out = (out - first.intercepts[0]) / first.slopes[0]
        return out

    def _shared_kernel_plan(self) -> tuple[np.ndarray, list[np.ndarray]] | None:
        """(distinct support vectors, per component the index of each of its vectors), or None when the
        components do not share gamma, normalisation and features (then each is evaluated on its own)."""
        first = self.models[0]
        same = all(
            m.gamma == first.gamma
            and m.norm_type == first.norm_type
            and m.features == first.features
            and m.chroma_correction is None
            and np.array_equal(m.slopes, first.slopes)
            and np.array_equal(m.intercepts, first.intercepts)
            for m in self.models
        )
        if not same:
            return None
        allsv = np.concatenate([m.support_vectors for m in self.models])
        unique, inverse = np.unique(allsv, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).reshape(-1)
        bounds = np.cumsum([0] + [m.n_support_vectors for m in self.models])
        return unique, [inverse[bounds[k] : bounds[k + 1]] for k in range(len(self.models))]

    def statistics(self, rows: np.ndarray, *, order: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """libvmaf's five per-frame values: ``score, bagging, stddev, ci_p95_lo, ci_p95_hi``."""
        return statistics_from_components(self, self.components(rows, order=order))

    def component_documents(self) -> list[dict[str, Any]]:
        """Each key as a stand-alone libvmaf model (``model_type`` LIBSVMNUSVR): FFmpeg loads these by ``path=``."""
        out = []
        for doc in self.docs:
            d = copy.deepcopy(doc)
            d["model_dict"]["model_type"] = "LIBSVMNUSVR"
            out.append(d)
        return out

    def write_components(self, folder: Path) -> list[Path]:
        """Write :meth:`component_documents` as ``<name>_<key>.json`` into ``folder``; the paths, key order."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for k, doc in enumerate(self.component_documents()):
            p = folder / f"{self.name}_{k:02d}.json"
            p.write_text(json.dumps(doc))
            paths.append(p)
        return paths

    def model_options(self, folder: Path) -> str:
        """libvmaf's ``model=`` value for all components: writes them into ``folder``, ``name=<name>_<kk>``.

        FFmpeg cannot load the bootstrap file itself; each key loads as a
        plain model.  libvmaf computes the six features once for all 21.
        """
        self.write_components(folder)
        return self.options_in(folder)

    def options_in(self, folder: Path) -> str:
        """The ``model=`` value for components already written into ``folder`` (:meth:`write_components`)."""
        names = [f"{self.name}_{k:02d}" for k in range(self.n_components)]
        return "|".join(f"path={filter_safe_path(folder / f'{n}.json')}\\:name={n}" for n in names)


def _apply_tc(model: SvrTeacher, v: np.ndarray) -> np.ndarray:
    """predict.c's ``transform`` (only when the model enables it) then ``clip``."""
    out = v
    if model.transform is not None and model.transform.enabled:
        out = model.transform.apply(out)
    if model.score_clip is not None:
        out = np.clip(out, model.score_clip[0], model.score_clip[1])
    return out


def _percentile(sorted_scores: np.ndarray, perc: float) -> np.ndarray:
    n = sorted_scores.shape[1]
    p = perc * (n - 1) / 100.0
    lo, hi = int(np.floor(p)), int(np.ceil(p))
    if lo == hi:
        return sorted_scores[:, lo].copy()
    return sorted_scores[:, lo] * (hi - p) + sorted_scores[:, hi] * (p - lo)


def raw_bagging(raw: np.ndarray) -> np.ndarray:
    """The collection's raw mean per row (components 1..n summed in key order, like the C loop, then ÷ n):
    bagging before transform and clip."""
    coll = np.asarray(raw, dtype=np.float64)[:, 1:]
    total = np.zeros(len(coll))
    for i in range(coll.shape[1]):
        total = total + coll[:, i]
    return total / coll.shape[1]


def statistics_from_components(teacher: BootstrapTeacher, raw: np.ndarray) -> dict[str, np.ndarray]:
    """The five statistics from ``[N, 1 + n]`` raw component scores, in predict.c's order of operations."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != teacher.n_components:
        raise ValueError(f"components must be [N, {teacher.n_components}], got shape {raw.shape}")
    coll = raw[:, 1:]
    n = coll.shape[1]
    mean = raw_bagging(raw)
    ssd = np.zeros(len(raw))
    for i in range(n):
        d = coll[:, i] - mean
        ssd = ssd + d * d
    stddev = np.sqrt(ssd / n)
    ordered = np.sort(coll, axis=1)
    lo, hi = _percentile(ordered, 2.5), _percentile(ordered, 97.5)
    first = teacher.models[1]
    slope = (_apply_tc(first, mean + _DELTA) - _apply_tc(first, mean - _DELTA)) / (2.0 * _DELTA)
    return {
        "score": _apply_tc(teacher.models[0], raw[:, 0]),
        "bagging": _apply_tc(first, mean),
        "stddev": stddev * slope,
        "ci_p95_lo": _apply_tc(first, lo),
        "ci_p95_hi": _apply_tc(first, hi),
    }


def statistics_doc(teacher: BootstrapTeacher) -> dict[str, Any]:
    """How each statistic derives from the heads, for a sidecar (what :func:`statistics_from_components` does).

    A consumer that is not tinyvmaf (libvmaf's ONNX path, a script) can
    rebuild libvmaf's five values from the graph's ``heads`` with this alone.
    """
    n = teacher.n_components - 1
    m1, m0 = teacher.models[1], teacher.models[0]

    def pct(p: float) -> str:
        x = p * (n - 1) / 100.0
        lo, hi = int(np.floor(x)), int(np.ceil(x))
        if lo == hi:
            return f"s[{lo}]"
        return f"{hi - x:.6g}*s[{lo}] + {x - lo:.6g}*s[{hi}]"

    def tc(m: SvrTeacher) -> dict[str, Any]:
        t = m.transform
        return {
            "transform": None if t is None or not t.enabled else "enabled (see the model file)",
            "score_clip": None if m.score_clip is None else list(m.score_clip),
        }

    return {
        "heads": f"heads[:, k] = the raw score (transform and clip off) of the model file's key k, k = 0..{n}",
        "collection": f"heads[:, 1:{n + 1}] (n = {n}); key 0 is the plain model",
        "score": "tc0(heads[:, 0])",
        "bagging": "tc1(m), m = the mean of the collection (summed in key order, / n)",
        "stddev": "sqrt(sum((c - m)^2) / n) * (tc1(m + 0.01) - tc1(m - 0.01)) / 0.02",
        "ci_p95_lo": f"tc1({pct(2.5)}), s = the collection sorted ascending",
        "ci_p95_hi": f"tc1({pct(97.5)})",
        "tc0": tc(m0),
        "tc1": tc(m1),
        "pooled": "a clip's value of each statistic is the mean of its frame values",
        "source": "libvmaf/src/predict.c vmaf_bootstrap_predict_score_at_index",
    }


def parse_bootstrap(doc: dict[str, Any], *, name: str, source: str, path: Path) -> BootstrapTeacher:
    """A :class:`BootstrapTeacher` from a parsed bootstrap JSON document (keys "0".."n")."""
    keys = sorted((k for k in doc if k.isdigit()), key=int)
    if not keys or keys != [str(i) for i in range(len(keys))] or len(keys) < 3:
        raise TeacherModelError(f"{source}: a bootstrap model needs keys '0'..'n' (n >= 2), got {sorted(doc)}")
    models, docs = [], []
    for k in keys:
        entry = doc[k]
        md = entry.get("model_dict") if isinstance(entry, dict) else None
        if not isinstance(md, dict):
            raise TeacherModelError(f"{source}: key {k!r} has no 'model_dict'")
        if md.get("model_type") not in ("BOOTSTRAP_LIBSVMNUSVR", "LIBSVMNUSVR"):
            raise TeacherModelError(
                f"{source}: key {k!r} model_type {md.get('model_type')!r} is not a bootstrap nu-SVR"
            )
        plain = {**entry, "model_dict": {**md, "model_type": "LIBSVMNUSVR"}}
        models.append(parse_model(plain, name=f"{name}_{int(k):02d}", source=f"{source}[{k}]"))
        docs.append(entry)
    if len({m.features for m in models}) != 1:
        raise TeacherModelError(f"{source}: the components read different features")
    return BootstrapTeacher(name=name, source=source, path=path, models=tuple(models), docs=tuple(docs))


@lru_cache(maxsize=4)
def load_bootstrap(model: str | Path = "vmaf_b_v0.6.3") -> BootstrapTeacher:
    """A packaged bootstrap model by name, or a bootstrap JSON file by path."""
    path = Path(model)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such model file")
        name, source = path.stem, str(path)
    else:
        name = str(model)
        path = Path(str(resources.files(__package__).joinpath("models", f"{name}.json")))
        if not path.is_file():
            raise TeacherModelError(f"unknown bootstrap model {name!r}")
        source = f"tinyvmaf/teacher/models/{name}.json"
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TeacherModelError(f"{source}: not JSON ({exc})") from None
    return parse_bootstrap(doc, name=name, source=source, path=path)
