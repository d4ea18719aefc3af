"""The student network, shared by training, export, the gate and the evaluation.

``StudentMLP`` takes raw libvmaf features in its teacher's order (the
teacher spec: canonical-6 for v0.6.1, ``cambi, speed_chroma_uv, adm3,
motion3`` for v1.0.16) and carries its own normalisation (train statistics
as buffers), so a checkpoint, the ONNX file and the gate all see one
self-contained function ``features[N, F] → vmaf[N]``: no sidecar statistics
file to lose.  The output is clipped to the teacher's own ``score_clip``
(``[0, 110]`` for ``vmaf_v1.0.16_3d0h_2160``).

Where the teacher has libvmaf's chroma correction (v1.0.16: a
``speed_chroma_uv`` of exactly 0 becomes ``c·(1 − adm3)``), the student
applies it exactly, in front of the network, as the teacher does: the jump
at 0 is then no business of the MLP.  The "is zero" test is built from
clamps and products only (:func:`is_nonzero`), the form the ONNX graph
writes with ``Clip``/``Mul`` (the libvmaf fork's loader has no ``Equal`` or
``Where``).

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

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..contract import TEACHER, VMAF_MAX, VMAF_MIN

#: ``is_nonzero``'s scales: Clip(s, 0, 1)·2^126 lifts the smallest float32 (2^-149) to 2^-23, ·2^24 past 1.
NZ_SCALE_1, NZ_SCALE_2 = 2.0**126, 2.0**24

ACTIVATIONS: dict[str, type[nn.Module]] = {"hardswish": nn.Hardswish, "silu": nn.SiLU, "relu": nn.ReLU}


def is_nonzero(s: torch.Tensor) -> torch.Tensor:
    """1.0 where ``s`` > 0, 0.0 where ``s`` == 0 (``s`` >= 0), exactly, from clamps and products."""
    a = torch.clamp(torch.clamp(s, 0.0, 1.0) * NZ_SCALE_1, 0.0, 1.0)
    return torch.clamp(a * NZ_SCALE_2, 0.0, 1.0)


@dataclass(frozen=True)
class StudentInterface:
    """What a student's teacher fixes: feature order, output clip, chroma correction (columns and c)."""

    teacher: str
    order: tuple[str, ...]
    clip: tuple[float, float]
    correction: tuple[int, int, float] | None  # (speed_chroma column, adm3 column, c)
    heads: tuple[str, ...] = ("score",)  # a bootstrap teacher's: head_00 … head_20 (raw components)

    @property
    def n_features(self) -> int:
        return len(self.order)

    @property
    def n_heads(self) -> int:
        return len(self.heads)

    @property
    def targets(self) -> tuple[str, ...]:
        """The label/sample columns the output learns: ``label`` (the score), or the heads' own columns."""
        return ("label",) if self.n_heads == 1 else self.heads

    @property
    def output_clip(self) -> tuple[float, float]:
        """What the network's output is clamped to: the score clip, or nothing for raw bootstrap heads."""
        return self.clip if self.n_heads == 1 else (-math.inf, math.inf)


def interface_of(teacher: str) -> StudentInterface:
    """The interface of ``teacher``'s students, read from its carried model file."""
    from ..teacher.spec import load_spec

    spec = load_spec(teacher)
    lo, hi = spec.clip if spec.clip is not None else (VMAF_MIN, VMAF_MAX)
    c = spec.chroma_correction
    correction = None
    if c:
        speed = [i for i, f in enumerate(spec.features) if f.extractor == "speed_chroma"]
        adm3 = [i for i, f in enumerate(spec.features) if "adm3" in f.name]
        if len(speed) != 1 or len(adm3) != 1:
            raise ValueError(f"{teacher}: chroma correction needs one speed_chroma and one adm3 feature")
        correction = (speed[0], adm3[0], float(c))
    return StudentInterface(teacher, spec.order, (float(lo), float(hi)), correction, spec.heads)


class StudentMLP(nn.Module):
    """``depth × [Linear(width) → activation (→ Dropout)] → Linear(heads)`` over normalised features.

    One head for a plain teacher (the score); one per component for a
    bootstrap teacher (21 for ``vmaf_b_v0.6.3``), sharing the hidden layers.
    """

    def __init__(self, width: int, depth: int, *, activation: str, dropout: float, teacher: str = TEACHER) -> None:
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be >= 1, got width={width} depth={depth}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
        self.width, self.depth, self.activation, self.dropout = width, depth, activation, dropout
        self.interface = interface_of(teacher)
        self.teacher = teacher
        n_features = self.interface.n_features
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        layers: list[nn.Module] = []
        fan_in = n_features
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            fan_in = width
        layers.append(nn.Linear(fan_in, self.interface.n_heads))
        self.net = nn.Sequential(*layers)

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training statistics; a constant feature gets std 1 (no division by zero)."""
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        self.mean.copy_(mean.to(self.mean))
        self.std.copy_(std.to(self.std))

    @property
    def n_features(self) -> int:
        return self.interface.n_features

    @property
    def clip(self) -> tuple[float, float]:
        return self.interface.clip

    def correct(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's chroma correction on raw rows (identity for a teacher without one)."""
        if self.interface.correction is None:
            return x
        si, gi, c = self.interface.correction
        s = x[:, si]
        nz = is_nonzero(s)
        fixed = s * nz + (1.0 - nz) * (c - c * x[:, gi])
        return torch.cat([x[:, :si], fixed[:, None], x[:, si + 1 :]], dim=1)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    @property
    def n_heads(self) -> int:
        return self.interface.n_heads

    def forward_unclipped(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features → score ``[N]`` (or heads ``[N, H]``), not clipped: training uses this so gradients
        flow at the clip bounds."""
        out = self.net(self.normalise(self.correct(x)))
        return out.squeeze(-1) if self.n_heads == 1 else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features ``[N, F]`` → VMAF ``[N]`` clipped like the teacher (its file's ``score_clip``), or a
        bootstrap teacher's raw component scores ``[N, H]`` (unclipped: the statistics derive from them)."""
        lo, hi = self.interface.output_clip
        return torch.clamp(self.forward_unclipped(x), lo, hi)

    def linears(self) -> list[nn.Linear]:
        """The Linear layers in forward order (what export writes as fixed-order dot products)."""
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
