"""The student as an ONNX graph, written node by node with ``onnx.helper``.

Not ``torch.onnx.export``: torch ≥ 2.9 exports at opset 18 through dynamo,
and the tracer's output (node names, constant folding, op choice) changes
between torch releases.  Built by hand the graph is exactly the contract of
DESIGN.md —

    features[N,6] → Sub(mean) → Div(std) → {Gemm → act} × depth → Gemm → Squeeze → Clip(0,100) → vmaf[N]

with ``act`` = ``Relu``, or SiLU as ``Sigmoid`` then ``Mul`` (opset 17 has
no SiLU op) — the same ops, in the same order, as ``StudentMLP.forward``,
the normalisation inside the graph, plain ops only (:data:`EMITTED_OPS`,
which is the gate's allow-list) and deterministic bytes: the same
checkpoint and metadata always serialise to the same file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..contract import BATCH_DIM, INPUT_NAME, IR_VERSION, N_FEATURES, OPSET, OUTPUT_NAME, VMAF_MAX, VMAF_MIN

if TYPE_CHECKING:
    import onnx

    from ..student.network import StudentMLP

#: Every op type this module can write (the gate allows exactly these).
EMITTED_OPS: tuple[str, ...] = ("Sub", "Div", "Gemm", "Relu", "Sigmoid", "Mul", "Squeeze", "Clip")
#: Ops per hidden activation.
ACTIVATION_OPS = {"relu": ("Relu",), "silu": ("Sigmoid", "Mul")}


def student_layers(student: StudentMLP) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(weight[out, in], bias[out])`` of each Linear, in forward order, as float32."""
    return [
        (lin.weight.detach().cpu().numpy().astype(np.float32), lin.bias.detach().cpu().numpy().astype(np.float32))
        for lin in student.linears()
    ]


def build_graph(
    mean: np.ndarray,
    std: np.ndarray,
    layers: list[tuple[np.ndarray, np.ndarray]],
    *,
    activation: str,
    opset: int = OPSET,
    metadata: dict[str, str] | None = None,
    producer_version: str = "0",
) -> onnx.ModelProto:
    """The student as an ONNX model: ops in ``StudentMLP.forward``'s order.

    Weights keep torch's ``[out, in]`` layout with ``Gemm(transB=1)``, which
    is exactly ``torch.addmm(b, x, W.T)``: no transposed copy that could
    differ from the checkpoint.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if opset < 13:
        raise ValueError(f"opset {opset} < 13: Squeeze/Clip take their axes/bounds as inputs from opset 13 on")
    if activation not in ACTIVATION_OPS:
        raise ValueError(f"activation must be one of {list(ACTIVATION_OPS)}, got {activation!r}")
    if not layers:
        raise ValueError("no layers to export")
    if layers[-1][0].shape[0] != 1:
        raise ValueError(f"the last layer must have one output, has {layers[-1][0].shape[0]}")
    f32 = np.float32
    inits = [
        numpy_helper.from_array(np.asarray(mean, f32).reshape(N_FEATURES), "norm.mean"),
        numpy_helper.from_array(np.asarray(std, f32).reshape(N_FEATURES), "norm.std"),
    ]
    nodes = [
        helper.make_node("Sub", [INPUT_NAME, "norm.mean"], ["centred"], name="normalise_sub"),
        helper.make_node("Div", ["centred", "norm.std"], ["z"], name="normalise_div"),
    ]
    x = "z"
    for i, (w, b) in enumerate(layers):
        wname, bname, out = f"layer{i}.weight", f"layer{i}.bias", f"layer{i}.out"
        inits += [
            numpy_helper.from_array(np.asarray(w, f32), wname),
            numpy_helper.from_array(np.asarray(b, f32), bname),
        ]
        nodes.append(helper.make_node("Gemm", [x, wname, bname], [out], name=f"layer{i}_gemm", transB=1))
        x = out
        if i == len(layers) - 1:
            break
        act = f"layer{i}.act"
        if activation == "relu":
            nodes.append(helper.make_node("Relu", [x], [act], name=f"layer{i}_relu"))
        else:
            gate = f"layer{i}.sigmoid"
            nodes += [
                helper.make_node("Sigmoid", [x], [gate], name=f"layer{i}_sigmoid"),
                helper.make_node("Mul", [x, gate], [act], name=f"layer{i}_silu"),
            ]
        x = act
    inits += [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "squeeze.axes"),
        numpy_helper.from_array(np.array(VMAF_MIN, dtype=f32), "clip.min"),
        numpy_helper.from_array(np.array(VMAF_MAX, dtype=f32), "clip.max"),
    ]
    nodes += [
        helper.make_node("Squeeze", [x, "squeeze.axes"], ["score"], name="squeeze"),
        helper.make_node("Clip", ["score", "clip.min", "clip.max"], [OUTPUT_NAME], name="clip_0_100"),
    ]
    graph = helper.make_graph(
        nodes,
        "tinyvmaf_student",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, N_FEATURES])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [BATCH_DIM])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=IR_VERSION,
        producer_name="tinyvmaf",
        producer_version=producer_version,
        doc_string=(
            "VMAF vmaf_v0.6.1 distilled into an MLP. Input: raw libvmaf integer features in the order of "
            "metadata 'feature_order'. Output: per-frame VMAF in [0, 100]; pool frames by their mean."
        ),
    )
    if metadata:
        helper.set_model_props(model, dict(sorted(metadata.items())))
    onnx.checker.check_model(model, full_check=True)
    return model


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
    )


def student_predictor(student: StudentMLP, *, opset: int = OPSET) -> Callable[[np.ndarray], np.ndarray]:
    """The student's exported graph as ONNX Runtime runs it: raw canonical-6 rows → float32 VMAF.

    Built without metadata, which does not change what the graph computes;
    export, its sweep comparison and leave-one-content-out all measure this.
    """
    from ..model.runtime import ort_session

    session = ort_session(build_student_graph(student, opset=opset).SerializeToString())
    name = session.get_inputs()[0].name

    def predict(x: np.ndarray) -> np.ndarray:
        (out,) = session.run(None, {name: np.ascontiguousarray(x, np.float32)})
        return np.asarray(out, np.float32)

    return predict
