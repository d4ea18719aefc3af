"""``tinyvmaf model release``: copy the gated model into the package, for a person to commit.

The packaged model (:mod:`tinyvmaf.packaged`) is what ``pip install
tinyvmaf`` users score with, so changing it is an explicit, reviewed step —
never a side effect of ``dvc repro``.  The copy is refused unless the gate
report belongs to exactly that file (sha256) and passed, and the sidecar and
registry agree with the file (``tinyvmaf model check``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..common.atomic import atomic_path, atomic_write_text
from ..packaged import PACKAGED_ID, packaged_dir
from .check import check_dir
from .promote import gate_figures
from .sidecar import REGISTRY_FILE, SCHEMA_VERSION, read_registry


def release(onnx_path: Path, gate_metrics: Path, allowed_ops: tuple[str, ...], dest: Path | None = None) -> list[Path]:
    """Copy ``<id>.onnx`` and its sidecar into ``dest`` (the package), with a ``registry.json`` of that model alone
    (the pipeline's registry lists every student and exact graph, which the package does not ship)."""
    if onnx_path.stem != PACKAGED_ID:
        raise ValueError(f"{onnx_path}: the package ships {PACKAGED_ID}.onnx (export.id), not {onnx_path.name}")
    gate_figures(gate_metrics, onnx_path)  # raises unless the gate passed for these bytes
    problems = check_dir(onnx_path.parent, allowed_ops).errors
    if problems:
        raise ValueError(f"{onnx_path.parent}: `tinyvmaf model check` finds: " + "; ".join(map(str, problems)))
    dest = dest or packaged_dir()
    out = []
    for src in (onnx_path, onnx_path.with_suffix(".json")):
        target = dest / src.name
        with atomic_path(target) as tmp:
            shutil.copyfile(src, tmp)
        out.append(target)
    entry = next(
        (m for m in read_registry(onnx_path.parent / REGISTRY_FILE)["models"] if m.get("id") == onnx_path.stem), None
    )
    if entry is None:
        raise ValueError(
            f"{onnx_path.parent / REGISTRY_FILE} has no entry {onnx_path.stem!r} (run `dvc repro registry`)"
        )
    target = dest / REGISTRY_FILE
    atomic_write_text(target, json.dumps({"schema_version": SCHEMA_VERSION, "models": [entry]}, indent=2) + "\n")
    out.append(target)
    return out
