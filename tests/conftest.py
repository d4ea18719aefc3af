"""Shared fixtures: an isolated extraction cache for every test, and the Netflix golden pairs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

GOLDEN_ENV = "TINYVMAF_GOLDEN_DIR"
#: ``<repo>/../shared/golden/netflix``: the golden pairs live beside the checkout, not in it.
DEFAULT_GOLDEN_DIR = Path(__file__).resolve().parents[2] / "shared" / "golden" / "netflix"


def golden_root() -> Path:
    """Where the golden pairs are: ``$TINYVMAF_GOLDEN_DIR`` or the default beside the checkout."""
    return Path(os.environ.get(GOLDEN_ENV) or DEFAULT_GOLDEN_DIR)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def _cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tinyvmaf-cache")


@pytest.fixture(autouse=True)
def cache_dir(_cache_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A session-wide temporary ``TINYVMAF_CACHE_DIR`` (autouse: no test touches the repo's cache).

    Tests that count extractions point the variable at a fresh folder of their own.
    """
    monkeypatch.setenv("TINYVMAF_CACHE_DIR", str(_cache_root))
    return _cache_root


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The golden folder; absent, the test fails in CI (CI=true) and is skipped locally."""
    root = golden_root()
    if not (root / "golden.json").is_file():
        msg = f"golden pairs not found: {root / 'golden.json'} (set {GOLDEN_ENV})"
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return root


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``golden_pair`` over golden.json's pairs (one placeholder when the file is absent)."""
    if "golden_pair" not in metafunc.fixturenames:
        return
    path = golden_root() / "golden.json"
    pairs = json.loads(path.read_text())["pairs"] if path.is_file() else [None]
    metafunc.parametrize("golden_pair", pairs, ids=[p["name"] if p else "golden-missing" for p in pairs])
