"""The student as an ONNX graph, written node by node with ``onnx.helper``.

Not ``torch.onnx.export``: torch ≥ 2.9 exports at opset 18 through dynamo,
and the tracer's output (node names, constant folding, op choice) changes
between torch releases.  Built by hand the graph is exactly the contract of
DESIGN.md —

    features[N,6] → Sub(mean) → Div(std) → {dense → act} × depth → dense → Squeeze → Clip(0,100) → vmaf[N]

— with the normalisation inside the graph, plain ops only
(:data:`EMITTED_OPS`, which is the gate's allow-list) and deterministic
bytes: the same checkpoint and metadata always serialise to the same file.

**Every op is one IEEE rounding, in an order the graph fixes**, so every
backend on every CPU computes the same bits (the gate holds ONNX Runtime to
the reference evaluator within ``gate.parity.max_ulp``):

* a dense layer ``x[N,k] → W x + b`` is not a ``Gemm``/``MatMul`` (whose
  summation order each backend, and ONNX Runtime's MLAS per CPU, chooses)
  but products and a pairwise sum: ``Unsqueeze(x) [N,k,1] · Wᵀ [k,out]``
  (``Mul``: each product rounded once), then halving along ``k`` —
  ``Split`` into two equal halves (and, for odd counts, one leftover
  column) and ``Add`` them — until one column remains; the leftovers are
  added in the order they fell out, then the bias.  ``log2(k)`` levels: few
  nodes, and a tighter error bound than any sequential order
  (:mod:`tinyvmaf.gate.parity`);
* the activation is hard-swish as ``Add(3) → Clip(0, 6) → Mul(x) →
  Div(6)`` (torch's ``x * min(max(x + 3, 0), 6) / 6``, op for op; not the
  fused ``HardSwish`` op, which a runtime may evaluate with a fused
  multiply-add or a reciprocal), or ReLU.  SiLU still exports, as
  ``Sigmoid`` then ``Mul`` (opset 17 has no SiLU op), to measure old
  checkpoints — but ``Sigmoid`` is not correctly rounded anywhere, so it is
  not in :data:`EMITTED_OPS` and the gate rejects such a graph by name.

``benchmarks/graph_forms.py`` measures this form against ``Gemm`` and a
sequential order (``benchmarks/graph_forms.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..contract import BATCH_DIM, HEADS_NAME, INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME, VMAF_MAX, VMAF_MIN

if TYPE_CHECKING:
    import onnx

    from ..student.network import StudentMLP

#: Ops per hidden activation, in graph order.
ACTIVATION_OPS: dict[str, tuple[str, ...]] = {
    "hardswish": ("Add", "Clip", "Mul", "Div"),
    "relu": ("Relu",),
    "silu": ("Sigmoid", "Mul"),
}
#: Activations whose every op is correctly rounded (or exact): the same bits on every backend.
EXACT_ACTIVATIONS: tuple[str, ...] = ("hardswish", "relu")
#: Ops of a fixed-order dense layer.
DENSE_OPS: tuple[str, ...] = ("Unsqueeze", "Mul", "Slice", "Add", "Squeeze")
#: Every op export writes for a student with an exact activation (the gate allows exactly these); all of
#: them on the libvmaf fork's loader allow-list (:data:`tinyvmaf.export.exact.ALLOWED_OPS`). The chroma
#: correction adds Concat; a bootstrap student names its heads with Identity.
EMITTED_OPS: tuple[str, ...] = ("Sub", "Div", *DENSE_OPS, "Clip", "Relu", "Concat", "Identity")
#: What ``tinyvmaf model check`` accepts besides: the libvmaf fork's peers and earlier students
#: (``Gemm`` with ReLU or SiLU) are runnable tiny models, only not bit-identical across backends.
CHECKABLE_OPS: tuple[str, ...] = (*EMITTED_OPS, "Gemm", "Sigmoid")


def student_layers(student: StudentMLP) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(weight[out, in], bias[out])`` of each Linear, in forward order, as float32."""
    return [
        (lin.weight.detach().cpu().numpy().astype(np.float32), lin.bias.detach().cpu().numpy().astype(np.float32))
        for lin in student.linears()
    ]


def pairwise_plan(k: int) -> tuple[list[list[int]], int]:
    """The halving schedule of a ``k``-term sum: the ``Split`` sizes of each level, and the rounding depth.

    Each level splits ``n`` columns into ``[n//2, n//2]`` (plus ``[1]`` when
    ``n`` is odd, a leftover added after the last level).  The depth is the
    most roundings any one product goes through on its way to the layer's
    output: its own product, one ``Add`` per level, one per leftover, and
    the bias (what :func:`tinyvmaf.gate.parity.reference_with_bound` needs).
    """
    if k < 1:
        raise ValueError(f"fan-in must be >= 1, got {k}")
    levels: list[list[int]] = []
    n = k
    while n > 1:
        h = n // 2
        levels.append([h, h, 1] if n % 2 else [h, h])
        n = h
    leftovers = sum(len(s) == 3 for s in levels)
    return levels, 1 + len(levels) + leftovers + 1


class GraphWriter:
    """Nodes and initialisers of one graph, with shared constants named by value."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self._consts: dict[str, str] = {}

    def node(self, op: str, inputs: list[str], output: str, name: str | None = None, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=name or output.replace(".", "_"), **attrs))
        return output

    def nodes_multi(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> list[str]:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))
        return outputs

    def init(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        """A shared constant (axes, split sizes, scalars): one initialiser per distinct name."""
        if name not in self._consts:
            self._consts[name] = self.init(name, value)
        return name

    def slice(self, x: str, start: int, end: int, axis: int, output: str) -> str:
        """``x[..., start:end, ...]`` along ``axis`` (ONNX ``Slice``, bounds as shared int64 constants)."""
        i64 = np.int64
        return self.node(
            "Slice",
            [
                x,
                self.const(f"slice.at{start}", np.array([start], i64)),
                self.const(f"slice.at{end}", np.array([end], i64)),
                self.axes(axis),
            ],
            output,
        )

    def axes(self, *axes: int) -> str:
        return self.const("axes." + "_".join(map(str, axes)), np.array(axes, dtype=np.int64))

    def scalar(self, name: str, value: float) -> str:
        return self.const(name, np.array(value, dtype=np.float32))

    def dense(self, x: str, w: np.ndarray, b: np.ndarray, prefix: str) -> str:
        """``x[N,k] → x Wᵀ + b [N,out]``: products in ``[N, k, out]``, pairwise sum along ``k``, then the bias."""
        wname = self.init(f"{prefix}.weight_t", np.ascontiguousarray(np.asarray(w, np.float32).T))  # [k, out]
        bname = self.init(f"{prefix}.bias", np.asarray(b, np.float32))
        levels, _ = pairwise_plan(w.shape[1])
        u = self.node("Unsqueeze", [x, self.axes(2)], f"{prefix}.col")  # [N, k, 1]
        p = self.node("Mul", [u, wname], f"{prefix}.products")  # [N, k, out]
        leftovers: list[str] = []
        for j, sizes in enumerate(levels):
            # Slices, not one Split: the libvmaf fork's loader allow-list has Slice and no Split.
            parts, start = [], 0
            for part, size in zip("abc", sizes, strict=False):
                parts.append(self.slice(p, start, start + size, 1, f"{prefix}.l{j}.{part}"))
                start += size
            p = self.node("Add", parts[:2], f"{prefix}.l{j}.sum")
            leftovers += parts[2:]
        for j, c in enumerate(leftovers):
            p = self.node("Add", [p, c], f"{prefix}.leftover{j}")
        s = self.node("Squeeze", [p, self.axes(1)], f"{prefix}.dot")  # [N, out]
        return self.node("Add", [s, bname], f"{prefix}.out")

    def activation(self, a: str, activation: str, prefix: str) -> str:
        if activation == "relu":
            return self.node("Relu", [a], f"{prefix}.act", f"{prefix}_relu")
        if activation == "silu":
            gate = self.node("Sigmoid", [a], f"{prefix}.sigmoid")
            return self.node("Mul", [a, gate], f"{prefix}.act", f"{prefix}_silu")
        t = self.node("Add", [a, self.scalar("hardswish.three", 3.0)], f"{prefix}.plus3")
        c = self.node(
            "Clip", [t, self.scalar("hardswish.zero", 0.0), self.scalar("hardswish.six", 6.0)], f"{prefix}.relu6"
        )
        m = self.node("Mul", [a, c], f"{prefix}.times")
        return self.node("Div", [m, "hardswish.six"], f"{prefix}.act", f"{prefix}_hardswish")


def build_graph(
    mean: np.ndarray,
    std: np.ndarray,
    layers: list[tuple[np.ndarray, np.ndarray]],
    *,
    activation: str,
    opset: int = OPSET,
    metadata: dict[str, str] | None = None,
    producer_version: str = "0",
    writer: Callable[[], GraphWriter] = GraphWriter,
    clip: tuple[float, float] | None = (VMAF_MIN, VMAF_MAX),
    correction: tuple[int, int, float] | None = None,
    teacher: str = "vmaf_v0.6.1",
) -> onnx.ModelProto:
    """The student as an ONNX model: ops in ``StudentMLP.forward``'s order, each dot product in a fixed order.

    ``clip`` is the teacher's ``score_clip``; ``correction`` = (speed column,
    adm3 column, c) puts libvmaf's chroma correction in front
    (:func:`chroma_correction`), op for op as ``StudentMLP.correct``.

    Weights are stored transposed, ``layer{i}.weight_t`` = ``Wᵀ [in, out]``
    (a transpose is exact): the products ``x[N,in,1] · Wᵀ[in,out]`` and the
    halvings along ``in`` then copy contiguous blocks, 1.3–1.4× faster
    than the ``[N, out, in]`` layout at every batch size, same bits
    (``benchmarks/graph_forms.md``).  ``writer`` builds the dense layers
    and activations (the benchmarks pass other forms).
    """
    import onnx
    from onnx import TensorProto, helper

    if opset < 13:
        raise ValueError(f"opset {opset} < 13: Squeeze/Split/Clip take their axes/sizes/bounds as inputs from 13 on")
    if activation not in ACTIVATION_OPS:
        raise ValueError(f"activation must be one of {list(ACTIVATION_OPS)}, got {activation!r}")
    if not layers:
        raise ValueError("no layers to export")
    n_heads = int(layers[-1][0].shape[0])
    if n_heads != 1 and clip is not None:
        raise ValueError(f"the last layer has {n_heads} outputs: heads are not clipped (pass clip=None)")
    f32 = np.float32
    n_features = int(np.asarray(mean).size)
    g = writer()
    g.init("norm.mean", np.asarray(mean, f32).reshape(n_features))
    g.init("norm.std", np.asarray(std, f32).reshape(n_features))
    x_in = INPUT_NAME if correction is None else chroma_correction(g, INPUT_NAME, n_features, correction)
    g.node("Sub", [x_in, "norm.mean"], "centred", "normalise_sub")
    x = g.node("Div", ["centred", "norm.std"], "z", "normalise_div")
    for i, (w, b) in enumerate(layers):
        x = g.dense(x, w, b, f"layer{i}")
        if i < len(layers) - 1:
            x = g.activation(x, activation, f"layer{i}")
    if n_heads == 1:
        g.node("Squeeze", [x, g.axes(1)], "score", "squeeze")
        lo, hi = clip
        g.node(
            "Clip", ["score", g.scalar("clip.min", lo), g.scalar("clip.max", hi)], OUTPUT_NAME, f"clip_{lo:g}_{hi:g}"
        )
        output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [BATCH_DIM])
        doc = f"Output: per-frame VMAF in [{lo:g}, {hi:g}]; pool frames by their mean."
    else:  # a bootstrap's heads: the raw component scores, unclipped (the statistics derive from them)
        g.node("Identity", [x], HEADS_NAME, "heads")
        output = helper.make_tensor_value_info(HEADS_NAME, TensorProto.FLOAT, [BATCH_DIM, n_heads])
        doc = (
            f"Output 'heads' [N, {n_heads}]: the raw (unclipped) component scores of the bootstrap model, key 0 "
            "first; the sidecar's 'statistics' says how libvmaf's score, bagging, stddev and 95% interval derive."
        )
    graph = helper.make_graph(
        g.nodes,
        "tinyvmaf_student",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, n_features])],
        [output],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=IR_VERSION,
        producer_name="tinyvmaf",
        producer_version=producer_version,
        doc_string=(
            f"VMAF {teacher} distilled into an MLP. Input: raw libvmaf features in the order of "
            f"metadata 'feature_order'. {doc} "
            "Every op is one IEEE rounding in an order the graph fixes: the same bits on every backend."
        ),
    )
    if metadata:
        helper.set_model_props(model, dict(sorted(metadata.items())))
    onnx.checker.check_model(model, full_check=True)
    return model


def chroma_correction(g: GraphWriter, x: str, n_features: int, correction: tuple[int, int, float]) -> str:
    """libvmaf's chroma correction in ops the fork's loader allows (no ``Equal``/``Where``).

    ``nz`` = Clip(Clip(Clip(s, 0, 1)·2^126, 0, 1)·2^24, 0, 1) is exactly 1
    for any float32 s > 0 (the smallest, 2^-149, becomes 2^-23, then 2) and
    0 for s = 0; the corrected column is ``s·nz + (1 − nz)·(c − c·adm3)``:
    ``s`` itself where it is not 0 (``s·1 + 0``), ``c − c·adm3`` where it is.
    """
    from ..student.network import NZ_SCALE_1, NZ_SCALE_2

    si, gi, c = correction
    cols = [g.slice(x, j, j + 1, 1, f"cc.col{j}") for j in range(n_features)]
    s, a = cols[si], cols[gi]
    s01 = g.node("Clip", [s, g.scalar("cc.zero", 0.0), g.scalar("cc.one", 1.0)], "cc.s01", "cc_clip_s")
    t = g.node("Mul", [s01, g.scalar("cc.scale1", NZ_SCALE_1)], "cc.t1", "cc_scale1")
    t = g.node("Clip", [t, "cc.zero", "cc.one"], "cc.t1c", "cc_clip1")
    t = g.node("Mul", [t, g.scalar("cc.scale2", NZ_SCALE_2)], "cc.t2", "cc_scale2")
    nz = g.node("Clip", [t, "cc.zero", "cc.one"], "cc.nz", "cc_nonzero")
    ca = g.node("Mul", [g.scalar("cc.c", c), a], "cc.ca", "cc_c_adm3")
    fix = g.node("Sub", ["cc.c", ca], "cc.fix", "cc_fix")
    keep = g.node("Mul", [s, nz], "cc.keep", "cc_keep")
    off = g.node("Sub", ["cc.one", nz], "cc.off", "cc_off")
    alt = g.node("Mul", [off, fix], "cc.alt", "cc_alt")
    cols[si] = g.node("Add", [keep, alt], "cc.speed", "cc_corrected")
    return g.node("Concat", cols, "features.corrected", "cc_concat", axis=1)


def build_student_graph(
    student: StudentMLP, *, opset: int = OPSET, metadata: dict[str, str] | None = None, producer_version: str = "0"
) -> onnx.ModelProto:
    """:func:`build_graph` from a loaded :class:`StudentMLP`."""
    return build_graph(
        student.mean.detach().cpu().numpy(),
        student.std.detach().cpu().numpy(),
        student_layers(student),
        activation=student.activation,
        opset=opset,
        metadata=metadata,
        producer_version=producer_version,
        clip=student.clip if student.n_heads == 1 else None,
        correction=student.interface.correction,
        teacher=student.teacher,
    )


def student_predictor(student: StudentMLP, *, opset: int = OPSET) -> Callable[[np.ndarray], np.ndarray]:
    """The student's exported graph as ONNX Runtime runs it: raw rows in its teacher's order → float32 VMAF.

    Built without metadata, which does not change what the graph computes;
    export, its sweep comparison and leave-one-content-out all measure this.
    Rows go through in chunks (:func:`tinyvmaf.model.runtime.run_chunked`).
    """
    from ..model.runtime import ort_session, run_chunked

    session = ort_session(build_student_graph(student, opset=opset).SerializeToString())
    name = session.get_inputs()[0].name

    def predict(x: np.ndarray) -> np.ndarray:
        return run_chunked(lambda c: session.run(None, {name: c})[0], x)

    return predict
