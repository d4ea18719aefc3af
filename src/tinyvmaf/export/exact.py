"""The teacher itself as an ONNX graph: the reference row every student is measured against.

A libvmaf nu-SVR is already a small graph — rescale the features, RBF
kernels against the support vectors, a weighted sum, rescale the score,
transform, clip — so it can be written as ONNX exactly, up to float32.
That graph is the ceiling a student is compared with (size, speed, accuracy)
and a way to run the real teacher wherever the fork's ONNX loader runs.

**The graph** (:func:`build_exact_graph`, :func:`build_exact_bootstrap_graph`),
op for op in :meth:`SvrTeacher.predict`'s order (``teacher/svr.py``)::

    features[N,F] → Unsqueeze → per model feature: Slice → [chroma correction] → Mul(slope) → Add(intercept)
      → Sub(SVs) → Mul(itself) → Add (features summed in the model's order) = d²[N,C,M]
      → exp(−γ·d²) → Mul(coef) → pairwise sum over the SVs (Slice/Add) → Sub(ρ)
      → Sub(intercept₀) → Div(slope₀) → Squeeze → [transform] → Clip → vmaf[N]   (or heads[N,C])

``C`` is the number of SVRs in the graph (1, or 21 for the bootstrap
``vmaf_b_v0.6.3``, whose components are padded to one SV count with zero
coefficients: ``0·k = 0`` and ``s + 0 = s``, so padding changes no bit);
``M`` the SV count.  Only ops on the libvmaf fork's loader allow-list
(:data:`ALLOWED_OPS`).  Notably ``Split`` is *not* on it (the halvings of
the sum use ``Slice``), nor are ``Equal``/``Where``/``Floor``/``Round`` (the
zero test and the rounding below are made of ``Clip``, ``Mul``, ``Add``).

**Chroma correction** (v1.0.16): a ``speed_chroma_uv`` of exactly 0 becomes
``c·(1 − adm3)``, ``c`` = ``chroma_correction_parameter`` (120).  libvmaf
(and :meth:`SvrTeacher._correct_chroma`) does it on the normalised values,
denormalising both features in float64 to compare with 0; that round trip
equals the raw feature to a float64 ULP, so the graph tests the raw float32
value, before normalisation, with an exact 0/1 indicator made of ``Abs``,
``Mul`` and ``Clip``: ``nz = Clip(Clip(|s|·2¹²⁶, 0, 1)·2²⁴, 0, 1)`` (the
smallest subnormal 2⁻¹⁴⁹ becomes 2⁻²³, then 2, then 1; 0 stays 0), and
``s' = s·nz + (1 − nz)·((−c·adm3) + c)``, the teacher's own formula; with
``nz`` exactly 0 or 1 every product and sum there is exact, so it is a
select.  (The float64 round trip also corrects an ``s`` below ~1e-17, which
denormalises to 0; the graph corrects only exact zeros, what the
extractor writes.)

**exp, and why not the ``Exp`` op.**  Every other op is one IEEE rounding,
the same bits on every backend; ``Exp`` is not correctly rounded anywhere.
Measured on this machine: ONNX Runtime 1.32's ``Exp`` and NumPy's float32
``exp`` (what ``onnx.reference`` runs) differ on 40 % of arguments in
[−3, 0], by up to 2 bit-ULPs (NumPy's is the one off by up to 2.3 ULPs,
ONNX Runtime's by 0.8).  Weighted by coefficients up to 4 and divided by
the score slope 0.012, those differences reach the score: a graph with
``Exp`` (and the same fixed-order sum) has ONNX Runtime and the reference
evaluator up to 187 ULPs apart at scale 64 on vmaf_v0.6.1 (median 10.5;
175 on vmaf_v1.0.16_3d0h, 312 on the bootstrap's heads).  ``MatMul`` for
the sum is worse on its own: with bit-identical kernels, ONNX Runtime's
and NumPy's summation orders put the scores up to 606 ULPs apart (median
80), since ~211 terms with Σ|coef·k| ≈ 630 cancel to [−1, 1].  So the sum
is pairwise in a fixed order (:func:`~tinyvmaf.export.graph.pairwise_plan`,
halvings by ``Slice`` + ``Add``) and exp is computed from correctly rounded
ops on a well-conditioned argument (Cody–Waite with a table, all on the
allow-list)::

    v = d²·(2γ)  (= 2·fl(γ·d²), exactly)   → Clip(0, 174)
    j = (v + 1.5·2²³) − 1.5·2²³            (round to nearest: an integer, exact)
    r = j − v ∈ [−½, ½]                    (exact, Sterbenz)
    e^(−γd²) = e^(r/2) · e^(−j/2)           (Horner, degree 6: truncation < 0.2 ULP; Gather(Clip(Cast(j)))
                                           from a 175-entry float32 table of e^(−j/2), from common.exactmath)

Clipping at ``γ·d² = 87`` keeps every kernel a normal float32 (≥ 1.6e-38);
a true kernel below that is < 1.6e-38 and its weight ≤ 4, so the score
moves by < 1e-35.  The index is clipped after the ``Cast`` too: a NaN
feature casts to INT64_MIN, which ``Gather`` refuses (an error, not a NaN);
clipped, the NaN stays in the polynomial and the score is NaN, as the
teacher's.  Cost: ~20 elementwise ops per kernel instead of 2, 2.3–2.9×
slower than the ``Exp`` form; the gain is the same bits on every backend:
ONNX Runtime (optimised and not), ``onnx.reference`` and
:func:`exact_reference` agree to 0 ULP (the gate allows 2).

**Measured** (ONNX Runtime 1.32 CPU, one Intel Xeon core; 1e5 in-range
float32 rows per teacher — ``tests/export/test_exact.py``'s ranges —
against the float64 teacher on the same float32 values; the bootstrap's
error over all 21 heads; rows/s with ``intra_op_num_threads=1``):

=========================  =======  =========  ======  ===========  =========  =========  ======
graph                      RMSE     max |err|  parity  rows/s 4096  rows/s 256  Exp form  params
=========================  =======  =========  ======  ===========  =========  =========  ======
vmaf_v0.6.1                2.3e-4   1.3e-3     0 ULP   250 k        440 k      610 k      1,495
vmaf_v1.0.16_3d0h          1.9e-4   1.0e-3     0 ULP   265 k        450 k      765 k      1,093
vmaf_v1.0.16_3d0h_2160     2.0e-4   1.1e-3     0 ULP   265 k        450 k      775 k      1,093
vmaf_b_v0.6.3 (21 heads)   3.0e-4   1.7e-3     0 ULP   6.2 k        12 k       14 k       31,381
=========================  =======  =========  ======  ===========  =========  =========  ======

("Exp form": the same graph with the ``Exp`` op, batch 4096, for the
cost of exactness; "params": :func:`parameter_count`.)  The float32 error
comes from the kernels (float32 kernels with everything after them in
float64: RMSE 1.5e-4 on vmaf_v0.6.1) and the sum, whose terms cancel from
Σ|coef·k| ≈ 630 to [−1, 1] before 1/slope₀ ≈ 83 multiplies what is left.
The bootstrap is 40× slower than one SVR for 21× the kernels: its
``[4096, 21, 214]`` temporaries (74 MB each) do not stay in cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..common import exactmath
from ..contract import BATCH_DIM, HEADS_NAME, INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME
from .graph import GraphWriter, pairwise_plan

if TYPE_CHECKING:
    import onnx

    from ..teacher.bootstrap import BootstrapTeacher
    from ..teacher.spec import TeacherSpec
    from ..teacher.svr import ScoreTransform, SvrTeacher

#: The libvmaf fork's ONNX loader allow-list, as its C array lists it: lusoris/vmaf
#: ``libvmaf/src/dnn/op_allowlist.c`` (``ALLOWED_OPS[]``, commit 1fc3bac7b73eeb9529cf3e78d69f244a3cb55fa9).
#: A graph with any other op (``Split``, ``Equal``, ``Where``, ``Floor``, ``Round``, ...) is refused there.
ALLOWED_OPS: frozenset[str] = frozenset(
    {
        # structural / shape
        "Identity",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "Concat",
        "Slice",
        "Gather",
        "Cast",
        "Shape",
        "Expand",
        # arithmetic
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Neg",
        "Abs",
        "Sqrt",
        "Pow",
        "Exp",
        "Log",
        "Clip",
        "Min",
        "Max",
        "Sum",
        "Mean",
        # reductions
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "GlobalAveragePool",
        "GlobalMaxPool",
        # dense
        "Gemm",
        "MatMul",
        # convolutional
        "Conv",
        "ConvTranspose",
        "MaxPool",
        "AveragePool",
        # normalisation
        "BatchNormalization",
        "LayerNormalization",
        "InstanceNormalization",
        # activations
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Softmax",
        "Elu",
        "Selu",
        "Softplus",
        "Softsign",
        "Gelu",
        "Erf",
        "HardSigmoid",
        "HardSwish",
        "PRelu",
        # dropout (no-op in inference)
        "Dropout",
        # INT8 QDQ
        "QuantizeLinear",
        "DequantizeLinear",
        # misc
        "Constant",
        "ConstantOfShape",
    }
)

#: The bootstrap graph's output: ``[N, n_components]`` raw component scores, component 0 first.
#: ``kind`` in the metadata of every graph built here (a student's graph has none).
KIND = "exact"

#: exp's argument is clipped at γ·d² = 87 (2γd² = 174): e^(−87) ≈ 1.6e-38 is still a normal float32.
_EXP_HALF_STEPS = 174
#: x + 1.5·2²³ − 1.5·2²³ rounds x (|x| < 2²²) to the nearest integer, ties to even, in float32.
_ROUND_MAGIC = 1.5 * 2.0**23
#: Taylor coefficients of e^(r/2) = Σ rᵏ/(k!·2ᵏ), highest first (|r| ≤ ½: truncation < 1.2e-8 relative).
_EXP_POLY = tuple(np.float32(1.0 / (np.prod(np.arange(1, k + 1, dtype=np.float64)) * 2.0**k)) for k in range(6, -1, -1))
#: The zero indicator's two scalings: |s|·2¹²⁶ lifts the smallest subnormal to 2⁻²³, ·2²⁴ past 1.
_NZ_LIFT = np.float32(2.0**126)
_NZ_STEP = np.float32(2.0**24)


def _exp_table() -> np.ndarray:
    """``e^(−j/2)`` for j = 0..174 in float32, from :func:`exactmath.exp` (the same bits on every CPU)."""
    return exactmath.exp(-np.arange(_EXP_HALF_STEPS + 1, dtype=np.float64) / 2.0).astype(np.float32)


@dataclass(frozen=True)
class _Plan:
    """The graph's constants, float32, shared by the builder and :func:`exact_reference` (same bits in both)."""

    name: str
    order: tuple[str, ...]  # input columns
    columns: tuple[int, ...]  # input column of each model feature, in the model's order
    slope: np.ndarray  # [F, C, 1]
    intercept: np.ndarray  # [F, C, 1]
    sv: np.ndarray  # [F, C, M]
    two_gamma: np.ndarray  # [C, 1]
    coef: np.ndarray  # [C, M]
    rho: np.ndarray  # [C, 1]
    score_intercept: np.ndarray  # [C, 1]
    score_slope: np.ndarray  # [C, 1]
    chroma: tuple[int, int, float] | None  # (adm3, speed_chroma) model-feature indices, c
    transform: ScoreTransform | None  # only when the model enables it
    clip: tuple[float, float] | None
    output: str  # OUTPUT_NAME ([N]) or HEADS_NAME ([N, C])


def _plan(models: tuple[SvrTeacher, ...], order: tuple[str, ...], *, name: str, single: bool) -> _Plan:
    """Stack ``models`` (one SVR, or a bootstrap's components) into float32 arrays, SVs padded to one count."""
    first = models[0]
    if any(m.features != first.features for m in models):
        raise ValueError(f"{name}: the SVRs read different features")
    for m in models:
        if m.norm_type not in ("linear_rescale", "none"):
            raise ValueError(f"{m.source}: norm_type {m.norm_type!r} is not supported")
    n_f, n_c = len(first.features), len(models)
    n_m = max(m.n_support_vectors for m in models)
    slope = np.ones((n_f, n_c, 1))
    intercept = np.zeros((n_f, n_c, 1))
    sv = np.zeros((n_f, n_c, n_m))
    coef = np.zeros((n_c, n_m))  # padding: coefficient 0, SV 0 (a finite kernel times 0 adds an exact 0)
    score = np.zeros((2, n_c, 1))
    score[1] = 1.0
    for c, m in enumerate(models):
        if m.norm_type == "linear_rescale":
            slope[:, c, 0], intercept[:, c, 0] = m.slopes[1:], m.intercepts[1:]
            score[:, c, 0] = m.intercepts[0], m.slopes[0]
        sv[:, c, : m.n_support_vectors] = m.support_vectors.T
        coef[c, : m.n_support_vectors] = m.coef
    chroma = None
    if single and first.chroma_correction is not None and first.chroma_correction != 0.0:
        gi, si = first._guide_columns()  # the teacher's own lookup (libvmaf's strstr on the names)
        chroma = (gi, si, float(first.chroma_correction))
    transform = first.transform if single and first.transform is not None and first.transform.enabled else None
    f32 = np.float32
    return _Plan(
        name=name,
        order=tuple(order),
        columns=tuple(first.column_order(tuple(order))),
        slope=slope.astype(f32),
        intercept=intercept.astype(f32),
        sv=sv.astype(f32),
        two_gamma=np.array([[2.0 * m.gamma] for m in models], f32),
        coef=coef.astype(f32),
        rho=np.array([[m.rho] for m in models], f32),
        score_intercept=score[0].astype(f32),
        score_slope=score[1].astype(f32),
        chroma=chroma,
        transform=transform,
        clip=first.score_clip if single else None,
        output=OUTPUT_NAME if single else HEADS_NAME,
    )


def _spec_plan(spec: TeacherSpec) -> _Plan:
    return _plan((spec.teacher,), spec.order, name=spec.name, single=True)


def _bootstrap_plan(bootstrap: BootstrapTeacher) -> _Plan:
    return _plan(bootstrap.models, bootstrap.input_order, name=bootstrap.name, single=False)


def _transform_terms(t: ScoreTransform) -> list[tuple[str, float]]:
    return [(k, float(v)) for k, v in (("p0", t.p0), ("p1", t.p1), ("p2", t.p2)) if v is not None]


def _write(plan: _Plan, opset: int, metadata: dict[str, str], doc: str, exp_op: bool = False) -> onnx.ModelProto:
    """The graph of ``plan``; ``exp_op`` writes the ``Exp`` form instead (only to measure it, see the docstring)."""
    import onnx
    from onnx import TensorProto, helper

    if opset < 13:
        raise ValueError(f"opset {opset} < 13: Slice/Squeeze/Unsqueeze take their axes as inputs from 13 on")
    g = GraphWriter()
    n_f = len(plan.columns)
    x3 = g.node("Unsqueeze", [INPUT_NAME, g.axes(2)], "features3")  # [N, F, 1]

    def column(j: int, tag: str) -> str:
        starts = g.const(f"slice.start{j}", np.array([j], np.int64))
        ends = g.const(f"slice.start{j + 1}", np.array([j + 1], np.int64))
        return g.node("Slice", [x3, starts, ends, g.axes(1)], f"{tag}.raw")  # [N, 1, 1]

    corrected: dict[int, str] = {}
    if plan.chroma is not None:
        gi, si, c = plan.chroma
        s = column(plan.columns[si], "speed")
        a = column(plan.columns[gi], "adm")
        t = g.node("Abs", [s], "chroma.abs")
        t = g.node("Mul", [t, g.scalar("chroma.lift", _NZ_LIFT)], "chroma.lifted")
        zero, one = g.scalar("const.zero", 0.0), g.scalar("const.one", 1.0)
        t = g.node("Clip", [t, zero, one], "chroma.step1")
        t = g.node("Mul", [t, g.scalar("chroma.step", _NZ_STEP)], "chroma.stepped")
        nz = g.node("Clip", [t, zero, one], "chroma.nonzero")
        alt = g.node("Mul", [a, g.scalar("chroma.minus_c", -c)], "chroma.minus_c_adm3")
        alt = g.node("Add", [alt, g.scalar("chroma.c", c)], "chroma.replacement")
        keep = g.node("Mul", [s, nz], "chroma.keep")
        inv = g.node("Sub", [one, nz], "chroma.zero")
        alt = g.node("Mul", [inv, alt], "chroma.replace")
        corrected[si] = g.node("Add", [keep, alt], "chroma.corrected")
    d2 = ""
    for f in range(n_f):
        raw = corrected.get(f) or column(plan.columns[f], f"f{f}")
        xs = g.node("Mul", [raw, g.init(f"norm.slope{f}", plan.slope[f])], f"f{f}.scaled")  # [N, C, 1]
        xn = g.node("Add", [xs, g.init(f"norm.intercept{f}", plan.intercept[f])], f"f{f}.normalised")
        diff = g.node("Sub", [xn, g.init(f"sv{f}", plan.sv[f])], f"f{f}.diff")  # [N, C, M]
        sq = g.node("Mul", [diff, diff], f"f{f}.squared")
        d2 = sq if f == 0 else g.node("Add", [d2, sq], f"d2.{f}")
    v = g.node("Mul", [d2, g.init("svr.two_gamma", plan.two_gamma)], "exp.v")  # 2γd²
    if exp_op:
        arg = g.node("Mul", [v, g.scalar("const.minus_half", -0.5)], "exp.arg")
        kernel = g.node("Exp", [arg], "kernel")
    else:
        v = g.node(
            "Clip", [v, g.scalar("const.zero", 0.0), g.scalar("exp.v_max", float(_EXP_HALF_STEPS))], "exp.v_clipped"
        )
        j = g.node("Add", [v, g.scalar("exp.magic", _ROUND_MAGIC)], "exp.j_magic")
        j = g.node("Sub", [j, "exp.magic"], "exp.j")
        r = g.node("Sub", [j, v], "exp.r")
        p = g.node("Mul", [r, g.scalar("exp.c6", _EXP_POLY[0])], "exp.p6")
        for k, ck in zip(range(5, -1, -1), _EXP_POLY[1:], strict=True):
            p = g.node("Add", [p, g.scalar(f"exp.c{k}", ck)], f"exp.p{k}")
            if k:
                p = g.node("Mul", [p, r], f"exp.p{k}r")
        idx = g.node("Cast", [j], "exp.index_raw", to=TensorProto.INT64)
        # a NaN feature casts to INT64_MIN: clipped, it reads a valid entry and the NaN stays in p (no Gather error)
        lo_i = g.const("exp.index_min", np.array(0, np.int64))
        hi_i = g.const("exp.index_max", np.array(_EXP_HALF_STEPS, np.int64))
        idx = g.node("Clip", [idx, lo_i, hi_i], "exp.index")
        scale = g.node("Gather", [g.init("exp.table", _exp_table()), idx], "exp.scale", axis=0)
        kernel = g.node("Mul", [p, scale], "kernel")
    terms = g.node("Mul", [kernel, g.init("svr.coef", plan.coef)], "terms")  # [N, C, M]
    levels, _ = pairwise_plan(plan.coef.shape[1])
    leftovers: list[str] = []
    for lv, sizes in enumerate(levels):
        h = sizes[0]
        bounds = [(0, h), (h, 2 * h)] + ([(2 * h, 2 * h + 1)] if len(sizes) == 3 else [])
        parts = []
        for part, (lo, hi) in zip("abc", bounds, strict=False):
            lo_n = g.const(f"slice.start{lo}", np.array([lo], np.int64))
            hi_n = g.const(f"slice.start{hi}", np.array([hi], np.int64))
            parts.append(g.node("Slice", [terms, lo_n, hi_n, g.axes(2)], f"sum.l{lv}.{part}"))
        terms = g.node("Add", parts[:2], f"sum.l{lv}")
        leftovers += parts[2:]
    for k, c in enumerate(leftovers):
        terms = g.node("Add", [terms, c], f"sum.leftover{k}")
    s = g.node("Sub", [terms, g.init("svr.rho", plan.rho)], "svr.score")  # [N, C, 1]
    s = g.node("Sub", [s, g.init("score.intercept", plan.score_intercept)], "score.centred")
    heads_name = plan.output if plan.output == HEADS_NAME else "score.heads"
    s = g.node("Div", [s, g.init("score.slope", plan.score_slope)], "score.denormalised")
    s = g.node("Squeeze", [s, g.axes(2)], heads_name)  # [N, C]
    n_out = plan.coef.shape[0]
    if plan.output == OUTPUT_NAME:
        s = g.node("Squeeze", [s, g.axes(1)], "score")  # [N]
        if plan.transform is not None:
            s = _write_transform(g, s, plan.transform)
        if plan.clip is not None:
            lo, hi = g.scalar("clip.min", plan.clip[0]), g.scalar("clip.max", plan.clip[1])
            g.node("Clip", [s, lo, hi], OUTPUT_NAME, "clip")
        else:
            g.node("Identity", [s], OUTPUT_NAME, "output")
        out_info = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [BATCH_DIM])
    else:
        out_info = helper.make_tensor_value_info(HEADS_NAME, TensorProto.FLOAT, [BATCH_DIM, n_out])
    graph = helper.make_graph(
        g.nodes,
        f"tinyvmaf_exact_{plan.name}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, len(plan.order)])],
        [out_info],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=IR_VERSION,
        producer_name="tinyvmaf",
        producer_version="0",
        doc_string=doc,
    )
    helper.set_model_props(model, dict(sorted(metadata.items())))
    onnx.checker.check_model(model, full_check=True)
    bad = sorted({n.op_type for n in model.graph.node} - ALLOWED_OPS)
    if bad:  # a builder bug, not a user error
        raise AssertionError(f"exact graph uses ops outside the fork's allow-list: {bad}")
    return model


def _write_transform(g: GraphWriter, s: str, t: ScoreTransform) -> str:
    """``ScoreTransform.apply`` op for op: ``((0 + p0) + p1·s) + (p2·s)·s``, then ``Min``/``Max`` against ``s``."""
    acc = ""
    for key, val in _transform_terms(t):
        term = g.scalar(f"transform.{key}", val)
        if key in ("p1", "p2"):
            term = g.node("Mul", [s, term], f"transform.{key}s")
        if key == "p2":
            term = g.node("Mul", [term, s], "transform.p2ss")
        acc = g.node("Add", [acc, term], f"transform.after_{key}") if acc else term
    if acc in ("", "transform.p0"):  # no term, or p0 alone: broadcast to [N] as zeros + p0
        zeros = g.node("Mul", [s, g.scalar("const.zero", 0.0)], "transform.zeros")
        acc = g.node("Add", [zeros, acc], "transform.after_p0") if acc else zeros
    if t.out_lte_in:
        acc = g.node("Min", [acc, s], "transform.lte")
    if t.out_gte_in:
        acc = g.node("Max", [acc, s], "transform.gte")
    return acc


def _metadata(name: str, order: tuple[str, ...], extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"teacher": name, "feature_order": json.dumps(list(order)), "kind": KIND, **(extra or {})}


def build_exact_graph(spec: TeacherSpec, *, opset: int = OPSET) -> onnx.ModelProto:
    """The teacher of ``spec`` as an ONNX graph: ``features [N, F]`` in ``spec.order`` → ``vmaf [N]``.

    Deterministic: fixed node and initialiser names, no clock, so the same
    spec always serialises to the same bytes.  Metadata ``teacher``,
    ``feature_order`` (JSON list) and ``kind: exact``.
    """
    if spec.bootstrap is not None:  # a bootstrap file: every component, heads [N, n] out
        return build_exact_bootstrap_graph(spec.bootstrap, opset=opset)
    plan = _spec_plan(spec)
    doc = (
        f"libvmaf model {spec.name} (nu-SVR, {spec.teacher.n_support_vectors} support vectors) as an exact graph: "
        "raw features in the order of metadata 'feature_order', per-frame score out. Every op is one IEEE "
        "rounding (exp from a table and a polynomial): the same bits on every backend."
    )
    return _write(plan, opset, _metadata(spec.name, spec.order), doc)


def build_exact_bootstrap_graph(bootstrap: BootstrapTeacher, *, opset: int = OPSET) -> onnx.ModelProto:
    """The bootstrap's component SVRs in one graph: ``features [N, 6]`` → ``heads [N, n_components]``.

    The heads are the raw component scores (transform and clip off),
    column k = key ``str(k)``: exactly :meth:`BootstrapTeacher.components`,
    the matrix :func:`~tinyvmaf.teacher.bootstrap.statistics_from_components`
    turns into libvmaf's five statistics.
    """
    plan = _bootstrap_plan(bootstrap)
    doc = (
        f"libvmaf bootstrap model {bootstrap.name}: its {bootstrap.n_components} component nu-SVRs as one exact "
        "graph; output 'heads' holds the raw (untransformed, unclipped) component scores, component 0 first."
    )
    extra = {"components": json.dumps([m.name for m in bootstrap.models])}
    return _write(plan, opset, _metadata(bootstrap.name, bootstrap.input_order, extra), doc)


def _plan_of(model_or_spec: onnx.ModelProto | TeacherSpec | BootstrapTeacher) -> _Plan:
    """The plan of a spec or bootstrap, or of a model built here (checked: its graph must be the one rebuilt)."""
    from ..teacher.bootstrap import BootstrapTeacher, load_bootstrap
    from ..teacher.spec import TeacherSpec, load_spec

    if isinstance(model_or_spec, TeacherSpec):
        if model_or_spec.bootstrap is not None:
            return _bootstrap_plan(model_or_spec.bootstrap)
        return _spec_plan(model_or_spec)
    if isinstance(model_or_spec, BootstrapTeacher):
        return _bootstrap_plan(model_or_spec)
    meta = {p.key: p.value for p in model_or_spec.metadata_props}
    if meta.get("kind") != KIND or "teacher" not in meta:
        raise ValueError("not an exact teacher graph (metadata kind/teacher missing)")
    boot = [o.name for o in model_or_spec.graph.output] == [HEADS_NAME]
    rebuilt = build_exact_bootstrap_graph(load_bootstrap(meta["teacher"])) if boot else None
    if rebuilt is None:
        rebuilt = build_exact_graph(load_spec(meta["teacher"]))
    if rebuilt.graph.SerializeToString() != model_or_spec.graph.SerializeToString():
        raise ValueError(f"the graph is not the exact graph of {meta['teacher']!r} that this module builds")
    return _bootstrap_plan(load_bootstrap(meta["teacher"])) if boot else _spec_plan(load_spec(meta["teacher"]))


def _exp32(v: np.ndarray) -> np.ndarray:
    """The graph's exp(−v/2) for v = 2γd² ≥ 0, op for op in float32."""
    f32 = np.float32
    v = np.clip(v, f32(0), f32(_EXP_HALF_STEPS))
    j = (v + f32(_ROUND_MAGIC)) - f32(_ROUND_MAGIC)
    r = j - v
    p = r * _EXP_POLY[0]
    for k, ck in zip(range(5, -1, -1), _EXP_POLY[1:], strict=True):
        p = p + ck
        if k:
            p = p * r
    idx = np.clip(j.astype(np.int64), 0, _EXP_HALF_STEPS)  # NaN → INT64_MIN → 0, as the graph's Clip
    return p * _exp_table()[idx]


def exact_reference(
    model_or_spec: onnx.ModelProto | TeacherSpec | BootstrapTeacher, x32: np.ndarray, *, block: int = 1024
) -> np.ndarray:
    """The exact graph evaluated in NumPy float32, op for op in the graph's order (a third implementation).

    ``model_or_spec``: a spec or bootstrap, or a model this module built
    (its metadata names the teacher; the graph is checked against a rebuild).
    Returns ``[N]`` float32 scores, or ``[N, n_components]`` heads for a
    bootstrap.  Every op but the table lookup is one IEEE rounding, so this
    agrees with any correct backend to the bit (0 ULP measured against ONNX
    Runtime and ``onnx.reference``).
    """
    plan = _plan_of(model_or_spec)
    x = np.asarray(x32, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != len(plan.order):
        raise ValueError(f"rows must be [N, {len(plan.order)}] in order {list(plan.order)}, got shape {x.shape}")
    f32 = np.float32
    out = []
    with np.errstate(all="ignore"):
        for start in range(0, len(x), block):
            xb = x[start : start + block, :, None]  # [n, F, 1]
            cols = {f: xb[:, plan.columns[f] : plan.columns[f] + 1] for f in range(len(plan.columns))}
            if plan.chroma is not None:
                gi, si, c = plan.chroma
                s, a = cols[si], cols[gi]
                nz = np.clip(np.clip(np.abs(s) * _NZ_LIFT, f32(0), f32(1)) * _NZ_STEP, f32(0), f32(1))
                alt = a * f32(-c) + f32(c)
                cols[si] = s * nz + (f32(1) - nz) * alt
            d2 = None
            for f in range(len(plan.columns)):
                xn = cols[f] * plan.slope[f] + plan.intercept[f]
                diff = xn - plan.sv[f]
                sq = diff * diff
                d2 = sq if d2 is None else d2 + sq
            terms = _exp32(d2 * plan.two_gamma) * plan.coef
            levels, _ = pairwise_plan(terms.shape[2])
            leftovers = []
            for sizes in levels:
                h = sizes[0]
                if len(sizes) == 3:
                    leftovers.append(terms[:, :, 2 * h : 2 * h + 1])
                terms = terms[:, :, :h] + terms[:, :, h : 2 * h]
            for c_ in leftovers:
                terms = terms + c_
            s = ((terms - plan.rho) - plan.score_intercept) / plan.score_slope
            s = s[:, :, 0]
            if plan.output == OUTPUT_NAME:
                s = s[:, 0]
                if plan.transform is not None:
                    s = _transform32(s, plan.transform)
                if plan.clip is not None:
                    s = np.clip(s, f32(plan.clip[0]), f32(plan.clip[1]))
            out.append(s.astype(f32))
    if not out:
        shape = (0,) if plan.output == OUTPUT_NAME else (0, plan.coef.shape[0])
        return np.zeros(shape, f32)
    return np.concatenate(out)


def _transform32(s: np.ndarray, t: ScoreTransform) -> np.ndarray:
    f32 = np.float32
    acc: np.ndarray | None = None
    p0_only = False
    for key, val in _transform_terms(t):
        c = f32(val)
        term = c if key == "p0" else (s * c if key == "p1" else (s * c) * s)
        acc = term if acc is None else acc + term
        p0_only = key == "p0"
    if acc is None or p0_only:
        zeros = s * f32(0)
        acc = zeros if acc is None else zeros + acc
    if t.out_lte_in:
        acc = np.minimum(acc, s)
    if t.out_gte_in:
        acc = np.maximum(acc, s)
    return acc


def parameter_count(spec: TeacherSpec | BootstrapTeacher) -> int:
    """The numbers the teacher's file contributes to the graph: what to put next to a student's parameter count.

    Support-vector values and coefficients, plus the small constants: the
    feature and score slopes/intercepts (when ``linear_rescale``), γ and ρ,
    the transform's coefficients (when enabled), the clip bounds and the
    chroma-correction parameter; summed over a bootstrap's components.
    Not counted: the bootstrap's zero padding and the graph's own helpers
    (exp's 175-entry table, its 7 polynomial coefficients, slice indices).
    """
    from ..teacher.bootstrap import BootstrapTeacher

    if not isinstance(spec, BootstrapTeacher) and spec.bootstrap is not None:
        spec = spec.bootstrap
    models = spec.models if isinstance(spec, BootstrapTeacher) else (spec.teacher,)
    single = not isinstance(spec, BootstrapTeacher)
    total = 0
    for m in models:
        total += m.support_vectors.size + m.coef.size + 2  # SVs, coefficients, gamma, rho
        if m.norm_type == "linear_rescale":
            total += m.slopes.size + m.intercepts.size
        if single:
            if m.transform is not None and m.transform.enabled:
                total += len(_transform_terms(m.transform))
            total += 2 if m.score_clip is not None else 0
            total += 1 if m.chroma_correction not in (None, 0.0) else 0
    return int(total)
