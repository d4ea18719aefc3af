"""Parity: does the ONNX file compute the checkpoint's function, on every backend, to float32 accuracy?

The reference is the student itself — :class:`StudentMLP` with the
checkpoint's weights — evaluated in float64, where rounding is a million
times finer than anything a float32 backend does.  ONNX Runtime (CPU) and
``onnx.reference.ReferenceEvaluator`` (an independent implementation of
every op, in NumPy) run the exported graph on the test rows, the corner
rows of the data and ``gate.parity.random_rows`` random rows of the
training box, and each is compared with that reference.

**Distance.** |backend − reference| in ULPs *of the output's working
scale*: units of the float32 spacing at ``gate.parity.ulp_scale`` (100, the
top of VMAF's range: 1 ULP = 2⁻¹⁷ ≈ 7.6e-6).  Not bit-pattern ULPs: the last
Gemm sums terms of size ~64 whose cancellation can leave an output near 0,
where float32 spacing is tiny; a 7.6e-6 difference there — the rounding of
one of those terms — reads as 1,024 bit-pattern ULPs while being exactly as
accurate as the same difference at VMAF 64.  A fixed scale makes one number
mean one thing over the whole range.

**Bound.** Per row, a forward error bound from the standard model of
floating-point arithmetic (Higham, *Accuracy and Stability of Numerical
Algorithms*, §3.1), evaluated alongside the float64 forward pass, for any
summation order and with or without fused multiply-adds (``u = 2⁻²⁴``,
``γ_n = nu/(1 − nu)``):

* normalisation ``(x − m)/s``: two roundings, ``e_z ≤ γ_2 |z|``;
* a Gemm with fan-in ``k`` on inputs with error ``e``:
  ``e_a ≤ |W| e + γ_{k+1} (|W| (|h| + e) + |b|)``;
* ReLU: exact and 1-Lipschitz, ``e ← e_a``;
* SiLU as ``Mul(a, Sigmoid(a))``: SiLU's slope is at most ``σ(a) + |a|/4``
  near ``a``, and the backend's own kernel errs by at most
  ``ε_rel |a| + ε_abs``, so ``e ≤ (σ(a) + |a|/4 + e_a/4) e_a + ε_rel (|a| + e_a) + ε_abs``;
* Squeeze is exact and Clip 1-Lipschitz.

``ε_rel, ε_abs`` are the only measured quantities: each backend's SiLU, as
the graph spells it (a runtime may fuse ``Mul(a, Sigmoid(a))`` into one
kernel with its own approximation), against float64 on a dense grid over
[-100, 100] (2·10⁶ points), doubled.  A backend
must stay inside the bound on every row (``*_bound_ratio ≤ 1``) and under
``gate.parity.max_ulp`` anywhere (a fixed ceiling that says what the
bound typically comes to).  Mutations of the graph — a missing activation
or Clip, swapped mean/std, a transposed weight, permuted features — land
far outside both (the tests check each by name).

**Diagnostics, not gated.** The pinned-order figure of earlier versions:
the graph's ops in float32, each Gemm summed ``k``-ascending with fused
multiply-adds (what MLAS does for these shapes), against ONNX Runtime in
bit-pattern ULPs — 0 for ReLU students, a few for SiLU ones (Sigmoid is not
correctly rounded and no two libraries share its polynomial) — and torch's
own float32 forward against ONNX Runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..common.checks import CheckResult, Criterion
from ..common.ulp import max_ulp
from ..contract import FEATURES, INPUT_NAME, OUTPUT_NAME, VMAF_MAX, VMAF_MIN

if TYPE_CHECKING:
    import onnx
    import torch

    from ..student.network import StudentMLP

U32 = 2.0**-24
SIGMOID_GRID = (-100.0, 100.0, 2_000_001)
SIGMOID_SAFETY = 2.0


def gamma(n: int) -> float:
    return n * U32 / (1.0 - n * U32)


def ulp_at(scale: float) -> float:
    """The float32 spacing at ``scale``."""
    return float(np.spacing(np.float32(scale)))


def _sigmoid64(a: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(a)


def reference_with_bound(
    student: StudentMLP, x: np.ndarray, act_error: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The student in float64 on ``x`` (clipped like the graph) and the per-row float32 error bound."""
    xs = np.asarray(x, dtype=np.float32).astype(np.float64)
    mean = student.mean.detach().double().numpy()
    std = student.std.detach().double().numpy()
    z = (xs - mean) / std
    h, e = z, gamma(2) * np.abs(z)
    linears = student.linears()
    for i, lin in enumerate(linears):
        w = lin.weight.detach().double().numpy()
        b = lin.bias.detach().double().numpy()
        aw = np.abs(w)
        a = h @ w.T + b
        e = e @ aw.T + gamma(w.shape[1] + 1) * ((np.abs(h) + e) @ aw.T + np.abs(b))
        if i == len(linears) - 1:
            h = a
            break
        if student.activation == "relu":
            h = np.maximum(a, 0.0)
        else:
            s = _sigmoid64(a)
            h = a * s
            eps_rel, eps_abs = act_error
            e = (s + np.abs(a) / 4 + e / 4) * e + eps_rel * (np.abs(a) + e) + eps_abs
    out = np.clip(h[:, 0], VMAF_MIN, VMAF_MAX)
    return out, e[:, 0]


def activation_graph(activation: str) -> onnx.ModelProto:
    """The exported activation on its own (``Relu``, or ``Sigmoid`` then ``Mul``), to measure a backend's kernel.

    Measured as the graph exports it, not op by op: a runtime may fuse
    ``Mul(a, Sigmoid(a))`` into one kernel (ONNX Runtime's QuickGelu fusion)
    with its own approximation.
    """
    from onnx import TensorProto, helper

    if activation == "relu":
        nodes = [helper.make_node("Relu", ["a"], ["y"])]
    else:
        nodes = [helper.make_node("Sigmoid", ["a"], ["s"]), helper.make_node("Mul", ["a", "s"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "activation",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def activation_error(activation: str, backend: str) -> tuple[float, float]:
    """``(ε_rel, ε_abs)`` with |backend act(a) − float64 act(a)| ≤ ε_rel·|a| + ε_abs on the grid, doubled.

    ε_rel is the worst error relative to |a| over |a| ≥ 1, ε_abs the worst
    absolute error over |a| < 1.  ReLU is exact: (0, 0).
    """
    if activation == "relu":
        return 0.0, 0.0
    grid = np.linspace(*SIGMOID_GRID, dtype=np.float32)
    model = activation_graph(activation)
    if backend == "onnxruntime":
        from ..model.runtime import ort_session

        (y,) = ort_session(model.SerializeToString()).run(None, {"a": grid})
    else:
        from onnx.reference import ReferenceEvaluator

        with np.errstate(over="ignore", invalid="ignore"):
            (y,) = ReferenceEvaluator(model).run(None, {"a": grid})
    a64 = grid.astype(np.float64)
    err = np.abs(np.asarray(y, np.float64) - a64 * _sigmoid64(a64))
    big = np.abs(a64) >= 1.0
    return SIGMOID_SAFETY * float(np.max(err[big] / np.abs(a64[big]))), SIGMOID_SAFETY * float(np.max(err[~big]))


def reference_evaluator_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    # Its Sigmoid evaluates exp() on both branches of a where(); the discarded branch may overflow.
    with np.errstate(over="ignore", invalid="ignore"):
        (out,) = ReferenceEvaluator(model).run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, np.float32)})
    return np.asarray(out, dtype=np.float32)


def edge_rows(all_features: np.ndarray, motion2_large: float) -> tuple[np.ndarray, list[str]]:
    """Rows at the corners of the data: all features at min/max, each one at min/max, motion2 0 and large."""
    lo, hi = all_features.min(axis=0), all_features.max(axis=0)
    med = np.median(all_features, axis=0)
    rows, names = [lo.copy(), hi.copy()], ["all_min", "all_max"]
    for j, name in enumerate(FEATURES):
        for tag, value in (("min", lo[j]), ("max", hi[j])):
            r = med.copy()
            r[j] = value
            rows.append(r)
            names.append(f"{name}_{tag}")
    m = FEATURES.index("motion2")
    for tag, value in (("zero", 0.0), ("large", motion2_large)):
        for base_name, base in (("median", med), ("all_min", lo), ("all_max", hi)):
            r = base.copy()
            r[m] = value
            rows.append(r)
            names.append(f"motion2_{tag}_{base_name}")
    return np.asarray(rows, dtype=np.float32), names


def random_rows(n: int, seed: int, quality_max: float, motion2_max: float) -> np.ndarray:
    """Uniform rows over the training box (the space the student claims)."""
    rng = np.random.default_rng([seed, 17])
    x = rng.uniform(0.0, quality_max, (n, len(FEATURES)))
    x[:, FEATURES.index("motion2")] = rng.uniform(0.0, motion2_max, n)
    return x.astype(np.float32)


def canonical_linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``h @ weight.T + bias`` in float32, ``k`` ascending, fused multiply-add, then the bias add."""
    import torch

    acc = torch.zeros(h.shape[0], weight.shape[0], dtype=torch.float32)
    hd, wd = h.to(torch.float64), weight.to(torch.float64)
    for k in range(weight.shape[1]):
        acc = (acc.to(torch.float64) + hd[:, k : k + 1] * wd[:, k]).to(torch.float32)
    return acc + bias.to(torch.float32)


def pinned_order_float32(student: StudentMLP, x: np.ndarray) -> np.ndarray:
    """The graph's ops in float32 in the graph's order, Gemm pinned to MLAS's summation order (a diagnostic)."""
    import torch

    linears = student.linears()
    with torch.no_grad():
        h = (torch.from_numpy(np.ascontiguousarray(x, np.float32)) - student.mean) / student.std
        for i, lin in enumerate(linears):
            h = canonical_linear(h, lin.weight, lin.bias)
            if i < len(linears) - 1:
                h = torch.relu(h) if student.activation == "relu" else h * torch.sigmoid(h)
        out = torch.clamp(h.squeeze(-1), VMAF_MIN, VMAF_MAX)
    return out.numpy().astype(np.float32)


def torch_forward(student: StudentMLP, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return student(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy().astype(np.float32)


def parity_check(
    model: onnx.ModelProto,
    student: StudentMLP,
    x_rows: dict[str, np.ndarray],
    *,
    max_ulp_scaled: float,
    ulp_scale: float,
) -> CheckResult:
    """ORT and the reference evaluator against the float64 student, in ULPs at ``ulp_scale``, inside the bound."""
    from ..model.runtime import ort_session

    x = np.concatenate(list(x_rows.values())).astype(np.float32)
    eps = {b: activation_error(student.activation, b) for b in ("onnxruntime", "reference_evaluator")}
    unit = ulp_at(ulp_scale)
    session = ort_session(model.SerializeToString())
    (ort_out,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
    outputs = {"onnxruntime": np.asarray(ort_out, np.float32), "reference_evaluator": reference_evaluator_run(model, x)}
    res = CheckResult("parity")
    details: dict = {
        "rows": {k: len(v) for k, v in x_rows.items()},
        "ulp_scale": ulp_scale,
        "ulp_unit": unit,
        "activation_error_rel_abs": eps,
        "reference": "StudentMLP from the checkpoint, float64",
    }
    for name, out in outputs.items():
        ref, bound = reference_with_bound(student, x, eps[name])
        diff = np.abs(out.astype(np.float64) - ref)
        diff = np.where(np.isnan(out), np.inf, diff)
        ratio = diff / np.maximum(bound, 1e-300)
        worst = int(np.argmax(diff))
        res.criteria += [
            Criterion(f"{name}_vs_student64_ulp", float(diff.max() / unit), max_ulp_scaled, "<="),
            Criterion(f"{name}_bound_ratio", float(ratio.max()), 1.0, "<="),
        ]
        details[name] = {
            "max_abs": float(diff.max()),
            "max_ulp": float(diff.max() / unit),
            "bound_max_ulp": float(bound.max() / unit),
            "bound_median_ulp": float(np.median(bound) / unit),
            "worst_row": {"index": worst, "reference": float(ref[worst]), "backend": float(out[worst])},
        }
    ort = outputs["onnxruntime"]
    others = {
        "pinned_order_float32": pinned_order_float32(student, x),
        "torch_float32_forward": torch_forward(student, x),
        "reference_evaluator": outputs["reference_evaluator"],
    }
    details["ungated"] = {}
    for name, out in others.items():
        details["ungated"][f"{name}_vs_onnxruntime_bit_ulp"] = max_ulp(out, ort, nan="propagate")
        scaled = float(np.max(np.abs(out.astype(np.float64) - ort.astype(np.float64))) / unit) if len(x) else 0.0
        details["ungated"][f"{name}_vs_onnxruntime_ulp"] = scaled
    res.details = details
    return res
