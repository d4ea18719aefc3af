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
from once import build_once, xdist_worker

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
    """A trained, exported student with its labels and golden frames (built once per run, see ``once``)."""

    def build(root: Path) -> dict[str, str]:
        return {f.name: str(getattr(build_kit(root), f.name)) for f in dataclasses.fields(Kit)}

    return Kit(**{k: Path(v) for k, v in build_once(tmp_path_factory, "kit", build).items()})


# --------------------------------------------------------------------------- pytest-xdist (`make test`: -n 2)

#: Test modules handed to the xdist workers first, in this order (``--dist loadscope``, one module at a time to
#: whichever worker runs short, ``--no-loadscope-reorder``); the rest follow in collection order. The longest
#: start first so that the two workers end together; one that needs the shared pipeline (``servers.pipeline``,
#: a full ``dvc repro``) builds it first thing, while the other starts on modules that do not need it.
XDIST_FIRST = (
    "tests/pipeline/test_experiments.py",  # builds the pipeline, then dvc exp run and the queued sweep
    "tests/gate/test_fidelity_needs_samples.py",  # builds the kit, then two pipelines side by side
    "tests/pipeline/test_reproducible.py",
    "tests/config/test_params.py",
    "tests/train/test_training.py",
    "tests/pipeline/test_stage_deps.py",
    "tests/pipeline/test_scale_out.py",
    "tests/pipeline/test_mlflow_ui.py",
    "tests/train/test_mlflow_server.py",
    "tests/pipeline/test_remote.py",
    "tests/evaluate/test_evaluate.py",
    "tests/train/test_train_interrupt.py",
    "tests/gate/test_gate.py",
    "tests/pipeline/test_secrets.py",
    "tests/model/test_wheel.py",
    "tests/model/test_model_tools.py",
    "tests/extract/test_extract_interrupt.py",
    "tests/pipeline/test_incremental_extract.py",
    "tests/pipeline/test_cpu_pinning.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist, the modules of :data:`XDIST_FIRST` first (a stable sort: each module's own order stays)."""
    if xdist_worker() is None:
        return
    rank = {module: i for i, module in enumerate(XDIST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


#: ``servers.TIMINGS`` of each xdist worker, collected by the controller.
_WORKER_TIMINGS: dict[str, float] = {}


def _timings() -> dict[str, float]:
    servers = sys.modules.get("servers")  # imported by the modules that use its fixtures
    return dict(servers.TIMINGS) if servers is not None else {}


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)  # set in an xdist worker only
    if workeroutput is not None:
        workeroutput["tinyvmaf_timings"] = _timings()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # noqa: ANN001 - xdist's WorkerController (controller side)
    _WORKER_TIMINGS.update(getattr(node, "workeroutput", {}).get("tinyvmaf_timings", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    timings = {**_timings(), **_WORKER_TIMINGS}
    if timings:
        terminalreporter.section("team workflow timings")
        for label, seconds in timings.items():
            terminalreporter.write_line(f"{seconds:8.1f} s  {label}")
