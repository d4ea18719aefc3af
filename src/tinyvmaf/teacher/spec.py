"""The teacher spec: everything the pipeline needs to know about a teacher, read from its libvmaf model file.

A libvmaf JSON model names its features (``VMAF_integer_feature_adm3_score``)
and, per feature, the extractor options it was trained with
(``feature_opts_dicts``: ``adm_norm_view_dist``, ``speed_prescale``, ...).
libvmaf logs each feature under a key derived from those options
(``vmaf_feature_name_from_options`` in ``libvmaf/src/feature/feature_name.c``):
the feature's alias (``integer_adm3``), then ``_<alias>_<value>`` for each
option that differs from the extractor's default, in the extractor's option
table order (doubles ``%g``, ints ``%d``, booleans as the bare alias when
true, strings as written).  So ``vmaf_v1.0.16_5d0h`` reads
``integer_adm3_csf_2_dlmw_0.7_egl_1_min_0.5_nw_0.02_nvd_5`` where
``vmaf_v1.0.16_3d0h`` reads the same name without ``_nvd_5``: each variant
has its own feature columns.

The option tables below hold only the options that the carried model files
use, each checked against the per-frame keys that the project's FFmpeg
(imageio-ffmpeg's libvmaf) logs for every carried model
(``tests/teacher/test_spec.py``).  An option outside them is an error naming
it, never a guessed key.

:func:`load_spec` gives a :class:`TeacherSpec`: the features in the
caller's column order with their libvmaf keys, the extractor bounds, the
normalisation, transform, clip and chroma correction, and the libvmaf model
option string (``path=`` the carried file, checked safe for FFmpeg's filter
syntax).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .svr import ScoreTransform, SvrTeacher, TeacherModelError, load_teacher

if TYPE_CHECKING:
    from .bootstrap import BootstrapTeacher

#: ``VMAF_integer_feature_adm2_score`` → extractor family and libvmaf's short key (``alias.c``).
_FEATURE_RE = re.compile(
    r"^(?:(?P<int>VMAF_integer_feature_)|(?P<cambi>Cambi_feature_)|(?P<speed>Speed_chroma_feature_))"
    r"(?P<name>[a-z0-9_]+)_score$"
)

#: Unknown default: the option is written into the key whenever the file sets it (what FFmpeg's log shows).
_ALWAYS = object()


@dataclass(frozen=True)
class _Opt:
    name: str
    alias: str | None  # None: tinyvmaf knows no alias; only the default value is accepted
    kind: type
    default: Any


#: Per extractor, in libvmaf's option-table order (the order the key suffixes appear in FFmpeg's log).
_OPTIONS: dict[str, tuple[_Opt, ...]] = {
    "integer_adm": (
        _Opt("adm_csf_mode", "csf", int, 0),
        _Opt("adm_dlm_weight", "dlmw", float, 0.5),
        _Opt("adm_enhn_gain_limit", "egl", float, 100.0),
        _Opt("adm_min_val", "min", float, 0.0),
        _Opt("adm_noise_weight", "nw", float, 0.03125),
        _Opt("adm_norm_view_dist", "nvd", float, 3.0),
        _Opt("adm_ref_display_height", "rdh", int, 1080),
    ),
    "integer_vif": (_Opt("vif_enhn_gain_limit", "egl", float, 100.0),),
    "integer_motion": (
        _Opt("motion_five_frame_window", "mffw", bool, False),
        _Opt("motion_max_val", "mmxv", float, 10000.0),
        _Opt("motion_moving_average", "mma", bool, False),
    ),
    "speed_chroma": (
        _Opt("speed_kernelscale", None, float, 1.0),
        _Opt("speed_max_val", "mxv", float, 1000.0),
        _Opt("speed_nn_floor", "nnf", float, 0.0),
        _Opt("speed_prescale", "ps", float, 1.0),
        _Opt("speed_prescale_method", "psm", str, _ALWAYS),
        _Opt("speed_sigma_nn", "snn", float, _ALWAYS),
        _Opt("speed_weight_var_mode", "wvm", int, _ALWAYS),
    ),
    "cambi": (
        _Opt("cambi_high_res_speedup", "hrs", int, 0),
        _Opt("cambi_max_val", "cmxv", float, 1000.0),
        _Opt("cambi_vis_lum_threshold", "vlt", float, 0.0),
    ),
}

#: libvmaf's defaults for the options that bound a feature (used where a file does not set them).
DEFAULT_ADM_ENHN_GAIN_LIMIT = 100.0
DEFAULT_VIF_ENHN_GAIN_LIMIT = 100.0
DEFAULT_ADM_MIN_VAL = 0.0
DEFAULT_CAMBI_MAX_VAL = 1000.0
DEFAULT_SPEED_MAX_VAL = 1000.0
DEFAULT_MOTION_MAX_VAL = 10000.0

#: libvmaf logs features and scores with six decimals: each logged value is within this of its own.
LOG_STEP = 5e-7

#: Characters a model path may hold in a filtergraph ``model='path=...'`` option without escaping.
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+-]+$")


class UnsafeFilterPath(ValueError):
    """A model file path that cannot be put into FFmpeg's filter syntax safely; the message names it."""


@dataclass(frozen=True)
class FeatureSpec:
    """One teacher feature: its short name, libvmaf's name and per-frame log key, options and bounds."""

    name: str  # short: adm3, speed_chroma_uv, adm2, motion2, ...
    libvmaf_name: str  # as the model file writes it: VMAF_integer_feature_adm3_score
    key: str  # libvmaf's per-frame key: integer_adm3_csf_2_dlmw_0.7_egl_1_min_0.5_nw_0.02
    extractor: str  # integer_adm, integer_vif, integer_motion, speed_chroma, cambi
    options: tuple[tuple[str, Any], ...]  # the file's feature_opts_dict, as written
    lower: float | None  # the extractor's bounds on the logged value (None: none that an option sets)
    upper: float | None
    bounds_from: str  # where the bounds come from (option names, "file" or "default")


@dataclass(frozen=True)
class TeacherSpec:
    """A teacher as the pipeline sees it, read from one libvmaf JSON model file the project carries."""

    name: str
    path: Path  # the carried model file
    features: tuple[FeatureSpec, ...]  # in the column order rows are passed in
    teacher: SvrTeacher  # the model whose score libvmaf reports (a bootstrap file's key "0")
    bootstrap: BootstrapTeacher | None = None  # a bootstrap file: all its components (key "0" first)

    @property
    def heads(self) -> tuple[str, ...]:
        """What a student of this teacher outputs: ``("score",)``, or one raw component per bootstrap key
        (``head_00`` … ``head_20``) from which the statistics derive as libvmaf derives them."""
        if self.bootstrap is None:
            return ("score",)
        return tuple(f"head_{k:02d}" for k in range(self.bootstrap.n_components))

    @property
    def log_columns(self) -> tuple[str, ...]:
        """The score columns libvmaf logs for this teacher: its name, or per bootstrap component
        ``<name>_<kk>`` (FFmpeg loads each key as a plain model, :meth:`model_option`)."""
        if self.bootstrap is None:
            return (self.name,)
        return tuple(f"{self.name}_{k:02d}" for k in range(self.bootstrap.n_components))

    def components(self, rows: Any) -> Any:
        """``[N, heads]`` raw targets in :attr:`order`: the bootstrap's unclipped component scores, or the
        score (``[N, 1]``, clipped as libvmaf reports it) of a plain teacher."""
        if self.bootstrap is None:
            return self.predict(rows)[:, None]
        return self.bootstrap.components(rows, order=self.order)

    def logged(self, rows: Any) -> Any:
        """``[N, len(log_columns)]``: each logged score column as the callable teacher computes it (a
        bootstrap's components clipped as libvmaf logs them; key 0's is the score)."""
        import numpy as np

        if self.bootstrap is None:
            return self.predict(rows)[:, None]
        raw = self.bootstrap.components(rows, order=self.order)
        clips = [m.score_clip or (-np.inf, np.inf) for m in self.bootstrap.models]
        return np.clip(raw, [c[0] for c in clips], [c[1] for c in clips])

    @property
    def order(self) -> tuple[str, ...]:
        """Short names in column order (canonical-6 for the v0.6.1 family)."""
        return tuple(f.name for f in self.features)

    @property
    def keys(self) -> tuple[str, ...]:
        """libvmaf's per-frame log keys, in column order."""
        return tuple(f.key for f in self.features)

    @property
    def norm_type(self) -> str:
        return self.teacher.norm_type

    @property
    def normalisation(self) -> dict[str, tuple[float, float]]:
        """``{feature: (slope, intercept)}``; the SVR sees ``slope·value + intercept``."""
        t = self.teacher
        return {n: (float(t.slopes[1 + i]), float(t.intercepts[1 + i])) for i, n in enumerate(t.features)}

    @property
    def score_rescale(self) -> tuple[float, float]:
        """``(slope, intercept)`` of the score: libvmaf denormalises with ``(svr − intercept)/slope``."""
        return float(self.teacher.slopes[0]), float(self.teacher.intercepts[0])

    @property
    def transform(self) -> ScoreTransform | None:
        """The score transform; libvmaf applies it only when ``transform.enabled``."""
        return self.teacher.transform

    @property
    def transform_enabled(self) -> bool:
        return self.teacher.transform is not None and self.teacher.transform.enabled

    @property
    def clip(self) -> tuple[float, float] | None:
        """The score clip from the file (``[0, 110]`` for ``vmaf_v1.0.16_3d0h_2160``)."""
        return self.teacher.score_clip

    @property
    def chroma_correction(self) -> float | None:
        """``chroma_correction_parameter``: a ``speed_chroma_uv`` of exactly 0 becomes ``c·(1 − adm3)``."""
        return self.teacher.chroma_correction

    def feature(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"{self.name}: no feature {name!r}; has {list(self.order)}")

    def predict(self, rows: Any, **kw: Any) -> Any:
        """The teacher on rows in :attr:`order` (see :meth:`SvrTeacher.predict`)."""
        return self.teacher.predict(rows, order=self.order, **kw)

    def rounding_bound(self, rows: Any, *, step: float = LOG_STEP, score_rounding: float = LOG_STEP) -> Any:
        """Per row, how far libvmaf's score may sit from the teacher on six-decimal logged features.

        See :func:`rounding_bound`; a ``speed_chroma`` logged as exactly 0
        is held at 0.
        """
        return rounding_bound(self.predict, rows, hold_zero=self.hold_zero, step=step, score_rounding=score_rounding)

    def logged_rounding_bound(self, rows: Any) -> Any:
        """:meth:`rounding_bound` of each logged column at once (``[N, len(log_columns)]``, :meth:`logged`)."""
        return rounding_bound(self.logged, rows, hold_zero=self.hold_zero)

    @property
    def hold_zero(self) -> list[bool]:
        """Columns held where exactly 0 by the rounding bound: ``speed_chroma`` (the correction jumps there)."""
        return [f.extractor == "speed_chroma" for f in self.features]

    def model_option(self, name: str | None = None) -> str:
        """One entry of libvmaf's ``model=`` option: ``path=<file>\\:name=<name>`` (join entries with ``|``).

        The ``\\:`` is the filter-option level's escaped ``:``, as in
        ``extract/libvmaf.py``; the whole ``model='...'`` value is quoted at
        the graph level.  A path with a character outside ``[A-Za-z0-9_./+-]``
        (a space, a quote, ``:``, ``|``, a backslash, ...) would need escaping
        at three levels; it is refused by name (:class:`UnsafeFilterPath`).
        """
        if self.bootstrap is not None:  # FFmpeg cannot load the bootstrap file: each key as a plain model
            if name not in (None, self.name):
                raise ValueError(f"{self.name}: a bootstrap teacher's components are named after it, not {name!r}")
            # written once; FFmpeg processes may be reading it now
            return self.bootstrap.options_in(component_dir(self.bootstrap))
        return f"path={filter_safe_path(self.path)}\\:name={name or self.name}"


def rounding_bound(
    predict: Any,
    rows: Any,
    *,
    hold_zero: list[bool] | None = None,
    step: float = LOG_STEP,
    score_rounding: float = LOG_STEP,
) -> Any:
    """Per row, how far libvmaf's score may sit from ``predict`` on six-decimal logged features.

    libvmaf logs each feature rounded to 6 decimals (±5e-7) and the score
    too.  Per feature the larger of ``|s(x ± step·e_f) − s(x)|`` (finite
    differences through the whole model: transform, clip and correction
    included), summed over features, plus ``score_rounding``.  Columns
    flagged in ``hold_zero`` stay put where they are exactly 0: for
    ``speed_chroma`` the correction makes the score jump there, so a step
    would measure the jump, not rounding.  That assumes libvmaf's own value
    was exactly 0 (a tiny non-zero value that merely logs as 0 would not be
    corrected by libvmaf, and no log tells the two apart); the correction's
    dependence on adm3 is then in adm3's term.
    """
    import numpy as np

    x = np.asarray(rows, dtype=np.float64)
    base = predict(x)  # [N], or [N, H] for several outputs at once (a bootstrap's components)
    bound = np.full(np.shape(base), float(score_rounding))
    for j in range(x.shape[1]):
        hold = x[:, j] == 0.0 if hold_zero and hold_zero[j] else np.zeros(len(x), dtype=bool)
        worst = np.zeros(np.shape(base))
        for sign in (1.0, -1.0):
            xp = x.copy()
            xp[:, j] = np.where(hold, x[:, j], x[:, j] + sign * step)
            worst = np.maximum(worst, np.abs(predict(xp) - base))
        bound += worst
    return bound


def v061_family(spec: TeacherSpec) -> bool:
    """A teacher over v0.6.1's six default-option features (canonical-6): v0.6.1 itself, the 4K model, ...

    Their students keep the fork's conventions (short names in the sidecar) and the hand-tuned
    canonical-6 sampler; any other teacher gets the generic, spec-driven one.
    """
    from ..contract import FEATURES

    return spec.order == FEATURES and all(f.key == f"integer_{f.name}" for f in spec.features)


def filter_safe_path(path: Path | str) -> str:
    """``path`` (absolute, forward slashes) if it can go into ``model='path=...'`` unescaped, else an error."""
    text = Path(path).resolve().as_posix()
    if not _SAFE_PATH.match(text):
        bad = sorted({c for c in text if not _SAFE_PATH.match(c)})
        raise UnsafeFilterPath(
            f"model file path {text!r} holds {bad}, which FFmpeg's filter syntax would need escaped; "
            "move the model file (or the installed package) to a path of letters, digits and _./+-"
        )
    return text


def _format(opt: _Opt, value: Any, source: str, feature: str) -> str | None:
    """The key suffix of one option, or None when libvmaf omits it (the value is the default)."""
    try:
        v = opt.kind(value) if opt.kind is not bool else _bool(value)
    except (TypeError, ValueError):
        raise TeacherModelError(
            f"{source}: {feature} option {opt.name}={value!r} is not a {opt.kind.__name__}"
        ) from None
    if opt.default is not _ALWAYS and v == opt.default:
        return None
    if opt.alias is None:
        raise TeacherModelError(
            f"{source}: {feature} sets {opt.name}={value!r}, whose libvmaf key suffix tinyvmaf does not know "
            "(check FFmpeg's log and add it to teacher/spec.py)"
        )
    if opt.kind is bool:
        return f"_{opt.alias}" if v else None
    if opt.kind is float:
        return f"_{opt.alias}_{v:g}"
    if opt.kind is int:
        return f"_{opt.alias}_{v:d}"
    return f"_{opt.alias}_{v}"


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise ValueError(v)


def feature_key(libvmaf_name: str, options: dict[str, Any] | None, *, source: str = "<model>") -> tuple[str, str, str]:
    """``(short name, extractor, per-frame key)`` of a model feature with its ``feature_opts_dict``."""
    m = _FEATURE_RE.match(libvmaf_name)
    if not m:
        raise TeacherModelError(f"{source}: feature {libvmaf_name!r} is not one tinyvmaf can name")
    short = m["name"]
    if m["cambi"]:
        extractor, base = "cambi", short
    elif m["speed"]:
        extractor, base = "speed_chroma", short
    else:
        family = re.match(r"^(adm|vif|motion)", short)
        if not family:
            raise TeacherModelError(f"{source}: integer feature {libvmaf_name!r} has no known extractor")
        extractor, base = f"integer_{family[1]}", f"integer_{short}"
    table = _OPTIONS[extractor]
    opts = dict(options or {})
    unknown = sorted(set(opts) - {o.name for o in table})
    if unknown:
        raise TeacherModelError(
            f"{source}: {libvmaf_name} option(s) {unknown} are not in tinyvmaf's {extractor} naming table "
            "(check FFmpeg's log and add them to teacher/spec.py)"
        )
    suffix = "".join(s for o in table if o.name in opts and (s := _format(o, opts[o.name], source, libvmaf_name)))
    return short, extractor, base + suffix


#: Per extractor, the option that caps its output and libvmaf's default for it.
_UPPER_BOUND: dict[str, tuple[str, float]] = {
    "cambi": ("cambi_max_val", DEFAULT_CAMBI_MAX_VAL),
    "speed_chroma": ("speed_max_val", DEFAULT_SPEED_MAX_VAL),
    "integer_motion": ("motion_max_val", DEFAULT_MOTION_MAX_VAL),
    "integer_adm": ("adm_enhn_gain_limit", DEFAULT_ADM_ENHN_GAIN_LIMIT),
    "integer_vif": ("vif_enhn_gain_limit", DEFAULT_VIF_ENHN_GAIN_LIMIT),
}


def _bounds(extractor: str, short: str, opts: dict[str, Any]) -> tuple[float | None, float | None, str]:
    def get(name: str, default: float) -> tuple[float, str]:
        return (float(opts[name]), f"{name} (file)") if name in opts else (default, f"{name} (libvmaf default)")

    if extractor not in _UPPER_BOUND:
        return None, None, "none"
    hi, src = get(*_UPPER_BOUND[extractor])
    if extractor == "integer_adm" and short == "adm3":  # adm3 also has a floor
        lo, lo_src = get("adm_min_val", DEFAULT_ADM_MIN_VAL)
        return lo, hi, f"{lo_src}, {src}"
    return 0.0, hi, src


def spec_from_teacher(teacher: SvrTeacher, path: Path) -> TeacherSpec:
    """The spec of an already parsed model (``path``: the file libvmaf is to load)."""
    names = teacher.feature_names or teacher.features
    opts_list = list(teacher.feature_opts) or [{} for _ in names]
    if len(opts_list) != len(names):
        raise TeacherModelError(
            f"{teacher.source}: {len(names)} features but {len(opts_list)} feature_opts_dicts entries"
        )
    by_short: dict[str, FeatureSpec] = {}
    for libname, opts in zip(names, opts_list, strict=True):
        short, extractor, key = feature_key(libname, opts, source=teacher.source)
        lo, hi, src = _bounds(extractor, short, opts)
        by_short[short] = FeatureSpec(
            name=short,
            libvmaf_name=libname,
            key=key,
            extractor=extractor,
            options=tuple(opts.items()),
            lower=lo,
            upper=hi,
            bounds_from=src,
        )
    features = tuple(by_short[n] for n in teacher.input_order)
    return TeacherSpec(name=teacher.name, path=path, features=features, teacher=teacher)


def model_path(name: str) -> Path:
    """The carried model file of a packaged teacher (a real file: libvmaf reads it by ``path=``)."""
    res = resources.files(__package__).joinpath("models", f"{name}.json")
    path = Path(str(res))
    if not path.is_file():
        raise TeacherModelError(f"packaged model {name!r} is not a file on disk ({res})")
    return path


@lru_cache(maxsize=32)
def load_spec(model: str | Path) -> TeacherSpec:
    """The spec of a packaged teacher by name (``vmaf_v1.0.16_3d0h``) or of a libvmaf JSON model file by path.

    A bootstrap file (keys ``"0"`` … ``"n"``, ``vmaf_b_v0.6.3``) gives the
    spec of its key ``"0"`` (the score) with every component attached
    (:attr:`TeacherSpec.bootstrap`).
    """
    path = Path(model) if (Path(model).suffix == ".json" or Path(model).is_file()) else model_path(str(model))
    if is_bootstrap_file(path):
        from .bootstrap import load_bootstrap

        boot = load_bootstrap(model)
        base = spec_from_teacher(boot.models[0], path)
        return dataclasses.replace(base, name=boot.name, bootstrap=boot)
    return spec_from_teacher(load_teacher(model), path)


@lru_cache(maxsize=32)
def is_bootstrap_file(path: Path) -> bool:
    """A libvmaf bootstrap model: a JSON object of numbered keys, each a ``model_dict`` (no top-level one)."""
    import json

    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False  # load_teacher names the fault
    return isinstance(doc, dict) and "model_dict" not in doc and "0" in doc


def component_dir(boot: BootstrapTeacher) -> Path:
    """Where a bootstrap file's components are written for FFmpeg (``path=`` each), keyed by the file's bytes.

    Written once per file version into the temp folder (atomically: a folder
    renamed into place), so concurrent extractions share it and a changed
    file gets a new folder.
    """
    import hashlib
    import os
    import shutil
    import tempfile

    digest = hashlib.sha256(boot.path.read_bytes()).hexdigest()[:16]
    root = Path(tempfile.gettempdir()) / "tinyvmaf-models"
    final = root / f"{boot.name}-{digest}"
    if not (final / f"{boot.name}_{boot.n_components - 1:02d}.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{boot.name}-", dir=root))
        boot.write_components(tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another process put it there first
            shutil.rmtree(tmp, ignore_errors=True)
    return final
