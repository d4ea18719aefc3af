"""Score a (reference, distorted) pair with one or more tiny models, beside the teacher.

Features come through the extract stage's cached path
(:func:`tinyvmaf.extract.pair.pair_features`), so a pair the corpus already
holds costs no libvmaf run, and the teacher's VMAF comes from that same
libvmaf pass: every model's score is printed next to the number it was
distilled from.  Any model with the tiny-model contract works — ours, the
packaged default, the libvmaf fork's peers (:mod:`tinyvmaf.model.runtime`
reads their sidecars for feature order and scaling).

The model decides what is extracted: its sidecar names its teacher and
its input features (canonical-6 short names for the v0.6.1 family, full
libvmaf keys for any other teacher), and the one libvmaf pass loads each
teacher the models need (plus ``teacher``, printed beside them).  A
sidecar feature that libvmaf did not log is an error naming the key and the
model; an unknown teacher an error naming it.

A frame whose features leave the box a student was trained over (its
sidecar's ``training_box``) is extrapolation: the result says so in
``warnings`` and the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import FEATURES, HEADS_NAME, TEACHER
from ..model.runtime import TinyModel, load_tiny_model

_QUALITY = FEATURES[:-1]


class ScoreError(ValueError):
    """A model cannot be scored on this pair (unknown teacher, a feature libvmaf did not log); names both."""


def model_teacher(path: str | Path) -> str:
    """The teacher a model's sidecar names (``vmaf_v0.6.1`` without a sidecar or field: the fork's peers)."""
    teacher = sidecar_of(path).get("teacher")
    return teacher if isinstance(teacher, str) and teacher else TEACHER


def sidecar_of(path: str | Path) -> dict[str, Any]:
    """A model's sidecar as a dict ({} without one: the fork's peers may have none)."""
    import json

    from ..model.runtime import sidecar_path

    side = sidecar_path(Path(path))
    return json.loads(side.read_text()) if side.is_file() else {}


def check_heads(plain: Sequence[str | Path]) -> None:
    """``--interval`` with a model that outputs one score is an error naming it."""
    if plain:
        raise ScoreError(
            "--interval needs a bootstrap teacher's student (heads out, e.g. vmaf_b_v0.6.3's); "
            f"{', '.join(map(str, plain))} output(s) a single score"
        )


def display_name(key: str) -> str:
    """A logged key as the output names it: v0.6.1's short names (as its sidecars do), every other key whole."""
    short = key.removeprefix("integer_")
    return short if short in FEATURES else key


def libvmaf_key(feature: str) -> str:
    """A sidecar's feature name as libvmaf logs it: v0.6.1's short names get ``integer_``, keys stay."""
    return f"integer_{feature}" if feature in FEATURES else feature


def outside_box(x: np.ndarray, box: dict[str, float] | None) -> list[str]:
    """Human-readable reasons why rows of ``x`` leave ``box`` (``quality_max``, ``motion2_max``); [] when inside."""
    if not box or "quality_max" not in box or x.shape[1] != len(FEATURES):
        return []
    out = []
    for j, name in enumerate(FEATURES):
        hi = box["motion2_max"] if name == "motion2" else box["quality_max"]
        col = x[:, j]
        bad = np.flatnonzero((col > hi) | (col < 0.0))
        if bad.size:
            worst = float(col[bad].max() if col[bad].max() > hi else col[bad].min())
            out.append(f"{name} {worst:.4g} outside [0, {hi:g}] on {bad.size} frame(s) (first: frame {int(bad[0])})")
    return out


def score(
    ref: str | Path,
    dist: str | Path,
    models: Sequence[str | Path] | str | Path | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
    pix_fmt: str | None = None,
    dist_width: int | None = None,
    dist_height: int | None = None,
    dist_pix_fmt: str | None = None,
    teacher: str | None = None,
    frame_policy: str = "error",
    cache_dir: str | Path | None = None,
    ffmpeg: str | None = None,
    interval: bool = False,
) -> dict[str, Any]:
    """Per-frame and pooled scores of ``dist`` against ``ref`` by each model, with the teacher's beside them.

    ``models``: ONNX paths (default: the packaged model).  Raw YUV needs
    ``width``/``height``/``pix_fmt`` (the distorted clip's own geometry via
    ``dist_*`` when it differs).  Returns a JSON-ready dict: ``models`` (names
    in column order), ``frames`` (frame, teacher, ``scores`` per model, the
    features libvmaf logged), ``pooled`` (the mean over frames, the way VMAF
    pools: teacher, ``scores`` and ``diff`` per model) and ``warnings``.
    ``teacher`` (default: the first model's) is printed beside the models.

    ``interval``: every model must be a bootstrap teacher's (``heads``
    out); the result's ``interval`` then holds, per frame and pooled, each
    model's score, bagging, stddev and 95% interval beside the teacher's.
    The teacher's are the callable teacher's on the frame's logged features
    (FFmpeg's libvmaf cannot load a bootstrap model, only each component:
    ``tests/teacher/test_bootstrap.py`` holds the callable teacher to
    Netflix's own CLI within 2e-4).
    """
    from ..config.schema import ConfigError, ExtractConfig, check_teacher
    from ..extract.pair import make_pair, pair_features
    from ..packaged import default_model_path

    if models is None:
        models = [default_model_path()]
    elif isinstance(models, str | Path):
        models = [models]
    # The models load (ONNX parse, ONNX Runtime session) while libvmaf runs: their cost overlaps the
    # extraction instead of adding to it.  A missing model still fails before any libvmaf run.
    for m in models:
        if not Path(m).is_file():
            raise FileNotFoundError(f"{m}: no ONNX model (train and export one, or pass --model)")
    needs = [model_teacher(m) for m in models]
    teacher = teacher or needs[0]
    for t, where in [
        (teacher, "--teacher"),
        *((t, f"model {m}'s sidecar") for t, m in zip(needs, models, strict=True)),
    ]:
        try:
            check_teacher(where, t)
        except ConfigError as exc:
            raise ScoreError(str(exc)) from None
    if interval:  # before any libvmaf run: what the sidecars say
        check_heads([m for m in models if sidecar_of(m).get("output_name") != HEADS_NAME])
    pool = ThreadPoolExecutor(max_workers=1)
    loading = pool.submit(lambda: [load_model_for(m, t) for m, t in zip(models, needs, strict=True)])
    pair = make_pair(
        ref,
        dist,
        width=width,
        height=height,
        pix_fmt=pix_fmt,
        dist_width=dist_width,
        dist_height=dist_height,
        dist_pix_fmt=dist_pix_fmt,
    )
    cfg = ExtractConfig(
        teachers=list(dict.fromkeys([teacher, *needs])),
        frame_policy=frame_policy,
        workers=1,
        ffmpeg=ffmpeg,
        cache_dir=str(cache_dir) if cache_dir is not None else None,
    )
    try:
        feats = pair_features(pair, cfg)
        loaded: list[TinyModel] = loading.result()
    finally:
        pool.shutdown(wait=True)
    if interval:  # the graphs themselves (a sidecar could claim heads its graph lacks)
        check_heads([m.path for m in loaded if not m.has_heads])
    names = unique_names([m.name for m in loaded])
    logged = feats["frames"][0].keys() if feats["frames"] else set()
    preds, warnings = {}, [f"{m.path}: {w}" for m in loaded for w in m.warnings]
    for n, m in zip(names, loaded, strict=True):
        keys = list(m.keys)  # the teacher's libvmaf keys, in its spec order (the rows' columns)
        missing = [k for k in (libvmaf_key(f) for f in m.features) if k not in logged]
        if missing:
            raise ScoreError(
                f"model {m.path}: its sidecar names feature key(s) {missing}, which libvmaf did not log "
                f"(logged: {sorted(k for k in logged if k != 'frame')})"
            )
        x = np.array([[f[k] for k in keys] for f in feats["frames"]], dtype=np.float64)
        preds[n] = m.predict(x).astype(np.float64)
        box = (m.sidecar or {}).get("training_box")
        warnings += [f"{n} was not trained there: {r}" for r in outside_box(x, box)]
    features = [k for k in logged if k != "frame" and k not in cfg.teachers]
    frames = []
    for i, f in enumerate(feats["frames"]):
        frames.append(
            {
                "frame": f["frame"],
                "teacher": float(f[teacher]),
                "scores": {n: float(p[i]) for n, p in preds.items()},
                **{display_name(k): f[k] for k in features},
            }
        )
    pooled_teacher = float(feats["pooled"][teacher])
    pooled = {n: float(p.mean()) for n, p in preds.items()}
    extra: dict[str, Any] = {}
    if interval:
        extra["interval"] = interval_table(feats["frames"], loaded, names)
    return {
        "ref": str(ref),
        "dist": str(dist),
        "teacher": teacher,
        "models": names,
        "model_paths": {n: str(m.path) for n, m in zip(names, loaded, strict=True)},
        "frames": frames,
        "pooled": {
            "teacher": pooled_teacher,
            "scores": pooled,
            "diff": {n: s - pooled_teacher for n, s in pooled.items()},
        },
        "warnings": warnings,
        **extra,
    }


def interval_table(frames: list[dict[str, Any]], models: list[TinyModel], names: list[str]) -> dict[str, Any]:
    """Per frame and pooled: the five statistics (and the interval width) of the teacher and of each model."""
    from ..evaluate.interval import with_width
    from ..teacher.spec import load_spec

    teachers = {str(m.bootstrap.name) for m in models}
    if len(teachers) != 1:
        raise ScoreError(f"--interval compares models of one bootstrap teacher, got {sorted(teachers)}")
    spec = load_spec(teachers.pop())
    x = np.array([[f[k] for k in spec.keys] for f in frames], dtype=np.float64)
    stats = {"teacher": with_width(spec.bootstrap.statistics(x, order=spec.order))}
    for n, m in zip(names, models, strict=True):
        stats[n] = with_width(m.statistics(x))
    return {
        "teacher": spec.name,
        "frames": [
            {"frame": f["frame"], **{who: {k: float(v[i]) for k, v in st.items()} for who, st in stats.items()}}
            for i, f in enumerate(frames)
        ],
        "pooled": {who: {k: float(v.mean()) for k, v in st.items()} for who, st in stats.items()},
    }


def format_interval(result: dict[str, Any]) -> str:
    """``--interval``: per frame and pooled, score / bagging / stddev / 95% interval, teacher then each model."""
    iv = result["interval"]
    who = ["teacher", *result["models"]]
    w = max(12, *(len(n) for n in who))
    cols = ("score", "bagging", "stddev", "ci_p95_lo", "ci_p95_hi")
    head = f"{'frame':>5} {'':<{w}} " + " ".join(f"{c:>10}" for c in cols)
    lines = ["", f"bootstrap statistics ({iv['teacher']}; the teacher's from the logged features):", head]
    rows = [*((str(f["frame"]), f) for f in iv["frames"]), ("pool", iv["pooled"])]
    for label, f in rows:
        for k, name in enumerate(who):
            vals = " ".join(f"{f[name][c]:>10.4f}" for c in cols)
            lines.append(f"{label if k == 0 else '':>5} {name:<{w}} {vals}")
    return "\n".join(lines)


def load_model_for(path: str | Path, teacher: str) -> TinyModel:
    """A model whose rows are its teacher's features in the spec's order; its sidecar names which it takes."""
    from ..model.runtime import ModelContractError
    from ..teacher.spec import load_spec

    spec = load_spec(teacher)
    try:
        return load_tiny_model(path, order=spec.order, keys=spec.keys)
    except ModelContractError as exc:
        raise ScoreError(
            f"{exc}: libvmaf logs no such key for its teacher {teacher} (it logs {list(spec.keys)})"
        ) from None


def unique_names(names: list[str]) -> list[str]:
    """Column names: a model's id, suffixed ``#2``, ``#3`` when two models share one."""
    out, seen = [], {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def format_table(result: dict[str, Any]) -> str:
    """Teacher and every model side by side, one line per frame, then the pooled scores and differences."""
    names = result["models"]
    w = max(12, *(len(n) for n in names))
    lines = [f"ref   {result['ref']}", f"dist  {result['dist']}", ""]
    lines += [f"model {n}: {result['model_paths'][n]}" for n in names]
    lines += ["", f"{'frame':>5} {result['teacher']:>{w}} " + " ".join(f"{n:>{w}}" for n in names)]
    for f in result["frames"]:
        lines.append(f"{f['frame']:>5} {f['teacher']:>{w}.4f} " + " ".join(f"{f['scores'][n]:>{w}.4f}" for n in names))
    p = result["pooled"]
    lines.append(f"{'pool':>5} {p['teacher']:>{w}.4f} " + " ".join(f"{p['scores'][n]:>{w}.4f}" for n in names))
    lines.append(f"{'diff':>5} {'':>{w}} " + " ".join(f"{p['diff'][n]:>+{w}.4f}" for n in names))
    return "\n".join(lines)
