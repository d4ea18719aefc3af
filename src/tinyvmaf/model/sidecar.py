"""libvmaf's tiny-model files beside the ONNX: the sidecar ``<id>.json`` and ``registry.json``.

What the consumers read (from the libvmaf fork's sources and its successor):

* the fork's C loader: ``kind`` (``fr``/``nr``/``filter``), ``name``,
  ``input_name``, ``output_name``, ``onnx_opset``, ``quant_mode`` (anything
  but ``fp32`` makes it load ``<id>.int8.onnx`` instead, so we write
  ``fp32``);
* the fork's exporter writes ``id, kind, onnx, opset, sha256, input_name,
  input_shape [-1, 6], output_name, output_shape [-1], features``;
* the successor's loader takes the feature order from ``features`` and
  standardises the inputs with ``input_mean``/``input_std`` *unless*
  ``onnx_has_scaler: true``.  Our scaler is inside the graph, so the
  sidecar says ``onnx_has_scaler: true`` and carries no mean/std at all:
  nothing can scale twice.

``registry.json`` is ``{"schema_version": 1, "models": [...]}``; an entry
needs ``id`` (``^[a-z0-9][a-z0-9_-]*$``), ``kind``, ``onnx`` and ``sha256``
of the ONNX bytes, optionally ``opset, license, license_url, description,
notes``.  Nothing here records a git commit or a clock: these files are DVC
outputs and must be reproducible from their inputs (the commit goes to
MLflow at promotion).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ..common.atomic import atomic_write_text
from ..contract import FEATURES, HEADS_NAME, INPUT_NAME, OUTPUT_NAME

REGISTRY_FILE = "registry.json"
SCHEMA_VERSION = 1
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
KINDS = ("fr", "nr", "filter")
REGISTRY_REQUIRED = ("id", "kind", "onnx", "sha256")
REGISTRY_OPTIONAL = ("opset", "license", "license_url", "description", "notes")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_sidecar(
    *,
    model_id: str,
    onnx_bytes: bytes,
    opset: int,
    teacher: str,
    data_version: str,
    heldout: dict[str, Any],
    architecture: dict[str, Any],
    training_box: dict[str, Any],
    license: str,
    description: str,
    features: list[str] | None = None,
    clip: tuple[float, float] = (0.0, 100.0),
    exact: bool = False,
    statistics: dict[str, Any] | None = None,
    n_heads: int = 1,
) -> dict[str, Any]:
    """The sidecar of one of our exported models (see the module docstring for each key's reader).

    ``features``: what the graph takes, in order: the canonical-6 short
    names for the v0.6.1 family (the fork's convention, unchanged), libvmaf's
    full per-frame keys for any other teacher (``tinyvmaf score`` computes
    exactly those).  ``exact``: the teacher itself as a graph (the reference
    row), not a student.
    """
    if not ID_RE.match(model_id):
        raise ValueError(f"model id {model_id!r} must match {ID_RE.pattern}")
    features = list(FEATURES) if features is None else list(features)
    what = "the teacher itself (exact SVR graph)" if exact else "a distilled student"
    if n_heads > 1:  # a bootstrap model: the heads out, the statistics derive from them (``statistics``)
        out_name, out_shape = HEADS_NAME, [-1, n_heads]
        notes = (
            f"{description}. Raw libvmaf features in, heads [N, {n_heads}] out: the raw component scores of "
            f"{teacher}; score, bagging, stddev and the 95% interval derive from them as 'statistics' says "
            f"(clip = mean of frames, per statistic); {what}: normalisation is inside the graph."
        )
    else:
        out_name, out_shape = OUTPUT_NAME, [-1]
        notes = (
            f"{description}. Raw libvmaf features in, per-frame VMAF in [{clip[0]:g}, {clip[1]:g}] out "
            f"(clip = mean of frames); {what}: normalisation, correction and clipping are inside the graph."
        )
    return {
        "id": model_id,
        "name": model_id,
        "kind": "fr",
        "onnx": f"{model_id}.onnx",
        "opset": opset,
        "onnx_opset": opset,
        "sha256": sha256_bytes(onnx_bytes),
        "quant_mode": "fp32",
        "input_name": INPUT_NAME,
        "input_shape": [-1, len(features)],
        "output_name": out_name,
        "output_shape": out_shape,
        **({"outputs": [f"head_{k:02d}" for k in range(n_heads)]} if n_heads > 1 else {}),
        **({"statistics": statistics} if statistics else {}),
        "features": features,
        "onnx_has_scaler": True,
        "teacher": teacher,
        **({"exact": True} if exact else {}),
        "data_version": data_version,
        "heldout": heldout,
        "architecture": architecture,
        "training_box": training_box,
        "license": license,
        "notes": notes,
    }


def registry_entry(sidecar: dict[str, Any], *, license_url: str, description: str) -> dict[str, Any]:
    entry = {k: sidecar[k] for k in REGISTRY_REQUIRED}
    entry.update(
        {
            "opset": sidecar["opset"],
            "license": sidecar["license"],
            "license_url": license_url,
            "description": description,
            "notes": sidecar["notes"],
        }
    )
    return entry


def read_registry(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"schema_version": SCHEMA_VERSION, "models": []}
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
        raise ValueError(f"{path}: not a registry ({{'schema_version': 1, 'models': [...]}})")
    return doc


def upsert_registry(path: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Add or replace ``entry`` (by id) in the registry at ``path``; entries sorted by id; written atomically."""
    doc = read_registry(path)
    models = [m for m in doc["models"] if m.get("id") != entry["id"]] + [entry]
    doc = {"schema_version": SCHEMA_VERSION, "models": sorted(models, key=lambda m: str(m.get("id")))}
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return doc


def write_sidecar(path: Path, sidecar: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(sidecar, indent=2) + "\n")
