"""Extraction under interruption and concurrency: SIGKILL mid-run, garbage in the cache, two writers at once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tinyvmaf.config import compose_text

from kit import REPO
from project import finish, journal_lines, start

pytest_plugins = ["servers"]
pytestmark = pytest.mark.slow

N_PAIRS = 9  # servers.small_corpus: 3 sources x 3 rungs


def extract(corpus: Path, out: Path, cache: Path, log: Path) -> subprocess.Popen:
    """`tinyvmaf extract` on the small corpus, one pair at a time, in its own process group."""
    cmd = [sys.executable, "-m", "tinyvmaf.cli", "extract", "--params", str(corpus.parent / "params.yaml")]
    cmd += ["--manifest", str(corpus / "manifest.csv"), "--out", str(out), "--workers", "1", "--no-progress"]
    return start(cmd, None, log, {"TINYVMAF_CACHE_DIR": str(cache)})


def entries(cache: Path) -> dict[Path, object]:
    """Every cache entry, parsed (a torn or corrupt one fails here)."""
    return {p: json.loads(p.read_text())["frames"] for p in sorted((cache / "pairs").rglob("*.json"))}


@pytest.fixture(scope="module")
def corpus(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interrupt")
    data = root / "data"
    shutil.copytree(small_corpus, data)
    (root / "params.yaml").write_text(compose_text(REPO / "conf"))
    return data


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """An uninterrupted extraction, in its own cache."""
    tmp = tmp_path_factory.mktemp("reference")
    out = tmp / "features.parquet"
    finish(extract(corpus, out, tmp / "cache", tmp / "log"), tmp / "log")
    assert len(journal_lines(tmp / "cache")) == N_PAIRS
    return pd.read_parquet(out)


def test_sigkill_mid_extract_then_rerun_reuses_every_finished_pair(
    corpus: Path, reference: pd.DataFrame, tmp_path: Path
) -> None:
    cache, out, log = tmp_path / "cache", tmp_path / "features.parquet", tmp_path / "log"
    proc = extract(corpus, out, cache, log)
    deadline = time.monotonic() + 120
    while len(journal_lines(cache)) < 2:
        assert proc.poll() is None, f"finished before it could be killed:\n{log.read_text()}"
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = entries(cache)  # every entry on disk parses: none is torn
    assert 2 <= len(done) < N_PAIRS
    assert not out.exists()  # the parquet is written at the end, atomically
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".features.parquet.")]

    before = len(journal_lines(cache))
    finish(extract(corpus, out, cache, log), log)
    assert len(journal_lines(cache)) - before == N_PAIRS - len(done)  # only the unfinished pairs ran
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference)


def test_a_garbage_cache_entry_is_recomputed_with_a_warning(
    corpus: Path, reference: pd.DataFrame, tmp_path: Path
) -> None:
    cache, out, log = tmp_path / "cache", tmp_path / "features.parquet", tmp_path / "log"
    finish(extract(corpus, out, cache, log), log)
    victim = sorted(entries(cache))[3]
    victim.write_bytes(b"\x00\xffnot json at all")
    other = sorted((cache / "pairs").rglob("*.json"))[5]
    other.write_text('{"frames": []}')  # valid JSON, no frames: as useless as garbage
    before = len(journal_lines(cache))
    finish(extract(corpus, out, cache, log), log)
    text = log.read_text()
    assert f"{victim}: unreadable cache entry" in text and f"{other}: unreadable cache entry" in text
    assert len(journal_lines(cache)) - before == 2
    assert len(entries(cache)) == N_PAIRS
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference)


def test_two_extractions_on_one_cache_at_once(corpus: Path, reference: pd.DataFrame, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    runs = [extract(corpus, tmp_path / f"f{i}.parquet", cache, tmp_path / f"log{i}") for i in (0, 1)]
    for i, proc in enumerate(runs):
        finish(proc, tmp_path / f"log{i}")
    assert len(entries(cache)) == N_PAIRS
    assert N_PAIRS <= len(journal_lines(cache)) <= 2 * N_PAIRS  # whole lines only, however they interleave
    for i in (0, 1):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"f{i}.parquet"), reference)
