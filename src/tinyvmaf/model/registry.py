"""The registry stage: ``model/tiny/registry.json`` from every student's passing gate.

Each per-teacher gate writes, when every check passes, the registry entries
of the files it proved (the student and the teacher's exact graph, with
their sha256) into ``metrics/<teacher>/gate.json``; this stage joins them,
sorted by id.  It reads only those gate reports (its DVC dep is the metrics
folder), so it runs after every gate, and a student whose gate failed never
reaches the registry: the failed gate stops ``dvc repro`` before this.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..common.atomic import atomic_write_text
from ..config.schema import Config
from .sidecar import SCHEMA_VERSION


class RegistryError(RuntimeError):
    """A student's gate report is missing, failed or carries no registry entries; the message names it."""


def gated_entries(gate_metrics: Path, student: str) -> list[dict[str, Any]]:
    if not gate_metrics.is_file():
        raise RegistryError(f"{gate_metrics}: no gate report for student {student!r} (run `dvc repro gate@{student}`)")
    doc = json.loads(gate_metrics.read_text())
    if not doc.get("pass"):
        raise RegistryError(f"{gate_metrics}: student {student!r} failed its gate ({doc.get('failed')})")
    entries = doc.get("registry")
    if not entries:
        raise RegistryError(f"{gate_metrics}: the gate passed but lists no registry entries (re-run the gate)")
    return list(entries)


def write_registry(params: Config) -> tuple[Path, list[dict[str, Any]]]:
    """Every configured student's gated entries into ``paths.registry`` (atomic); ids must be unique."""
    entries: list[dict[str, Any]] = []
    for key in params.students:
        entries += gated_entries(Path(params.student(key).paths.gate_metrics), key)
    ids = [e["id"] for e in entries]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise RegistryError(f"registry ids {dup} appear more than once across the students")
    doc = {"schema_version": SCHEMA_VERSION, "models": sorted(entries, key=lambda e: str(e["id"]))}
    path = Path(params.paths.registry)
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return path, doc["models"]


def register(parser: Any) -> None:
    """``tinyvmaf registry``: the DVC registry stage (its own command: it imports nothing but the registry)."""
    from ..config.params import PARAMS_FILE

    parser.add_argument("--params", default=PARAMS_FILE, help="composed params (default: params.yaml)")


def run(args: Any) -> int:
    from ..config.params import load_params

    path, entries = write_registry(load_params(args.params))
    print(f"registry: {len(entries)} model(s) -> {path}")
    return 0
