"""Clip-level agreement with subjective scores: pooling, the split, skips, and an imported Netflix-format corpus."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pandas as pd
import pytest

from tinyvmaf.common.metrics import pearson, spearman
from tinyvmaf.contract import FEATURES, TEACHER
from tinyvmaf.corpus.manifest import read_manifest
from tinyvmaf.corpus.nflx_import import import_nflx
from tinyvmaf.evaluate.subjective import MIN_CLIPS, markdown_table, subjective_metrics
from tinyvmaf.extract.stage import run_extract
from tinyvmaf.label.stage import run_label
from tinyvmaf.model.runtime import load_tiny_model
from tinyvmaf.packaged import default_model_path

from conftest import config, extract_config


def _frames(clips: dict[str, tuple[str, str, float, list[float]]], *, dmos: bool = True) -> pd.DataFrame:
    """A label-stage-shaped table: ``{key: (content, split, mos100, frame labels)}``, one row per frame."""
    rows = []
    for key, (content, split, m100, labels) in clips.items():
        for i, y in enumerate(labels):
            rows.append(
                {
                    "key": key,
                    "content": content,
                    "frame": i,
                    "split": split,
                    "label": y,
                    "mos": math.nan if dmos or math.isnan(m100) else 1 + 4 * m100 / 100,
                    "dmos": m100 if dmos else math.nan,
                    "mos100": m100,
                }
            )
    return pd.DataFrame.from_records(rows)


# Test clips whose frame means are exactly their mos100 (a perfect predictor), frames of uneven count and spread.
CLIPS = {
    "a_1": ("a", "test", 20.0, [10.0, 30.0]),
    "a_2": ("a", "test", 55.0, [50.0, 55.0, 60.0]),
    "b_1": ("b", "test", 90.0, [90.0]),
    "b_2": ("b", "test", 70.0, [60.0, 70.0, 80.0, 70.0]),
    "c_1": ("c", "test", math.nan, [5.0, 5.0]),  # unscored: left out
    "t_1": ("t", "train", 40.0, [0.0, 0.0]),  # another split: left out (and it would break the perfect fit)
    "t_2": ("t", "train", 10.0, [99.0, 99.0]),
    "v_1": ("v", "val", 50.0, [1.0, 2.0]),
}


def test_perfect_predictor_has_plcc_one_and_rmse_zero() -> None:
    df = _frames(CLIPS)
    m = subjective_metrics(df, {"teacher": df["label"].to_numpy()})
    assert m["split"] == "test" and m["scale"] == "dmos"
    assert (m["n_clips"], m["n_contents"]) == (4, 2)
    f = m["predictors"]["teacher"]
    assert f == {"plcc": 1.0, "srocc": 1.0, "rmse": 0.0}
    json.dumps(m, allow_nan=False)  # committed JSON and MLflow: no NaN anywhere


def test_pooling_is_the_mean_of_frames_per_key() -> None:
    df = _frames(CLIPS)
    # A per-frame offset that cancels within each clip changes nothing pooled; a max or median pooling would differ.
    wiggle = np.where(df["frame"] % 2 == 0, 7.0, -7.0)
    wiggle[df["key"].isin(["a_2", "b_1"]).to_numpy()] = 0.0  # odd frame counts: no cancellation there
    m = subjective_metrics(df, {"wiggled": df["label"].to_numpy() + wiggle})
    assert m["predictors"]["wiggled"] == {"plcc": 1.0, "srocc": 1.0, "rmse": 0.0}
    # A constant shift is pure RMSE: correlations stay 1.
    m = subjective_metrics(df, {"shifted": df["label"].to_numpy() + 5.0})
    assert m["predictors"]["shifted"] == {"plcc": 1.0, "srocc": 1.0, "rmse": 5.0}


def test_shuffled_predictor_disagrees_and_matches_reference_formulas() -> None:
    df = _frames(CLIPS)
    pooled = {"a_1": 20.0, "a_2": 55.0, "b_1": 90.0, "b_2": 70.0}
    target = np.array(list(pooled.values()))
    shuffled = dict(zip(pooled, [90.0, 20.0, 55.0, 70.0], strict=True))  # a permutation of the clip scores
    pred = df["key"].map(shuffled).fillna(0.0).to_numpy()
    m = subjective_metrics(df, {"shuffled": pred})
    f = m["predictors"]["shuffled"]
    p = np.array(list(shuffled.values()))
    assert f["plcc"] == pytest.approx(pearson(p, target), abs=1e-6) and f["plcc"] < 0.5
    assert f["srocc"] == pytest.approx(spearman(p, target), abs=1e-6) and f["srocc"] < 0.5
    assert f["rmse"] == pytest.approx(math.sqrt(np.mean((p - target) ** 2)), abs=1e-6) and f["rmse"] > 10


def test_only_the_chosen_split_counts() -> None:
    df = _frames(CLIPS)
    m = subjective_metrics(df, {"teacher": df["label"].to_numpy()}, split="train")
    assert "skipped" in m and "'train'" in m["skipped"] and "2 clip(s)" in m["skipped"]
    # Move the val clip and one train clip to test: now they count, and the fit is no longer perfect.
    df.loc[df["key"].isin(["v_1", "t_2"]), "split"] = "test"
    m = subjective_metrics(df, {"teacher": df["label"].to_numpy()})
    assert m["n_clips"] == 6 and m["n_contents"] == 4
    assert m["predictors"]["teacher"]["plcc"] < 1.0 and m["predictors"]["teacher"]["rmse"] > 0
    with pytest.raises(ValueError, match="split 'dev'"):
        subjective_metrics(df, {}, split="dev")


def test_skipped_below_three_scored_clips_and_when_scores_are_constant() -> None:
    df = _frames({k: v for k, v in CLIPS.items() if k in ("a_1", "a_2", "c_1")})
    m = subjective_metrics(df, {"teacher": df["label"].to_numpy()})
    assert m.keys() == {"skipped"}
    assert "'test'" in m["skipped"] and "2 clip(s)" in m["skipped"] and f"at least {MIN_CLIPS}" in m["skipped"]
    assert "not measured" in markdown_table(m) and m["skipped"] in markdown_table(m)
    # Every subjective score the same: correlations undefined, so skipped rather than NaN.
    same = _frames({f"x_{i}": ("x", "test", 100.0, [90.0 + i]) for i in range(4)})
    m = subjective_metrics(same, {"teacher": same["label"].to_numpy()})
    assert m.keys() == {"skipped"} and "100" in m["skipped"]
    # A predictor constant over the clips: skipped on its own, the others still measured.
    df = _frames(CLIPS)
    m = subjective_metrics(df, {"teacher": df["label"].to_numpy(), "flat": np.full(len(df), 42.0)})
    assert m["predictors"]["flat"].keys() == {"skipped"} and "42" in m["predictors"]["flat"]["skipped"]
    assert m["predictors"]["teacher"]["plcc"] == 1.0
    json.dumps(m, allow_nan=False)
    assert "| flat | 4 | — | — | — |" in markdown_table(m)


def test_scale_and_input_errors() -> None:
    df = _frames(CLIPS, dmos=False)
    assert subjective_metrics(df, {})["scale"] == "mos"
    df.loc[df["key"] == "a_1", "dmos"] = 20.0
    assert subjective_metrics(df, {})["scale"] == "mixed"
    assert subjective_metrics(df.drop(columns=["mos", "dmos"]), {})["scale"] == "unknown"
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['mos100'\]"):
        subjective_metrics(df.drop(columns=["mos100"]), {})
    with pytest.raises(ValueError, match="'student' has shape"):
        subjective_metrics(df, {"student": np.zeros(len(df) - 1)})
    bad = df["label"].to_numpy().copy()
    bad[(df["key"] == "b_2").to_numpy()] = np.nan
    with pytest.raises(ValueError, match=r"'student' has 4 non-finite.*b_2"):
        subjective_metrics(df, {"student": bad})
    bad[:] = df["label"].to_numpy()
    bad[(df["key"] == "t_1").to_numpy()] = np.nan  # a NaN outside the scored clips is not this metric's business
    assert subjective_metrics(df, {"student": bad})["predictors"]["student"]["plcc"] == 1.0
    df.loc[df.index[0], "mos100"] = 21.0
    with pytest.raises(ValueError, match=r"mos100 differs .*a_1"):
        subjective_metrics(df, {})


def test_markdown_table_rows() -> None:
    df = _frames(CLIPS)
    m = subjective_metrics(df, {"teacher": df["label"].to_numpy(), "student": df["label"].to_numpy() + 1.0})
    text = markdown_table(m)
    assert "test split: 4 clip(s) of 2 content(s), dmos scale" in text
    lines = text.splitlines()
    head = lines.index("| predictor | clips | PLCC | SROCC | RMSE |")
    assert lines[head + 2 :] == ["| teacher | 4 | 1.0000 | 1.0000 | 0.00 |", "| student | 4 | 1.0000 | 1.0000 | 1.00 |"]


# End to end: an imported Netflix-format corpus with DMOS, real libvmaf features, the real label stage. ------------

W, H, N = 176, 144, 4
SOURCES = {  # content name -> lavfi source: three contents, the fewest a train/val/test split takes
    "Bars": "testsrc2",
    "Grid": "testsrc",
    "Fractal": "mandelbrot",
}
DISTORTIONS = {  # asset suffix -> (filter, dmos); None: the reference scored against itself
    "ref": (None, 100.0),
    "blur": ("boxblur=2:1", 62.5),
    "noise": ("noise=alls=40:allf=t", 35.0),
    "unscored": ("boxblur=1:1", None),
}


def _render(out: Path, source: str, vf: str | None) -> Path:
    chain = f"{source}=size={W}x{H}:rate=25" + (f",{vf}" if vf else "") + ",format=yuv420p"
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", chain]
    subprocess.run([*cmd, "-frames:v", str(N), "-f", "rawvideo", str(out)], check=True)
    return out


def test_imported_nflx_corpus_scores_reach_the_metric(tmp_path: Path) -> None:
    """Features here come from a real extraction (libvmaf on 12 tiny raw clips, about a second), not a made-up table."""
    ref_dir, dis_dir = tmp_path / "media" / "ref", tmp_path / "media" / "dis"
    ref_dir.mkdir(parents=True)
    dis_dir.mkdir(parents=True)
    refs, dis = [], []
    for cid, (name, source) in enumerate(SOURCES.items()):
        _render(ref_dir / f"{name}.yuv", source, None)
        refs.append(f"  {{'content_id': {cid}, 'content_name': '{name}', 'path': ref_dir + '/{name}.yuv'}},")
        for j, (suffix, (vf, dmos)) in enumerate(DISTORTIONS.items()):
            if vf is None:
                path = f"ref_dir + '/{name}.yuv'"
            else:
                _render(dis_dir / f"{name}_{suffix}.yuv", source, vf)
                path = f"dis_dir + '/{name}_{suffix}.yuv'"
            score = "" if dmos is None else f"'dmos': {dmos + cid}, "  # content-specific, so contents differ
            dis.append(f"  {{'asset_id': {10 * cid + j}, 'content_id': {cid}, {score}'path': {path}}},")
    dataset = tmp_path / "NFLX_tiny.py"
    dataset.write_text(
        f"dataset_name = 'tiny'\nyuv_fmt = 'yuv420p'\nwidth = {W}\nheight = {H}\n"
        + "ref_videos = [\n" + "\n".join(refs) + "\n]\n"
        + "dis_videos = [\n" + "\n".join(dis) + "\n]\n"
    )  # fmt: skip
    manifest = tmp_path / "data" / "manifest.csv"
    assert import_nflx(dataset, ref_dir, dis_dir, manifest) == 12
    pairs = read_manifest(manifest)
    assert sum(p.dmos is not None for p in pairs) == 9 and all(p.mos is None for p in pairs)

    features = tmp_path / "features.parquet"
    run_extract(manifest, features, extract_config(teachers=[TEACHER], workers=4), progress=False)
    labels = run_label(features, manifest, tmp_path / "labels.parquet", config().label, teacher=TEACHER)

    teacher = labels["label"].to_numpy()
    x = labels[list(FEATURES)].to_numpy(np.float64)
    student = load_tiny_model(default_model_path()).predict(x).astype(np.float64)
    m = subjective_metrics(labels, {"teacher": teacher, "student": student})

    test_content = labels.loc[labels["split"] == "test", "content"].unique()
    assert len(test_content) == 1  # three contents: one per split
    (cid,) = [i for i, n in enumerate(SOURCES) if n == test_content[0]]
    assert m["split"] == "test" and m["scale"] == "dmos"
    assert m["n_clips"] == 3 and m["n_contents"] == 1  # the unscored distortion left out
    # The scores the dataset file gave are the ones compared with: the teacher's pooled means are the clip labels.
    test = labels[labels["split"] == "test"].groupby("key")[["clip_label", "mos100"]].first().dropna()
    assert sorted(test["mos100"]) == sorted(d + cid for _, d in DISTORTIONS.values() if d is not None)
    pooled, target = test["clip_label"].to_numpy(), test["mos100"].to_numpy()
    f = m["predictors"]["teacher"]
    assert f["plcc"] == pytest.approx(pearson(pooled, target), abs=1e-6)
    assert f["srocc"] == pytest.approx(spearman(pooled, target), abs=1e-6)
    assert f["rmse"] == pytest.approx(math.sqrt(np.mean((pooled - target) ** 2)), abs=1e-5)
    for name in ("teacher", "student"):
        assert set(m["predictors"][name]) == {"plcc", "srocc", "rmse"}
        assert all(math.isfinite(v) for v in m["predictors"][name].values())
    # The packaged student tracks its teacher: what a viewer would see of them is the same.
    assert m["predictors"]["student"]["srocc"] == f["srocc"]
    assert m["predictors"]["student"]["rmse"] == pytest.approx(f["rmse"], abs=0.5)
    json.dumps(m, allow_nan=False)
    assert "| student | 3 |" in markdown_table(m)
