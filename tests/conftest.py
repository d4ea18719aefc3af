"""Shared fixtures: an isolated extraction cache for every test, the project config, the golden pairs, the kit."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest

from tinyvmaf.config import Config, compose_conf, validate
from tinyvmaf.config.schema import ExtractConfig

from kit import REPO, Kit, build_kit

# The venv's tools (dvc, tinyvmaf, mlflow) first on PATH, for subprocesses the tests start in-process too.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

#: Netflix's golden pairs, carried in git (assets/golden/netflix): no test may skip for want of them.
GOLDEN_DIR = REPO / "assets" / "golden" / "netflix"


def config(*overrides: str) -> Config:
    """``conf/`` composed with Hydra overrides and validated: what a stage reads from params.yaml."""
    return validate(compose_conf(REPO / "conf", list(overrides)))


def extract_config(**fields) -> ExtractConfig:
    """The project's extract config with some fields replaced (``teachers=[...]``, ``workers=2``, ...).

    ``teachers`` defaults to ``vmaf_v0.6.1`` alone (the extract stage itself passes every configured
    student's teacher, :meth:`Config.teachers`).
    """
    fields["teachers"] = list(fields.get("teachers", ["vmaf_v0.6.1"]))
    return dataclasses.replace(config().extract, **fields)


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
    """The golden folder the project carries; its absence is a broken checkout, not a reason to skip."""
    assert (GOLDEN_DIR / "golden.json").is_file(), f"{GOLDEN_DIR}/golden.json is missing from the checkout"
    return GOLDEN_DIR


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``golden_pair`` over golden.json's pairs."""
    if "golden_pair" not in metafunc.fixturenames:
        return
    pairs = json.loads((GOLDEN_DIR / "golden.json").read_text())["pairs"]
    metafunc.parametrize("golden_pair", pairs, ids=[p["name"] for p in pairs])


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    """A trained, exported student with its labels and golden frames (built once per session)."""
    return build_kit(tmp_path_factory.mktemp("kit"))
