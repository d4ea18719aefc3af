"""Synthetic corpora for the label/train tests: plausible libvmaf features scored by the real teacher.

The features are drawn per content (motion level, texture) and per HRC
(a quality level), with per-frame jitter, in the ranges libvmaf reports;
the labels come from :mod:`tinyvmaf.teacher` (``vmaf_v0.6.1``'s SVR in
float64, the function libvmaf computes), so the student learns the real
teacher surface, only on made-up inputs.  Small and fast: no media, no FFmpeg.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tinyvmaf.contract import FEATURES, TEACHER


def teacher_scores(x: np.ndarray) -> np.ndarray:
    """``vmaf_v0.6.1`` per frame for canonical-6 rows."""
    from tinyvmaf.teacher import load_teacher

    return load_teacher(TEACHER).predict(np.asarray(x, dtype=np.float64))


def synthetic_features(
    n_contents: int = 6, n_hrcs: int = 4, n_frames: int = 12, seed: int = 0, *, keys: bool = True
) -> pd.DataFrame:
    """A features.parquet-shaped table: ``key, content, frame``, v0.6.1's features, teacher column.

    ``keys``: the features under libvmaf's keys (``integer_adm2``, as ``features.parquet`` holds them);
    False: under the short names (as a student's labels hold them).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_contents):
        motion, texture = rng.uniform(0.5, 20.0), rng.uniform(0.0, 1.0)
        for h in range(n_hrcs):
            q = (h + rng.uniform(0.2, 0.8)) / n_hrcs
            for f in range(n_frames):
                qf = float(np.clip(q + 0.03 * rng.standard_normal(), 0.02, 1.0))
                m = 0.0 if f == 0 else max(0.0, motion * (1 + 0.2 * rng.standard_normal()))
                adm2 = min(1.0, 0.6 + 0.4 * qf ** (0.6 + 0.4 * texture))
                vif = [min(1.0, qf ** ((1.6 / (s + 1)) * (0.7 + 0.6 * texture))) for s in range(4)]
                rows.append((f"c{c:02d}_h{h}", f"c{c:02d}", f, adm2, *vif, m))
    df = pd.DataFrame(rows, columns=["key", "content", "frame", *FEATURES])
    df["frame"] = df["frame"].astype("int32")
    df[TEACHER] = teacher_scores(df[list(FEATURES)].to_numpy(np.float64))
    return df.rename(columns={f: f"integer_{f}" for f in FEATURES}) if keys else df


def write_manifest(features: pd.DataFrame, path: Path, *, mos: dict[str, float] | None = None) -> Path:
    """A manifest CSV naming the features' pairs (media paths are never opened by the label stage)."""
    pairs = features[["key", "content"]].drop_duplicates()
    lines = ["key,content,ref,dist,mos"]
    for key, content in pairs.itertuples(index=False):
        m = "" if mos is None or key not in mos else repr(float(mos[key]))
        lines.append(f"{key},{content},ref/{content}.y4m,dist/{key}.mkv,{m}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def synthetic_mos(features: pd.DataFrame, seed: int = 0) -> dict[str, float]:
    """A 1-5 MOS per pair that disagrees with the teacher (offset and noise), so a MOS term has a pull."""
    rng = np.random.default_rng(seed)
    clip = features.groupby("key")[TEACHER].mean()  # works on either naming
    return {k: float(np.clip(1 + 4 * (v / 100) ** 1.5 + 0.2 * rng.standard_normal(), 1, 5)) for k, v in clip.items()}


def write_labels(tmp: Path, *, n_contents: int = 6, n_hrcs: int = 4, n_frames: int = 12, mos: bool = False) -> Path:
    """Run the real label stage on a synthetic corpus; returns ``tmp/labels.parquet``."""
    from tinyvmaf.label.stage import run_label

    from conftest import config

    feats = synthetic_features(n_contents, n_hrcs, n_frames)
    feats_path = tmp / "features.parquet"
    feats.to_parquet(feats_path, index=False)
    manifest = write_manifest(feats, tmp / "data" / "manifest.csv", mos=synthetic_mos(feats) if mos else None)
    out = tmp / "labels.parquet"
    run_label(feats_path, manifest, out, config("label.split.val=0.2", "label.split.test=0.2").label, teacher=TEACHER)
    return out
