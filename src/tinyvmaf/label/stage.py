"""The label stage, per student: ``features.parquet`` + manifest → ``labels/<teacher>.parquet``.

Output contract (one row per frame; the student's later stages read it):

============== ==============================================================
key, content,  as in ``features.parquet``
frame
features       the teacher's features under the spec's short names, in the
               spec's order (``adm2 … motion2`` for v0.6.1; ``cambi,
               speed_chroma_uv, adm3, motion3`` for v1.0.16), renamed from
               libvmaf's keys (the other teachers' columns are left out)
<teacher>      libvmaf's logged score of the teacher (e.g. ``vmaf_v0.6.1``)
``label``      soft label: that per-frame score (float64)
``clip_label`` mean of the pair's frame labels (libvmaf pools: clip, then mean)
``mos``        the manifest's ``mos`` (1-5 ACR scale), NaN when unknown
``dmos``       the manifest's ``dmos`` (0-100-like), NaN when unknown
``mos100``     subjective score on the 0-100 VMAF scale (see :func:`mos_to_100`)
``split``      ``train`` / ``val`` / ``test``, decided per source content
<teacher>_kk   a bootstrap teacher only: each component's logged score
``head_kk``    a bootstrap teacher only: each component's raw (unclipped)
               score from the frame's features, what the student's heads learn
============== ==============================================================

Splits are drawn per **content** (every distortion of one source lands in
one split) so held-out numbers measure generalisation to unseen sources,
which is what a frame- or pair-level split (the anchor trainer's leak)
overstates.  The draw is a sha256 of ``salt + content`` — no RNG, no
dependence on row order, the same on any machine.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..common.atomic import atomic_path
from ..config.schema import LabelConfig, SplitConfig
from ..contract import SPLITS
from ..corpus.manifest import read_manifest

log = logging.getLogger(__name__)

LABEL_COLUMNS = ("label", "clip_label", "mos", "dmos", "mos100", "split")
MIN_CONTENTS = 3  # one each for train, val and test


class LabelError(ValueError):
    """The inputs cannot be labelled as configured; the message says which input and why."""


def content_hash(content: str, salt: str) -> str:
    """The hex sha256 that orders contents for the split (salt first, NUL-separated, so no ambiguity)."""
    return hashlib.sha256(f"{salt}\0{content}".encode()).hexdigest()


def split_counts(n_contents: int, val: float, test: float) -> tuple[int, int, int]:
    """``(train, val, test)`` content counts: rounded fractions, at least one each in val and test."""
    if n_contents < MIN_CONTENTS:
        raise LabelError(
            f"only {n_contents} source content(s): a content-grouped train/val/test split needs at least {MIN_CONTENTS}"
        )
    n_test = max(1, round(test * n_contents))
    n_val = max(1, round(val * n_contents))
    n_train = n_contents - n_val - n_test
    if n_train < 1:
        raise LabelError(
            f"{n_contents} contents with val={val}, test={test} leave no content for train "
            f"(val {n_val}, test {n_test}); lower the fractions or add contents"
        )
    return n_train, n_val, n_test


def assign_splits(contents, cfg: SplitConfig) -> dict[str, str]:
    """Map each distinct content to a split.

    Contents are ordered by :func:`content_hash`; the first ``n_test`` go to
    test, the next ``n_val`` to val, the rest to train.  Ranking (rather than
    thresholding each hash at the fractions) is what guarantees a non-empty
    val and test on a corpus of ten-odd contents, where a threshold would
    leave a split empty by chance.  The price: adding contents can move a
    content sitting at a boundary; change ``salt`` to draw a different split.
    """
    distinct = sorted({str(c) for c in contents})
    n_train, n_val, n_test = split_counts(len(distinct), cfg.val, cfg.test)
    ranked = sorted(distinct, key=lambda c: (content_hash(c, cfg.salt), c))
    out = {c: "test" for c in ranked[:n_test]}
    out.update({c: "val" for c in ranked[n_test : n_test + n_val]})
    out.update({c: "train" for c in ranked[n_test + n_val :]})
    assert sum(1 for s in out.values() if s == "train") == n_train
    return out


def mos_to_100(mos: float | None, dmos: float | None) -> float:
    """A pair's subjective score on VMAF's 0-100 scale (NaN when neither is known).

    The manifest's column name says the scale:

    * ``dmos`` is taken to be already 0-100-like (Netflix's public dataset
      ``dmos``: 100 for the reference, up to ~109 after their mapping) and is
      used **as is**, not clipped; it wins when both are given because it is
      the scale ``vmaf_v0.6.1`` was fitted to.
    * ``mos`` is a raw 1-5 ACR opinion score, mapped linearly
      ``(mos - 1) / 4 * 100`` (1 → 0, 5 → 100); a value outside [1, 5] is an
      error (the number belongs in ``dmos``).
    """
    if dmos is not None and not _isnan(dmos):
        return float(dmos)
    if mos is not None and not _isnan(mos):
        if not 1.0 <= mos <= 5.0:
            raise LabelError(f"mos {mos} is outside the 1-5 ACR scale (0-100-like scores belong in the dmos column)")
        return (float(mos) - 1.0) / 4.0 * 100.0
    return math.nan


def _isnan(x: float) -> bool:
    return isinstance(x, float) and math.isnan(x)


def subjective_table(manifest: str | Path) -> pd.DataFrame:
    """``key, content, mos, dmos, mos100`` per manifest pair (NaN where unknown)."""
    rows = []
    for p in read_manifest(manifest):
        try:
            m100 = mos_to_100(p.mos, p.dmos)
        except LabelError as exc:
            raise LabelError(f"{manifest}: pair {p.key!r}: {exc}") from None
        rows.append(
            {
                "key": p.key,
                "content": p.content,
                "mos": math.nan if p.mos is None else float(p.mos),
                "dmos": math.nan if p.dmos is None else float(p.dmos),
                "mos100": m100,
            }
        )
    return pd.DataFrame.from_records(rows, columns=["key", "content", "mos", "dmos", "mos100"])


def student_frames(features: pd.DataFrame, teacher: str) -> pd.DataFrame:
    """``key, content, frame``, the teacher's features renamed to its spec's short names, its score column."""
    from ..extract.plan import MissingFeatureKey, rename_to_spec
    from ..teacher.spec import load_spec

    if teacher not in features.columns:
        known = [c for c in features.columns if c.startswith("vmaf")]
        raise LabelError(f"teacher {teacher!r} is not a column of the features (extracted teachers: {known})")
    try:
        names = rename_to_spec(features.columns, load_spec(teacher))
    except MissingFeatureKey as exc:
        raise LabelError(str(exc)) from None
    spec = load_spec(teacher)
    logged = [c for c in dict.fromkeys((teacher, *spec.log_columns)) if c != teacher]
    missing = [c for c in logged if c not in features.columns]
    if missing:
        raise LabelError(f"teacher {teacher!r}: the features lack its component column(s) {missing[:3]} (re-extract)")
    ids = [c for c in ("key", "content", "frame") if c in features.columns]
    return features[[*ids, *names, teacher, *logged]].rename(columns=names)


def make_labels(features: pd.DataFrame, subjective: pd.DataFrame, cfg: LabelConfig, *, teacher: str) -> pd.DataFrame:
    """The labelled frame table of ``teacher``'s student (see the module docstring for the columns)."""
    features = student_frames(features, teacher)
    clash = [c for c in LABEL_COLUMNS if c in features.columns]
    if clash:
        raise LabelError(f"features already have column(s) {clash} that the label stage writes")
    if features.empty:
        raise LabelError("no frames to label")

    label = features[teacher].astype("float64")
    bad = ~np.isfinite(label.to_numpy())
    if bad.any():
        keys = sorted(features.loc[bad, "key"].astype(str).unique())[:5]
        raise LabelError(f"teacher {teacher!r} has {int(bad.sum())} non-finite frame score(s), e.g. in pairs {keys}")

    feat_keys = set(features["key"].astype(str))
    subj = subjective.set_index("key")
    missing = sorted(feat_keys - set(subj.index))
    if missing:
        raise LabelError(f"{len(missing)} pair(s) in the features are not in the manifest, e.g. {missing[:5]}")
    stale = sorted(set(subj.index) - feat_keys)
    if stale:
        raise LabelError(
            f"{len(stale)} manifest pair(s) have no frames in the features (stale features?), e.g. {stale[:5]}"
        )
    pairs = features[["key", "content"]].astype(str).drop_duplicates()
    wrong = pairs.loc[pairs["content"] != pairs["key"].map(subj["content"].astype(str)), "key"]
    if not wrong.empty:
        raise LabelError(f"content of pair(s) {sorted(wrong)[:5]} differs between the features and the manifest")

    splits = assign_splits(features["content"].astype(str), cfg.split)
    out = features.copy()
    out["label"] = label
    out["clip_label"] = out.groupby("key", sort=False)["label"].transform("mean").astype("float64")
    keys = out["key"].astype(str)
    for col in ("mos", "dmos", "mos100"):
        out[col] = keys.map(subj[col]).astype("float64")
    out["split"] = out["content"].astype(str).map(splits)
    from ..teacher.spec import load_spec

    spec = load_spec(teacher)
    if spec.bootstrap is not None:  # the heads' targets: raw (unclipped) components from the frame's features
        raw = spec.components(out[list(spec.order)].to_numpy(np.float64))
        for k, head in enumerate(spec.heads):
            out[head] = raw[:, k]
    return out


def split_summary(labels: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Frames, pairs and contents per split (logged, and handy in tests and reports)."""
    out = {}
    for s in SPLITS:
        part = labels[labels["split"] == s]
        out[s] = {"frames": len(part), "pairs": part["key"].nunique(), "contents": part["content"].nunique()}
    return out


def run_label(
    features_path: str | Path, manifest: str | Path, out: str | Path, cfg: LabelConfig, *, teacher: str
) -> pd.DataFrame:
    """The stage: read, label, split, write ``out`` atomically; returns the table."""
    features = pd.read_parquet(features_path)
    labels = make_labels(features, subjective_table(manifest), cfg, teacher=teacher)
    with atomic_path(out) as tmp:
        labels.to_parquet(tmp, index=False)
    summary = split_summary(labels)
    log.info(
        "wrote %s: teacher %s, %s",
        out,
        teacher,
        ", ".join(f"{s} {v['contents']} contents/{v['pairs']} pairs/{v['frames']} frames" for s, v in summary.items()),
    )
    return labels
