"""The label stage: content-grouped deterministic splits, soft/clip labels, the MOS → 0-100 mapping."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tinyvmaf.cli import main as cli_main
from tinyvmaf.config import ConfigError, compose_text
from tinyvmaf.config.schema import LabelConfig as _LabelConfig
from tinyvmaf.contract import FEATURES
from tinyvmaf.label.stage import (
    LabelError,
    assign_splits,
    make_labels,
    mos_to_100,
    run_label,
    split_counts,
    subjective_table,
)
from tinyvmaf.teacher.spec import load_spec

from conftest import config
from kit import REPO
from synth import TEACHER, synthetic_features, write_manifest


def LabelConfig(*, salt: str = "tinyvmaf-v1", val: float = 0.1, test: float = 0.1) -> _LabelConfig:  # noqa: N802
    """The label section of the project config with these values (validated as params.yaml would be)."""
    return config(f"label.split.salt={salt}", f"label.split.val={val}", f"label.split.test={test}").label


def _contents(n: int) -> list[str]:
    return [f"src{i:03d}" for i in range(n)]


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return synthetic_features(n_contents=10, n_hrcs=3, n_frames=4, seed=3)


def test_every_content_lands_in_exactly_one_split(features: pd.DataFrame, tmp_path: Path) -> None:
    manifest = write_manifest(features, tmp_path / "manifest.csv")
    labels = make_labels(features, subjective_table(manifest), LabelConfig(val=0.2, test=0.2), teacher=TEACHER)
    per_content = labels.groupby("content")["split"].nunique()
    assert (per_content == 1).all(), per_content[per_content > 1]
    per_pair = labels.groupby("key")["split"].nunique()
    assert (per_pair == 1).all()
    contents = {s: set(labels.loc[labels["split"] == s, "content"]) for s in ("train", "val", "test")}
    assert contents["train"].isdisjoint(contents["val"])
    assert contents["train"].isdisjoint(contents["test"])
    assert contents["val"].isdisjoint(contents["test"])
    assert {len(v) for v in contents.values()} == {6, 2}  # 10 contents: 6 / 2 / 2
    assert set(labels["split"]) == {"train", "val", "test"}


def test_split_is_deterministic_and_salted() -> None:
    contents = _contents(40)
    cfg = LabelConfig(val=0.1, test=0.1, salt="a").split
    first = assign_splits(contents, cfg)
    again = assign_splits(list(reversed(contents)) * 2, LabelConfig(val=0.1, test=0.1, salt="a").split)
    assert first == again  # independent of order and repetition (rows arrive per frame)
    other = assign_splits(contents, LabelConfig(val=0.1, test=0.1, salt="b").split)
    assert other != first  # the salt redraws the split


def test_split_is_pinned_across_machines() -> None:
    """A literal expectation (sha256, no RNG): changing the scheme must be deliberate, it reshuffles every corpus."""
    out = assign_splits(list("abcdefghij"), LabelConfig(val=0.2, test=0.2, salt="tinyvmaf-v1").split)
    assert sorted(c for c, s in out.items() if s == "test") == ["c", "f"]
    assert sorted(c for c, s in out.items() if s == "val") == ["e", "j"]


@pytest.mark.parametrize(
    ("n", "val", "test", "expected"),
    [
        (20, 0.1, 0.2, (14, 2, 4)),
        (100, 0.1, 0.1, (80, 10, 10)),
        (12, 0.1, 0.1, (10, 1, 1)),
        (3, 0.1, 0.1, (1, 1, 1)),  # fewer than 1/fraction contents: still one in val and in test
        (5, 0.01, 0.01, (3, 1, 1)),
    ],
)
def test_split_fractions(n: int, val: float, test: float, expected: tuple[int, int, int]) -> None:
    assert split_counts(n, val, test) == expected
    out = assign_splits(_contents(n), LabelConfig(val=val, test=test).split)
    got = tuple(sum(1 for s in out.values() if s == name) for name in ("train", "val", "test"))
    assert got == expected


def test_fewer_than_three_contents_is_an_error() -> None:
    with pytest.raises(LabelError, match="at least 3"):
        assign_splits(["only", "two"], LabelConfig().split)
    with pytest.raises(LabelError, match="no content for train"):
        assign_splits(_contents(4), LabelConfig(val=0.45, test=0.45).split)


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.1), (0.1, 1.0), (0.5, 0.5), (-0.1, 0.1)])
def test_bad_fractions_are_rejected(val: float, test: float) -> None:
    with pytest.raises(ConfigError, match=r"label\.split\."):
        LabelConfig(val=val, test=test)


def test_mos100_mapping() -> None:
    assert mos_to_100(1.0, None) == 0.0
    assert mos_to_100(5.0, None) == 100.0
    assert mos_to_100(3.0, None) == 50.0
    assert mos_to_100(4.2, None) == pytest.approx(80.0)
    assert mos_to_100(None, 72.5) == 72.5
    assert mos_to_100(None, 109.3) == 109.3  # Netflix DMOS above 100 stays as is
    assert mos_to_100(2.0, 40.0) == 40.0  # DMOS wins when both are given
    assert math.isnan(mos_to_100(None, None))
    with pytest.raises(LabelError, match="1-5"):
        mos_to_100(80.0, None)  # a 0-100 score in the mos column


def test_labels_table_contract(features: pd.DataFrame, tmp_path: Path) -> None:
    keys = list(features["key"].drop_duplicates())
    rows = ["key,content,ref,dist,mos,dmos"]
    for i, key in enumerate(keys):
        content = features.loc[features["key"] == key, "content"].iloc[0]
        mos, dmos = ("4.6", "") if i == 0 else ("", "95.5") if i == 1 else ("", "")
        rows.append(f"{key},{content},r.y4m,d.mkv,{mos},{dmos}")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    feats_path = tmp_path / "features.parquet"
    features.to_parquet(feats_path, index=False)
    out = tmp_path / "labels.parquet"
    run_label(feats_path, manifest, out, LabelConfig(val=0.2, test=0.2), teacher=TEACHER)

    labels = pd.read_parquet(out)
    assert not list(tmp_path.glob(".labels.parquet.*"))  # atomic: no temp file left behind
    # the teacher's features renamed from libvmaf's keys to the spec's short names, in the spec's order
    short = {f"integer_{f}": f for f in FEATURES}
    assert list(labels.columns[:10]) == ["key", "content", "frame", *FEATURES, TEACHER]
    for col in features.columns:
        pd.testing.assert_series_equal(labels[short.get(col, col)], features[col], check_names=False)
    assert labels["label"].dtype == np.float64
    np.testing.assert_array_equal(labels["label"].to_numpy(), features[TEACHER].to_numpy())
    clip = labels.groupby("key")["label"].transform("mean")
    np.testing.assert_allclose(labels["clip_label"], clip, rtol=0, atol=1e-12)
    assert labels.groupby("key")["clip_label"].nunique().eq(1).all()

    first = labels[labels["key"] == keys[0]].iloc[0]
    assert first["mos"] == 4.6 and math.isnan(first["dmos"]) and first["mos100"] == pytest.approx(90.0)
    second = labels[labels["key"] == keys[1]].iloc[0]
    assert math.isnan(second["mos"]) and second["dmos"] == 95.5 and second["mos100"] == 95.5
    rest = labels[~labels["key"].isin(keys[:2])]
    assert rest[["mos", "dmos", "mos100"]].isna().all().all()
    assert set(labels["split"]) == {"train", "val", "test"}


def test_teacher_choice_and_errors(features: pd.DataFrame, tmp_path: Path) -> None:
    manifest = write_manifest(features, tmp_path / "manifest.csv")
    subj = subjective_table(manifest)
    # NEG reads its features under other keys (its gain limits): the label stage takes those columns
    neg = load_spec("vmaf_v0.6.1neg")
    other = features.assign(
        **{"vmaf_v0.6.1neg": features[TEACHER] - 1.0},
        **{k: features[f"integer_{n}"] + 0.5 for k, n in zip(neg.keys, neg.order, strict=True)},
    )
    labels = make_labels(other, subj, LabelConfig(val=0.2, test=0.2), teacher="vmaf_v0.6.1neg")
    np.testing.assert_array_equal(labels["label"], other["vmaf_v0.6.1neg"])
    np.testing.assert_array_equal(labels["adm2"], other[neg.keys[neg.order.index("adm2")]])
    assert TEACHER not in labels.columns and "integer_adm2" not in labels.columns
    with pytest.raises(LabelError, match="vmaf_4k_v0.6.1"):
        make_labels(features, subj, LabelConfig(), teacher="vmaf_4k_v0.6.1")
    with pytest.raises(LabelError, match="cambi_hrs_1080_cmxv_17_vlt_0.06"):  # a key the features lack, by name
        make_labels(features.assign(**{"vmaf_v1.0.16_3d0h": 1.0}), subj, LabelConfig(), teacher="vmaf_v1.0.16_3d0h")
    with pytest.raises(LabelError, match="not in the manifest"):
        make_labels(features, subj.iloc[1:], LabelConfig(val=0.2, test=0.2), teacher=TEACHER)
    with pytest.raises(LabelError, match="no frames"):
        stale = features[features["key"] != features["key"].iloc[0]]
        make_labels(stale, subj, LabelConfig(val=0.2, test=0.2), teacher=TEACHER)
    nan = features.copy()
    nan.loc[3, TEACHER] = np.nan
    with pytest.raises(LabelError, match="non-finite"):
        make_labels(nan, subj, LabelConfig(val=0.2, test=0.2), teacher=TEACHER)


def test_mos_out_of_scale_names_the_pair(features: pd.DataFrame, tmp_path: Path) -> None:
    key = features["key"].iloc[0]
    manifest = write_manifest(features, tmp_path / "manifest.csv", mos={key: 77.0})
    with pytest.raises(LabelError, match=key):
        subjective_table(manifest)


def test_cli_reads_params(features: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    features.to_parquet("features.parquet", index=False)
    write_manifest(features, Path("data/manifest.csv"))
    params = compose_text(REPO / "conf", ["label.split.salt=s1", "label.split.val=0.3", "label.split.test=0.3"])
    Path("params.yaml").write_text(params)
    assert cli_main(["label"]) == 0
    labels = pd.read_parquet("labels/vmaf_v0.6.1.parquet")  # the first student's
    assert labels.groupby("split")["content"].nunique().to_dict() == {"test": 3, "train": 4, "val": 3}
    assert cli_main(["label", "--out", "again.parquet"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet("again.parquet"), labels)  # same params → same file
