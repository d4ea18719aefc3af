"""The extract stage under DVC: nothing re-runs when nothing changed; one new pair is one extraction."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from project import journal_lines, make_project, run

pytestmark = pytest.mark.slow


def test_repro_is_cached_and_incremental(tmp_path: Path) -> None:
    proj = make_project(tmp_path / "proj", hrcs=("x264_crf18", "x264_crf38"), frames=8)
    cache = tmp_path / "extract-cache"
    extra = {"TINYVMAF_CACHE_DIR": str(cache)}
    manifest = proj / "data" / "manifest.csv"
    full = manifest.read_text().splitlines()
    assert len(full) == 1 + 3 * 2

    # Start without the last pair, as if the corpus had grown since.
    manifest.write_text("\n".join(full[:-1]) + "\n")
    run(["dvc", "add", "-q", "data"], proj)
    run(["dvc", "repro", "extract"], proj, extra)
    assert len(journal_lines(cache)) == 5
    assert pd.read_parquet(proj / "features.parquet")["key"].nunique() == 5

    # Nothing changed: DVC runs nothing and libvmaf is not called.
    out = run(["dvc", "repro", "extract"], proj, extra)
    assert "didn't change" in out
    assert len(journal_lines(cache)) == 5

    # One more pair: the stage re-runs, and exactly one pair goes through libvmaf.
    manifest.write_text("\n".join(full) + "\n")
    run(["dvc", "add", "-q", "data"], proj)
    run(["dvc", "repro", "extract"], proj, extra)
    lines = journal_lines(cache)
    assert len(lines) == 6
    new_key = full[-1].split(",")[0]
    assert lines[-1].split("\t")[2] == new_key
    df = pd.read_parquet(proj / "features.parquet")
    assert df["key"].nunique() == 6
    assert (df.groupby("key").size() == 8).all()
