"""The student network, shared by training, export, the gate and scoring.

``StudentMLP`` takes raw libvmaf features in canonical-6 order and carries
its own normalisation (train-split mean/std as buffers), so a checkpoint,
the ONNX file and the gate all see one self-contained function
``features[N, 6] → vmaf[N]`` — no sidecar statistics file to lose.

Checkpoint contract (``models/best.ckpt``, a Lightning checkpoint):
``hyper_parameters`` holds ``width``, ``depth``, ``dropout`` (and the rest of
the training config); ``state_dict`` keys are this module's, prefixed
``student.``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

N_FEATURES = 6
VMAF_MIN, VMAF_MAX = 0.0, 100.0


class StudentMLP(nn.Module):
    """``depth × [Linear(width) → ReLU → Dropout] → Linear(1)`` over normalised features."""

    def __init__(self, width: int, depth: int, dropout: float = 0.1) -> None:
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be >= 1, got width={width} depth={depth}")
        self.width, self.depth, self.dropout = width, depth, dropout
        self.register_buffer("mean", torch.zeros(N_FEATURES))
        self.register_buffer("std", torch.ones(N_FEATURES))
        layers: list[nn.Module] = []
        fan_in = N_FEATURES
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.ReLU(), nn.Dropout(dropout)]
            fan_in = width
        layers.append(nn.Linear(fan_in, 1))
        self.net = nn.Sequential(*layers)

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store train-split statistics; a constant feature gets std 1 (no division by zero)."""
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        self.mean.copy_(mean.to(self.mean))
        self.std.copy_(std.to(self.std))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward_unclipped(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features → score, not clipped: training uses this so gradients flow at 0/100."""
        return self.forward_normalised(self.normalise(x))

    def forward_normalised(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features ``[N, 6]`` → VMAF ``[N]`` clipped to [0, 100], like the teacher."""
        return torch.clamp(self.forward_unclipped(x), VMAF_MIN, VMAF_MAX)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def load_student(ckpt_path: str | Path) -> tuple[StudentMLP, dict]:
    """Rebuild the student from a checkpoint; returns it (eval mode) and the hyper-parameters."""
    ckpt = torch.load(Path(ckpt_path), map_location="cpu", weights_only=False)
    hp = dict(ckpt.get("hyper_parameters", {}))
    missing = [k for k in ("width", "depth") if k not in hp]
    if missing:
        raise KeyError(f"{ckpt_path}: checkpoint hyper_parameters lack {missing}")
    student = StudentMLP(int(hp["width"]), int(hp["depth"]), float(hp.get("dropout", 0.1)))
    prefix = "student."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    student.load_state_dict(state)
    student.eval()
    return student, hp
