"""Score a (reference, distorted) pair with a trained ONNX student, beside the teacher.

Features come through the same extraction path and content-addressed cache
as the pipeline (:func:`tinyvmaf.features_cli.pair_features`), so a pair
the corpus already holds costs no libvmaf run, and the teacher's VMAF comes
for free from that same libvmaf pass: every student score is printed next
to the number it was distilled from.

``tinyvmaf.score(ref, dist)`` is this module called as a function: the
module ``tinyvmaf.score`` and the function ``score`` share a name, and
Python's import system binds the *module* to ``tinyvmaf.score`` once it has
been imported, so the module itself is made callable (see the end of this
file) — ``tinyvmaf.score(...)`` and ``tinyvmaf.score.score(...)`` are the same.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

from .export import DEFAULT_ONNX_PATH, DEFAULT_TEACHER, ort_session, run_session
from .libvmaf import FEATURES


class ModelContractError(ValueError):
    """The ONNX file does not take the canonical-6 features this extractor produces."""


def check_feature_order(session) -> dict[str, str]:
    """The model's metadata; refuse a model whose feature order is not canonical-6."""
    meta = dict(session.get_modelmeta().custom_metadata_map)
    order = meta.get("feature_order")
    if order is not None:
        try:
            parsed = json.loads(order)
        except json.JSONDecodeError:
            parsed = [s.strip() for s in order.split(",")]
        if list(parsed) != list(FEATURES):
            raise ModelContractError(f"model expects features {parsed}, the extractor produces {list(FEATURES)}")
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].shape[-1] != len(FEATURES):
        raise ModelContractError(f"model inputs {[(i.name, i.shape) for i in inputs]} are not [N, {len(FEATURES)}]")
    return meta


def score(
    ref: str | Path,
    dist: str | Path,
    model: str | Path = DEFAULT_ONNX_PATH,
    *,
    width: int | None = None,
    height: int | None = None,
    pix_fmt: str | None = None,
    dist_width: int | None = None,
    dist_height: int | None = None,
    dist_pix_fmt: str | None = None,
    teacher: str = DEFAULT_TEACHER,
    frame_policy: str = "error",
    cache_dir: str | Path | None = None,
    ffmpeg: str | None = None,
) -> dict[str, Any]:
    """Per-frame and pooled student scores of ``dist`` against ``ref``, with the teacher's beside them.

    Raw YUV needs ``width``/``height``/``pix_fmt`` (the distorted clip's own
    geometry via ``dist_*`` when it differs).  Returns a JSON-ready dict:
    ``frames`` (frame, student, teacher, diff and the six features) and
    ``pooled`` (mean over frames, the way VMAF pools, and the difference).
    """
    from .extract import ExtractConfig
    from .features_cli import pair_features
    from .manifest import Pair
    from .media import Video

    model = Path(model)
    if not model.is_file():
        raise FileNotFoundError(f"{model}: no ONNX model (train and export one, or pass --model)")
    ref_v = Video(Path(ref), width, height, pix_fmt)
    dist_v = Video(Path(dist), dist_width or width, dist_height or height, dist_pix_fmt or pix_fmt)
    pair = Pair(key=f"{Path(ref).name}:{Path(dist).name}", content=Path(ref).name, ref=ref_v, dist=dist_v)
    cfg = ExtractConfig(
        teachers=(teacher,),
        frame_policy=frame_policy,
        ffmpeg=ffmpeg,
        cache_dir=str(cache_dir) if cache_dir is not None else None,
    )
    feats = pair_features(pair, cfg)
    session = ort_session(model)
    meta = check_feature_order(session)
    x = np.array([[f[k] for k in FEATURES] for f in feats["frames"]], dtype=np.float32)
    student = run_session(session, x).astype(np.float64)
    frames = []
    for f, s in zip(feats["frames"], student, strict=True):
        t = float(f[teacher])
        frames.append(
            {
                "frame": f["frame"],
                "student": float(s),
                "teacher": t,
                "diff": float(s) - t,
                **{k: f[k] for k in FEATURES},
            }
        )
    pooled_student = float(student.mean())
    pooled_teacher = float(feats["pooled"][teacher])
    return {
        "ref": str(ref),
        "dist": str(dist),
        "model": str(model),
        "teacher": teacher,
        "model_git_commit": meta.get("git_commit"),
        "frames": frames,
        "pooled": {"student": pooled_student, "teacher": pooled_teacher, "diff": pooled_student - pooled_teacher},
    }


def format_table(result: dict[str, Any]) -> str:
    """Student and teacher side by side, one line per frame, then the pooled scores."""
    t = result["teacher"]
    lines = [
        f"ref   {result['ref']}",
        f"dist  {result['dist']}",
        f"model {result['model']}",
        "",
        f"{'frame':>5} {'student':>10} {t:>12} {'diff':>9}",
    ]
    for f in result["frames"]:
        lines.append(f"{f['frame']:>5} {f['student']:>10.4f} {f['teacher']:>12.4f} {f['diff']:>+9.4f}")
    p = result["pooled"]
    lines.append(f"{'pool':>5} {p['student']:>10.4f} {p['teacher']:>12.4f} {p['diff']:>+9.4f}")
    return "\n".join(lines)


class _CallableModule(types.ModuleType):
    """Lets ``tinyvmaf.score(...)`` work although ``tinyvmaf.score`` is this module."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return score(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
