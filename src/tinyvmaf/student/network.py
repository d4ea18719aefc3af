"""The student network, shared by training, export, the gate and the evaluation.

``StudentMLP`` takes raw libvmaf features in canonical-6 order and carries
its own normalisation (train statistics as buffers), so a checkpoint, the
ONNX file and the gate all see one self-contained function
``features[N, 6] → vmaf[N]``: no sidecar statistics file to lose.

The hidden activation is hard-swish by default (``x · min(max(x + 3, 0), 6) / 6``,
torch's ``nn.Hardswish``; ONNX ``Add``, ``Clip``, ``Mul``, ``Div``), or SiLU
or ReLU.  Hard-swish is smooth enough to follow the teacher (a sum of
Gaussians) almost as closely as SiLU, where a ReLU network, piecewise linear,
needs far more pieces (dense-set RMSE 0.012 with SiLU against 0.088 with
ReLU at 64x3) — and, unlike SiLU, it is four correctly rounded IEEE
operations, so every ONNX backend computes it to the same bits (SiLU's
``Sigmoid`` is not correctly rounded and no two libraries share its
polynomial).  See ``tinyvmaf.export.graph`` and ``benchmarks/graph_forms.md``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..contract import N_FEATURES, VMAF_MAX, VMAF_MIN

ACTIVATIONS: dict[str, type[nn.Module]] = {"hardswish": nn.Hardswish, "silu": nn.SiLU, "relu": nn.ReLU}


class StudentMLP(nn.Module):
    """``depth × [Linear(width) → activation (→ Dropout)] → Linear(1)`` over normalised features."""

    def __init__(self, width: int, depth: int, *, activation: str, dropout: float) -> None:
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be >= 1, got width={width} depth={depth}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
        self.width, self.depth, self.activation, self.dropout = width, depth, activation, dropout
        self.register_buffer("mean", torch.zeros(N_FEATURES))
        self.register_buffer("std", torch.ones(N_FEATURES))
        layers: list[nn.Module] = []
        fan_in = N_FEATURES
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            fan_in = width
        layers.append(nn.Linear(fan_in, 1))
        self.net = nn.Sequential(*layers)

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training statistics; a constant feature gets std 1 (no division by zero)."""
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        self.mean.copy_(mean.to(self.mean))
        self.std.copy_(std.to(self.std))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward_unclipped(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features → score, not clipped: training uses this so gradients flow at 0/100."""
        return self.net(self.normalise(x)).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features ``[N, 6]`` → VMAF ``[N]`` clipped to [0, 100], like the teacher."""
        return torch.clamp(self.forward_unclipped(x), VMAF_MIN, VMAF_MAX)

    def linears(self) -> list[nn.Linear]:
        """The Linear layers in forward order (what export writes as fixed-order dot products)."""
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
