"""Expensive session fixtures built once per test run, also under pytest-xdist (``make test`` runs ``-n 2``).

Without xdist a session fixture is built once anyway.  With it, every worker is
its own session and would build its own copy (the shared pipeline's full
``dvc repro``, the kit's training).  :func:`build_once` is xdist's documented
recipe: the first worker to ask builds into the run's shared temporary folder
(``getbasetemp().parent``) while holding a file lock, and writes a JSON marker
describing the result; a worker that asks later (or waits on the lock) reads
the marker.  A build that fails writes the error into the marker, so every
worker that needs the fixture fails with it (the lock is an ``flock``: a
builder that dies outright releases it too, and the next worker builds).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def xdist_worker() -> str | None:
    """``gw0``, ``gw1``, ... in an xdist worker; None in a plain pytest run."""
    return os.environ.get("PYTEST_XDIST_WORKER")


def build_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], dict[str, Any]]
) -> dict[str, Any]:
    """``build(root)`` once per test run, ``root`` a fresh folder; returns what it returned (JSON-able).

    Without xdist: ``build(tmp_path_factory.mktemp(name))``, as a plain session fixture.
    """
    worker = xdist_worker()
    if worker is None:
        return build(tmp_path_factory.mktemp(name))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # one per run, shared by its workers
    marker = shared / f"{name}.json"
    t0 = time.monotonic()
    with FileLock(str(shared / f"{name}.lock")):
        waited = time.monotonic() - t0
        if marker.is_file():
            doc = json.loads(marker.read_text())
        else:
            root = shared / name
            shutil.rmtree(root, ignore_errors=True)  # a builder that died part-way (the lock passed on)
            root.mkdir()
            try:
                doc = {"built_by": worker, "value": build(root)}
            except BaseException as exc:
                error = "".join(traceback.format_exception(exc))
                marker.write_text(json.dumps({"built_by": worker, "error": error}))
                raise
            marker.write_text(json.dumps(doc))
            return doc["value"]
    if "error" in doc:
        pytest.fail(f"session fixture {name!r} failed to build in worker {doc['built_by']}:\n{doc['error']}")
    if waited > 1:
        print(f"{worker}: waited {waited:.0f} s for {name!r} (built by {doc['built_by']})")
    return doc["value"]
