"""Parity: does every backend compute the same bits, and are they the checkpoint's function to float32 accuracy?

The exported graph fixes the order of every operation and each one is a
single IEEE rounding (:mod:`tinyvmaf.export.graph`: dot products as
products and a pairwise sum, hard-swish as ``Add``/``Clip``/``Mul``/``Div``),
so two correct backends agree to the bit.  ONNX Runtime (CPU, with its graph
optimiser on and off) and ``onnx.reference.ReferenceEvaluator`` (an
independent implementation of every op, in NumPy) run the exported graph on
the test rows, the corner rows of the data, ``gate.parity.random_rows``
random rows of the training box and as many again from
``gate.parity.unseen_seed`` (rows no stage has seen).

**Distance.** |a − b| in ULPs *of the output's working scale*: units of the
float32 spacing at ``gate.parity.ulp_scale`` (64: 1 ULP = 2⁻¹⁷ ≈ 7.6e-6,
the spacing over VMAF [64, 128)).  Not bit-pattern ULPs: the last layer sums
terms of size ~64 whose cancellation can leave an output near 0, where
float32 spacing is tiny; a 7.6e-6 difference there reads as 1,024
bit-pattern ULPs while being exactly as accurate as the same difference at
VMAF 64.  A fixed scale makes one number mean one thing over the whole range.

**Gated: backends against each other.** ONNX Runtime against the reference
evaluator (``onnxruntime_vs_reference_evaluator_ulp``), and ONNX Runtime
without graph optimisation against the reference evaluator, each at most
``gate.parity.max_ulp`` (2) on every row.  Measured: 0 — the same bits
(``benchmarks/graph_forms.md``; a ``Gemm`` graph differs by 4–5 ULPs).

**Gated: backends against the float64 student.** The reference is
:class:`StudentMLP` with the checkpoint's weights evaluated in float64,
where rounding is a million times finer than anything a float32 backend
does.  Each backend must stay inside a per-row forward error bound
(``*_bound_ratio ≤ 1``) and under ``gate.parity.student_max_ulp``
(``*_vs_student64_ulp``, a fixed ceiling).  The bound, from the standard
model of floating-point arithmetic (Higham, *Accuracy and Stability of
Numerical Algorithms*, §3.1; ``u = 2⁻²⁴``, ``γ_n = nu/(1 − nu)``), follows
the graph's own order, evaluated alongside the float64 forward pass:

* normalisation ``(x − m)/s``: two roundings, ``e_z ≤ γ_2 |z|``;
* a dense layer with fan-in ``k`` on inputs with error ``e``, summed
  pairwise: every product is rounded once and then passes at most ``d − 1``
  additions (``d`` = 1 + ⌈levels⌉ + leftovers + bias,
  :func:`tinyvmaf.export.graph.pairwise_plan`: 8 for ``k`` = 64, 5 for
  ``k`` = 6), so ``e_a ≤ |W| e + γ_d (|W| (|h| + e) + |b|)`` — against
  ``γ_{k+1}`` for a sum in an unknown order;
* hard-swish ``h(a) = a·clip(a + 3, 0, 6)/6`` as ``Add``, ``Clip``,
  ``Mul``, ``Div``: ``|h'| ≤ (2 min(|a|, 3) + 3)/6`` (≤ 1.5) and the three
  roundings add at most ``γ_3 |â|`` (``Clip`` is exact, and outside
  (−3, 3) the rounded ``a + 3`` clips to the same 0 or 6), so
  ``e ≤ max(1, (2 min(|a| + e_a, 3) + 3)/6) e_a + γ_3 (|a| + e_a)``;
* ReLU: exact and 1-Lipschitz, ``e ← e_a``;
* SiLU (older students, not exported for the gate to pass: ``Sigmoid`` is
  not correctly rounded) as ``Mul(a, Sigmoid(a))``: slope at most
  ``σ(a) + |a|/4`` near ``a``, and the backend's own kernel errs by at
  most ``ε_rel |a| + ε_abs``, measured on a dense grid over [-100, 100]
  and doubled, so ``e ≤ (σ(a) + |a|/4 + e_a/4) e_a + ε_rel (|a| + e_a) + ε_abs``;
* Squeeze is exact and Clip 1-Lipschitz.

Mutations of the graph — a missing activation or Clip, swapped mean/std, a
transposed weight, permuted features, one weight nudged by 1e-4 — land far
outside the bound and the ceiling (the tests check each by name).

**Diagnostics, not gated.** The graph's ops emulated in NumPy float32 in the
graph's order (a third implementation: 0 bit-pattern ULPs from ONNX
Runtime), and torch's own float32 forward (its ``addmm`` sums in its own
order) against ONNX Runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..common.checks import CheckResult, Criterion
from ..common.ulp import max_ulp
from ..contract import FEATURES, HEADS_NAME, INPUT_NAME, OUTPUT_NAME
from ..export.graph import pairwise_plan
from ..model.runtime import run_chunked

if TYPE_CHECKING:
    import onnx

    from ..student.network import StudentMLP

U32 = 2.0**-24
SIGMOID_GRID = (-100.0, 100.0, 2_000_001)
SIGMOID_SAFETY = 2.0
#: The backends that run the exported graph (ONNX Runtime with its default optimiser, without it, NumPy's).
BACKENDS = ("onnxruntime", "onnxruntime_unoptimised", "reference_evaluator")


def gamma(n: int) -> float:
    return n * U32 / (1.0 - n * U32)


def ulp_at(scale: float) -> float:
    """The float32 spacing at ``scale``."""
    return float(np.spacing(np.float32(scale)))


def _sigmoid64(a: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(a)


def hardswish64(a: np.ndarray) -> np.ndarray:
    return a * np.clip(a + 3.0, 0.0, 6.0) / 6.0


def reference_with_bound(
    student: StudentMLP, x: np.ndarray, act_error: tuple[float, float] = (0.0, 0.0)
) -> tuple[np.ndarray, np.ndarray]:
    """The student in float64 on ``x`` (clipped like the graph) and the per-row error bound of the exported graph."""
    xs = np.asarray(x, dtype=np.float32).astype(np.float64)
    mean = student.mean.detach().double().numpy()
    std = student.std.detach().double().numpy()
    e_in = np.zeros_like(xs)
    if student.interface.correction is not None:
        # The graph computes c − c·adm3 in float32 (two roundings) where speed_chroma_uv is exactly 0.
        si, gi, c = student.interface.correction
        hit = xs[:, si] == 0.0
        ca = c * xs[:, gi]
        fix = c - ca
        xs = xs.copy()
        xs[hit, si] = fix[hit]
        e_in[:, si] = np.where(hit, (np.abs(ca) + np.abs(fix)) * 2.0**-24, 0.0)
    z = (xs - mean) / std
    h, e = z, gamma(2) * (np.abs(z) + e_in / std) + e_in / std
    linears = student.linears()
    for i, lin in enumerate(linears):
        w = lin.weight.detach().double().numpy()
        b = lin.bias.detach().double().numpy()
        aw = np.abs(w)
        a = h @ w.T + b
        _, depth = pairwise_plan(w.shape[1])
        e = e @ aw.T + gamma(depth) * ((np.abs(h) + e) @ aw.T + np.abs(b))
        if i == len(linears) - 1:
            h = a
            break
        if student.activation == "relu":
            h = np.maximum(a, 0.0)
        elif student.activation == "hardswish":
            h = hardswish64(a)
            slope = np.maximum(1.0, (2.0 * np.minimum(np.abs(a) + e, 3.0) + 3.0) / 6.0)
            e = slope * e + gamma(3) * (np.abs(a) + e)
        else:
            s = _sigmoid64(a)
            h = a * s
            eps_rel, eps_abs = act_error
            e = (s + np.abs(a) / 4 + e / 4) * e + eps_rel * (np.abs(a) + e) + eps_abs
    if student.n_heads > 1:  # a bootstrap's heads: raw, unclipped, [N, H]
        return h, e
    lo, hi = student.clip
    out = np.clip(h[:, 0], lo, hi)
    return out, e[:, 0]


def activation_graph(activation: str) -> onnx.ModelProto:
    """SiLU as the graph exports it (``Sigmoid`` then ``Mul``), on its own, to measure a backend's kernel.

    Measured as the graph exports it, not op by op: a runtime may fuse
    ``Mul(a, Sigmoid(a))`` into one kernel (ONNX Runtime's QuickGelu fusion)
    with its own approximation.
    """
    from onnx import TensorProto, helper

    if activation != "silu":
        raise ValueError(f"only SiLU has a kernel to measure, not {activation!r}")
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
    absolute error over |a| < 1.  ReLU and hard-swish are correctly rounded
    op by op (their rounding is in the bound itself): (0, 0).
    """
    if activation != "silu":
        return 0.0, 0.0
    grid = np.linspace(*SIGMOID_GRID, dtype=np.float32)
    model = activation_graph(activation)
    if backend.startswith("onnxruntime"):
        from ..model.runtime import ort_session

        sess = ort_session(model.SerializeToString(), optimise=backend == "onnxruntime")
        (y,) = sess.run(None, {"a": grid})
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

    ref = ReferenceEvaluator(model)
    # A Sigmoid (older graphs) evaluates exp() on both branches of a where(); the discarded one may overflow.
    with np.errstate(over="ignore", invalid="ignore"):
        return run_chunked(lambda c: ref.run([output_name(model)], {INPUT_NAME: c})[0], x, chunk=4096)


def onnxruntime_run(model: onnx.ModelProto, x: np.ndarray, *, optimise: bool = True) -> np.ndarray:
    from ..model.runtime import ort_session

    session = ort_session(model.SerializeToString(), optimise=optimise)
    return run_chunked(lambda c: session.run([output_name(model)], {INPUT_NAME: c})[0], x)


def output_name(model: onnx.ModelProto) -> str:
    """The graph's one output: ``vmaf`` (a score), or ``heads`` (a bootstrap's raw components)."""
    outs = [o.name for o in model.graph.output]
    return outs[0] if outs in ([OUTPUT_NAME], [HEADS_NAME]) else OUTPUT_NAME


def run_backends(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    """The graph's output on ``x`` from each of :data:`BACKENDS`."""
    return {
        "onnxruntime": onnxruntime_run(model, x),
        "onnxruntime_unoptimised": onnxruntime_run(model, x, optimise=False),
        "reference_evaluator": reference_evaluator_run(model, x),
    }


def scaled_ulp(a: np.ndarray, b: np.ndarray, unit: float) -> np.ndarray:
    """|a − b| per row in units of ``unit``; NaN against a number is infinitely far, NaN against NaN 0."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.isnan(a64), np.isnan(b64)
    with np.errstate(invalid="ignore"):
        d = np.abs(a64 - b64) / unit
    return np.where(na & nb, 0.0, np.where(na | nb, np.inf, d))


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


def generic_edge_rows(all_features: np.ndarray, zero_columns: list[int]) -> tuple[np.ndarray, list[str]]:
    """Corners of the data for any teacher: all at min/max, each feature at its min/max, each zero column at 0."""
    lo, hi = all_features.min(axis=0), all_features.max(axis=0)
    med = np.median(all_features, axis=0)
    rows, names = [lo.copy(), hi.copy()], ["all_min", "all_max"]
    for j in range(all_features.shape[1]):
        for tag, value in (("min", lo[j]), ("max", hi[j])):
            r = med.copy()
            r[j] = value
            rows.append(r)
            names.append(f"f{j}_{tag}")
    for j in zero_columns:
        for base_name, base in (("median", med), ("all_min", lo), ("all_max", hi)):
            r = base.copy()
            r[j] = 0.0
            rows.append(r)
            names.append(f"f{j}_zero_{base_name}")
    return np.asarray(rows, dtype=np.float32), names


def random_rows(n: int, seed: int, quality_max: float, motion2_max: float) -> np.ndarray:
    """Uniform rows over the training box (the space the student claims)."""
    rng = np.random.default_rng([seed, 17])
    x = rng.uniform(0.0, quality_max, (n, len(FEATURES)))
    x[:, FEATURES.index("motion2")] = rng.uniform(0.0, motion2_max, n)
    return x.astype(np.float32)


def graph_order_float32(student: StudentMLP, x: np.ndarray) -> np.ndarray:
    """The exported graph's ops emulated in NumPy float32, op for op and in the graph's order (a diagnostic)."""
    f32 = np.float32
    with np.errstate(all="ignore"):
        x = np.array(x, dtype=f32)
        if student.interface.correction is not None:
            si, gi, c = student.interface.correction
            s = x[:, si]
            a = np.clip(np.clip(s, f32(0), f32(1)) * f32(2.0**126), f32(0), f32(1))
            nz = np.clip(a * f32(2.0**24), f32(0), f32(1))
            x[:, si] = s * nz + (f32(1) - nz) * (f32(c) - f32(c) * x[:, gi])
        h = (x - student.mean.detach().numpy().astype(f32)) / student.std.detach().numpy().astype(f32)
        linears = student.linears()
        for i, lin in enumerate(linears):
            w = lin.weight.detach().numpy().astype(f32)
            b = lin.bias.detach().numpy().astype(f32)
            p = h[:, None, :] * w[None, :, :]  # [N, out, k], each product rounded once
            levels, _ = pairwise_plan(w.shape[1])
            leftovers = []
            for sizes in levels:
                n = sizes[0]
                if len(sizes) == 3:
                    leftovers.append(p[:, :, 2 * n : 2 * n + 1])
                p = p[:, :, :n] + p[:, :, n : 2 * n]
            for c in leftovers:
                p = p + c
            h = p[:, :, 0] + b
            if i == len(linears) - 1:
                break
            if student.activation == "relu":
                h = np.maximum(h, f32(0))
            elif student.activation == "hardswish":
                h = h * np.clip(h + f32(3), f32(0), f32(6)) / f32(6)
            else:
                h = h * (f32(1) / (f32(1) + np.exp(-h)))
        if student.n_heads > 1:
            return h.astype(f32)
        lo, hi = student.clip
        return np.clip(h[:, 0], f32(lo), f32(hi)).astype(f32)


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
    student_max_ulp: float,
) -> CheckResult:
    """Backends against each other (≤ ``max_ulp_scaled``) and against the float64 student (bound and ceiling).

    All distances in ULPs at ``ulp_scale``; ``x_rows`` names each row set (its figures are reported apart).
    """
    x = np.concatenate(list(x_rows.values())).astype(np.float32)
    sets = np.repeat(list(x_rows), [len(v) for v in x_rows.values()])
    eps = {b: activation_error(student.activation, b) for b in BACKENDS}
    unit = ulp_at(ulp_scale)
    outputs = run_backends(model, x)
    res = CheckResult("parity")
    details: dict = {
        "rows": {k: len(v) for k, v in x_rows.items()},
        "ulp_scale": ulp_scale,
        "ulp_unit": unit,
        "activation": student.activation,
        "activation_error_rel_abs": eps,
        "reference": "StudentMLP from the checkpoint, float64",
    }
    ref_eval = outputs["reference_evaluator"]
    for name in ("onnxruntime", "onnxruntime_unoptimised"):
        d = scaled_ulp(outputs[name], ref_eval, unit)
        res.criteria.append(
            Criterion(f"{name}_vs_reference_evaluator_ulp", float(d.max()) if len(d) else 0.0, max_ulp_scaled, "<=")
        )
        details[f"{name}_vs_reference_evaluator"] = {
            "max_ulp_by_set": {k: float(d[sets == k].max()) if np.any(sets == k) else 0.0 for k in x_rows},
            "bit_ulp": max_ulp(outputs[name], ref_eval, nan="propagate"),
            "rows_differing": int(np.count_nonzero(d)),
        }
    for name, out in outputs.items():
        ref, bound = reference_with_bound(student, x, eps[name])
        diff = scaled_ulp(out, ref, 1.0)
        ratio = diff / np.maximum(bound, 1e-300)
        worst_at = np.unravel_index(int(np.argmax(diff)), diff.shape)
        worst = int(worst_at[0])
        res.criteria += [
            Criterion(f"{name}_vs_student64_ulp", float(diff.max() / unit), student_max_ulp, "<="),
            Criterion(f"{name}_bound_ratio", float(ratio.max()), 1.0, "<="),
        ]
        details[name] = {
            "max_abs": float(diff.max()),
            "max_ulp": float(diff.max() / unit),
            "bound_max_ulp": float(bound.max() / unit),
            "bound_median_ulp": float(np.median(bound) / unit),
            "worst_row": {
                "index": worst,
                "set": str(sets[worst]),
                "reference": float(ref[worst_at]),
                "backend": float(out[worst_at]),
                **({"head": f"head_{int(worst_at[1]):02d}"} if diff.ndim == 2 else {}),
            },
        }
    ort = outputs["onnxruntime"]
    others = {
        "graph_order_float32": graph_order_float32(student, x),
        "torch_float32_forward": torch_forward(student, x),
    }
    details["ungated"] = {}
    for name, out in others.items():
        details["ungated"][f"{name}_vs_onnxruntime_bit_ulp"] = max_ulp(out, ort, nan="propagate")
        details["ungated"][f"{name}_vs_onnxruntime_ulp"] = float(scaled_ulp(out, ort, unit).max()) if len(x) else 0.0
    res.details = details
    return res
