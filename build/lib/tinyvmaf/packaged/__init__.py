"""The gated student that ships with the package: ``tinyvmaf score`` works after ``pip install``, no checkout.

The files here are copies of a gated model (``model/tiny/<id>.onnx`` and its
sidecar), put here by ``tinyvmaf model release`` and committed by a person;
``dvc repro`` never touches them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: The id of the packaged model (its file stem).
PACKAGED_ID = "vmaf_tiny_fr_v2_nflx"


def packaged_dir() -> Path:
    return Path(str(resources.files(__name__)))


def default_model_path() -> Path:
    """The packaged ONNX file; an error that says what to do when the package carries none."""
    path = packaged_dir() / f"{PACKAGED_ID}.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: this install carries no packaged model (pass --model PATH.onnx)")
    return path
