"""Score a (reference, distorted) pair with one or more tiny models, beside the teacher.

Features come through the extract stage's cached path
(:func:`tinyvmaf.extract.pair.pair_features`), so a pair the corpus already
holds costs no libvmaf run, and the teacher's VMAF comes from that same
libvmaf pass: every model's score is printed next to the number it was
distilled from.  Any model with the tiny-model contract works — ours, the
packaged default, the libvmaf fork's peers (:mod:`tinyvmaf.model.runtime`
reads their sidecars for feature order and scaling).

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

from ..contract import FEATURES, TEACHER
from ..model.runtime import TinyModel, load_tiny_model

_QUALITY = FEATURES[:-1]


def outside_box(x: np.ndarray, box: dict[str, float] | None) -> list[str]:
    """Human-readable reasons why rows of ``x`` leave ``box`` (``quality_max``, ``motion2_max``); [] when inside."""
    if not box:
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
    teacher: str = TEACHER,
    frame_policy: str = "error",
    cache_dir: str | Path | None = None,
    ffmpeg: str | None = None,
) -> dict[str, Any]:
    """Per-frame and pooled scores of ``dist`` against ``ref`` by each model, with the teacher's beside them.

    ``models``: ONNX paths (default: the packaged model).  Raw YUV needs
    ``width``/``height``/``pix_fmt`` (the distorted clip's own geometry via
    ``dist_*`` when it differs).  Returns a JSON-ready dict: ``models`` (names
    in column order), ``frames`` (frame, teacher, ``scores`` per model, the six
    features), ``pooled`` (the mean over frames, the way VMAF pools: teacher,
    ``scores`` and ``diff`` per model) and ``warnings``.
    """
    from ..config.schema import ExtractConfig
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
    pool = ThreadPoolExecutor(max_workers=1)
    loading = pool.submit(lambda: [load_tiny_model(m) for m in models])
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
        teachers=[teacher],
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
    names = unique_names([m.name for m in loaded])
    x = np.array([[f[k] for k in FEATURES] for f in feats["frames"]], dtype=np.float64)
    preds = {n: m.predict(x).astype(np.float64) for n, m in zip(names, loaded, strict=True)}
    warnings = [f"{m.path}: {w}" for m in loaded for w in m.warnings]
    for n, m in zip(names, loaded, strict=True):
        box = (m.sidecar or {}).get("training_box")
        warnings += [f"{n} was not trained there: {r}" for r in outside_box(x, box)]
    frames = []
    for i, f in enumerate(feats["frames"]):
        frames.append(
            {
                "frame": f["frame"],
                "teacher": float(f[teacher]),
                "scores": {n: float(p[i]) for n, p in preds.items()},
                **{k: f[k] for k in FEATURES},
            }
        )
    pooled_teacher = float(feats["pooled"][teacher])
    pooled = {n: float(p.mean()) for n, p in preds.items()}
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
    }


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
