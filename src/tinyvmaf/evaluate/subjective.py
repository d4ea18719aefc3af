"""The secondary metric: how well clip scores agree with what people said (PLCC, SROCC, RMSE vs ``mos100``).

The primary metrics measure the student against its teacher, frame by
frame; this one asks the question VMAF itself is judged by — does the
*clip* score track subjective opinion — and asks it of teacher and student
alike, so a model card can show the student lost nothing a viewer would see.

Clips are pooled exactly as libvmaf and Netflix's own evaluation pool them:
the arithmetic mean of a clip's frame scores (``clip_label`` in the label
stage is the same mean of the teacher's frames).  Only clips with a known
subjective score count; most corpora (the demo corpus included) have none,
and then the result says so instead of holding numbers.

Raw figures, no fitted mapping
------------------------------
The literature (VQEG, Netflix's VMAF papers) often reports PLCC and RMSE
after fitting a monotone (logistic or 3rd-order polynomial) map from the
metric to the subjective scale.  Here the three figures are **raw**:

* ``vmaf_v0.6.1`` was trained to regress DMOS on VMAF's 0-100 scale, so the
  raw pooled score *is* a prediction on that scale and its raw error means
  something;
* a map fitted on the very clips it is evaluated on flatters them, and the
  held-out split of a small corpus has too few clips (tens, or three) to fit
  four logistic parameters stably — the figure would move with the fit, not
  the model;
* SROCC is invariant to any monotone map anyway, so it already says what a
  fitted PLCC would mostly add.

Expect RMSE to carry scale mismatch where the scores are MOS: a 1-5 ACR MOS
is mapped linearly to 0-100 (:func:`tinyvmaf.label.stage.mos_to_100`), which
is not the scale VMAF was fitted to; ``scale`` in the result says which one
the clips used.

Everything written is finite or absent: the result is committed as JSON and
logged to MLflow, neither of which should ever hold a NaN.  Where a figure is
undefined (too few clips, a constant side) a ``skipped`` string says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..common.metrics import pearson, rounded, spearman
from ..contract import SPLITS

#: The fewest scored clips the figures are computed on: a correlation of two points is always ±1.
MIN_CLIPS = 3

#: The per-predictor figures, in report order.
SUBJECTIVE_FIGURES = ("plcc", "srocc", "rmse")

_REQUIRED = ("key", "content", "split", "mos100")


def _scale(clips: pd.DataFrame) -> str:
    """Which subjective scale the scored clips used: ``dmos``, ``mos``, ``mixed`` or ``unknown``.

    The label stage takes ``dmos`` when a pair has both (it is VMAF's own
    scale), so a clip counts as DMOS-scored whenever its ``dmos`` is known.
    A frame table without the ``mos`` / ``dmos`` columns (only ``mos100``)
    cannot tell, hence ``unknown`` rather than a guess.
    """
    if "dmos" not in clips.columns:
        return "unknown"
    from_dmos = clips["dmos"].notna()
    if from_dmos.all():
        return "dmos"
    if "mos" in clips.columns and (clips["mos"].notna() | from_dmos).all():
        return "mos" if not from_dmos.any() else "mixed"
    return "unknown"


def _pooled(values: np.ndarray, keys: np.ndarray, order: pd.Index) -> np.ndarray:
    """Mean of ``values`` per key, in ``order`` (libvmaf's pooling: the arithmetic mean of the frames)."""
    return pd.Series(values, copy=False).groupby(keys, sort=False).mean().reindex(order).to_numpy(np.float64)


def subjective_metrics(
    frames: pd.DataFrame, predictions: Mapping[str, np.ndarray], *, split: str = "test"
) -> dict[str, Any]:
    """Clip-level PLCC, SROCC and RMSE of each predictor's pooled score against ``mos100`` on one split.

    ``frames`` is the label stage's table (one row per frame: ``key``,
    ``content``, ``split``, ``mos100``, and ``mos`` / ``dmos`` when known);
    each value of ``predictions`` is a per-frame score aligned with
    ``frames``' rows, e.g. ``{"teacher": frames["label"], "student": pred}``.
    Every predictor is pooled per ``key`` by the mean of its frames, then the
    clips of ``split`` that have a subjective score are compared with it.

    Returns ``{"split", "scale", "n_clips", "n_contents", "predictors":
    {name: {"plcc", "srocc", "rmse"}}}`` (floats rounded to 6 places), or
    ``{"skipped": reason}`` when fewer than :data:`MIN_CLIPS` scored clips
    exist or the subjective scores are all equal (no correlation is defined).
    A predictor whose pooled scores are all equal gets ``{"skipped": reason}``
    in place of its figures.  Nothing returned is NaN.

    Raises ``ValueError`` for an unknown split, a missing column, a
    prediction of the wrong length, a non-finite prediction on a scored clip
    (a broken model must fail loudly, not vanish from the figures), or a
    ``mos100`` that differs between frames of one clip.
    """
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    missing = [c for c in _REQUIRED if c not in frames.columns]
    if missing:
        raise ValueError(f"the frame table lacks column(s) {missing} (is it the label stage's output?)")
    arrays: dict[str, np.ndarray] = {}
    for name, values in predictions.items():
        a = np.asarray(values, dtype=np.float64)
        if a.shape != (len(frames),):
            raise ValueError(f"predictor {name!r} has shape {a.shape}; expected one score per frame ({len(frames)},)")
        arrays[name] = a

    keys = frames["key"].astype(str).to_numpy()
    clips = frames.assign(key=keys).groupby("key", sort=False)
    per_clip = clips.agg(
        content=("content", "first"),
        split=("split", "first"),
        mos100=("mos100", "first"),
        **{c: (c, "first") for c in ("mos", "dmos") if c in frames.columns},
    )
    varying = clips["mos100"].nunique(dropna=False)
    if (varying > 1).any():
        bad = sorted(varying.index[varying > 1])[:5]
        raise ValueError(f"mos100 differs between frames of clip(s) {bad}: a subjective score is per clip")

    in_split = per_clip[per_clip["split"] == split]
    scored = in_split[in_split["mos100"].notna()]
    n = len(scored)
    if n < MIN_CLIPS:
        return {
            "skipped": f"split {split!r} has {n} clip(s) with a subjective score "
            f"(of {len(in_split)} clip(s)); the figures need at least {MIN_CLIPS}"
        }
    target = scored["mos100"].to_numpy(np.float64)
    if np.ptp(target) == 0:
        return {
            "skipped": f"the {n} scored clip(s) of split {split!r} all have mos100 = {target[0]:g}: "
            "no correlation is defined"
        }

    wanted = np.isin(keys, scored.index.to_numpy())
    out: dict[str, Any] = {
        "split": split,
        "scale": _scale(scored),
        "n_clips": n,
        "n_contents": int(scored["content"].nunique()),
        "predictors": {},
    }
    for name, a in arrays.items():
        bad = wanted & ~np.isfinite(a)
        if bad.any():
            where = sorted(set(keys[bad]))[:5]
            raise ValueError(f"predictor {name!r} has {int(bad.sum())} non-finite frame score(s), e.g. in {where}")
        pooled = _pooled(a[wanted], keys[wanted], scored.index)
        if np.ptp(pooled) == 0:
            out["predictors"][name] = {
                "skipped": f"every pooled score is {pooled[0]:g} on the {n} clip(s): no correlation is defined"
            }
            continue
        err = pooled - target
        figs = {
            "plcc": pearson(pooled, target),
            "srocc": spearman(pooled, target),
            "rmse": float(np.sqrt(np.mean(err * err))),
        }
        assert all(math.isfinite(v) for v in figs.values()), figs  # both sides vary and are finite
        out["predictors"][name] = rounded(figs)
    return out


def markdown_table(metrics: Mapping[str, Any]) -> str:
    """The model card's block: a caption saying what was measured, then predictor | clips | PLCC | SROCC | RMSE.

    A skipped result (or predictor) is shown with its reason, so a card never
    suggests a figure was measured when it was not.
    """
    if "skipped" in metrics:
        return f"Clip-level agreement with subjective scores: not measured ({metrics['skipped']}).\n"
    n = metrics["n_clips"]
    caption = (
        f"Clip-level agreement with subjective scores on the {metrics['split']} split: "
        f"{n} clip(s) of {metrics['n_contents']} content(s), {metrics['scale']} scale on 0-100; "
        "mean of frames per clip, raw figures (no fitted mapping)."
    )
    lines = [caption, "", "| predictor | clips | PLCC | SROCC | RMSE |", "|---|---|---|---|---|"]
    for name, f in metrics["predictors"].items():
        if "skipped" in f:
            lines.append(f"| {name} | {n} | — | — | — |")
        else:
            lines.append(f"| {name} | {n} | {f['plcc']:.4f} | {f['srocc']:.4f} | {f['rmse']:.2f} |")
    skipped = [f"{name}: {f['skipped']}" for name, f in metrics["predictors"].items() if "skipped" in f]
    if skipped:
        lines += ["", *(f"_{s}_" for s in skipped)]
    return "\n".join(lines) + "\n"
