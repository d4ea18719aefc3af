"""The checkpoint contract: what ``models/best.ckpt`` holds and how any stage rebuilds the student from it.

A Lightning checkpoint whose ``hyper_parameters`` carry ``width``, ``depth``,
``activation``, ``dropout`` and ``teacher`` (which fixes the input and the
clip; ``vmaf_v0.6.1`` when absent) at the top level (and the rest of the
training config), and whose ``state_dict`` keys are :class:`StudentMLP`'s,
prefixed ``student.``.  Export, the gate and the evaluation read it through
:func:`load_student`; tests write one with :func:`save_student`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..common.atomic import atomic_path
from ..contract import TEACHER
from .network import StudentMLP

PREFIX = "student."
REQUIRED = ("width", "depth", "activation", "dropout")


def load_student(ckpt_path: str | Path) -> tuple[StudentMLP, dict[str, Any]]:
    """Rebuild the student from a checkpoint; returns it (eval mode) and the hyper-parameters."""
    ckpt = torch.load(Path(ckpt_path), map_location="cpu", weights_only=False)
    hp = dict(ckpt.get("hyper_parameters", {}))
    missing = [k for k in REQUIRED if k not in hp]
    if missing:
        raise KeyError(f"{ckpt_path}: checkpoint hyper_parameters lack {missing}")
    student = StudentMLP(
        int(hp["width"]),
        int(hp["depth"]),
        activation=str(hp["activation"]),
        dropout=float(hp["dropout"]),
        teacher=str(hp.get("teacher") or TEACHER),
    )
    state = {k[len(PREFIX) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(PREFIX)}
    student.load_state_dict(state)
    student.eval()
    return student, hp


def save_student(student: StudentMLP, path: str | Path, **hyper_parameters: Any) -> Path:
    """A minimal checkpoint in the contract's shape (atomic), for tools and tests that train outside Lightning."""
    hp = {
        "width": student.width,
        "depth": student.depth,
        "activation": student.activation,
        "dropout": student.dropout,
        "teacher": student.teacher,
        **hyper_parameters,
    }
    state = {f"{PREFIX}{k}": v.clone() for k, v in student.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"hyper_parameters": hp, "state_dict": state}, tmp)
    return Path(path)
