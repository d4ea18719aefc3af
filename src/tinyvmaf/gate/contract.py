"""The model's contract, read from the file itself: opset, I/O, metadata, and the ops it uses.

contract  the file is what DESIGN.md promises: opset 17, ``features [N,6]``
          float32 in, ``vmaf [N]`` float32 out, dynamic batch, the metadata,
          ``onnx.checker`` clean.
ops       only plain ops of the default domain that export can emit
          (:data:`tinyvmaf.export.graph.EMITTED_OPS`): what libvmaf's ONNX
          runtime path and any other runtime run without custom kernels.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..common.checks import CheckResult, Criterion
from ..contract import BATCH_DIM, FEATURES, HEADS_NAME, INPUT_NAME, OPSET, OUTPUT_NAME, REQUIRED_METADATA
from ..export.graph import EMITTED_OPS

if TYPE_CHECKING:
    import onnx


def contract_check(
    model: onnx.ModelProto,
    features: list[str] | tuple[str, ...] = FEATURES,
    required: tuple[str, ...] = REQUIRED_METADATA,
    n_heads: int = 1,
) -> CheckResult:
    """The ONNX contract of DESIGN.md, read from the file itself (``features``: the input the sidecar names).

    A bootstrap teacher's model (``n_heads`` > 1) outputs ``heads [N, n_heads]`` instead of ``vmaf [N]``.
    """
    import onnx
    from onnx import TensorProto

    res = CheckResult("contract")
    try:
        onnx.checker.check_model(model, full_check=True)
        checker_errors = 0
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        checker_errors = 1
        res.details["checker"] = str(exc)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    problems: list[str] = []

    def dims(vi) -> list[Any]:
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

    ins, outs = list(model.graph.input), list(model.graph.output)
    if [i.name for i in ins] != [INPUT_NAME]:
        problems.append(f"inputs {[i.name for i in ins]} != [{INPUT_NAME!r}]")
    else:
        t = ins[0].type.tensor_type
        if t.elem_type != TensorProto.FLOAT:
            problems.append(f"input dtype {TensorProto.DataType.Name(t.elem_type)} != FLOAT")
        d = dims(ins[0])
        if len(d) != 2 or not isinstance(d[0], str) or d[1] != len(features):
            problems.append(f"input shape {d} != [{BATCH_DIM}, {len(features)}] with a symbolic batch")
    want = OUTPUT_NAME if n_heads == 1 else HEADS_NAME
    if [o.name for o in outs] != [want]:
        problems.append(f"outputs {[o.name for o in outs]} != [{want!r}]")
    else:
        t = outs[0].type.tensor_type
        if t.elem_type != TensorProto.FLOAT:
            problems.append(f"output dtype {TensorProto.DataType.Name(t.elem_type)} != FLOAT")
        d = dims(outs[0])
        if n_heads == 1 and (len(d) != 1 or not isinstance(d[0], str)):
            problems.append(f"output shape {d} != [{BATCH_DIM}] with a symbolic batch")
        if n_heads > 1 and (len(d) != 2 or not isinstance(d[0], str) or d[1] != n_heads):
            problems.append(f"output shape {d} != [{BATCH_DIM}, {n_heads}] with a symbolic batch")
    meta = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in required if not meta.get(k)]
    try:
        order = json.loads(meta.get("feature_order", "null"))
    except json.JSONDecodeError:
        order = None
    if order != list(features):
        problems.append(f"metadata feature_order {meta.get('feature_order')!r} != {list(features)}")
    res.details.update({"problems": problems, "missing_metadata": missing, "metadata": meta})
    res.criteria += [
        Criterion("opset", opset, OPSET, "=="),
        Criterion("checker_errors", checker_errors, 0, "<="),
        Criterion("io_problems", len(problems), 0, "<="),
        Criterion("missing_metadata", len(missing), 0, "<="),
    ]
    return res


def graph_ops(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """``(domain, op_type)`` of every node, subgraphs included, in order of first appearance."""
    seen: dict[tuple[str, str], None] = {}

    def walk(graph) -> None:
        for node in graph.node:
            seen.setdefault((node.domain or "", node.op_type), None)
            for attr in node.attribute:
                if attr.g is not None and attr.g.node:
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(model.graph)
    return list(seen)


def ops_check(model: onnx.ModelProto, allowed: tuple[str, ...] = EMITTED_OPS) -> CheckResult:
    """Only plain ops of the default domain, and only those export can emit."""
    ops = graph_ops(model)
    bad = sorted({f"{d}::{op}" if d not in ("", "ai.onnx") else op for d, op in ops if d not in ("", "ai.onnx")})
    bad += sorted({op for d, op in ops if d in ("", "ai.onnx") and op not in allowed})
    res = CheckResult("ops", details={"ops": [op for _, op in ops], "disallowed": bad, "allowed": list(allowed)})
    res.criteria.append(Criterion("disallowed_ops", len(bad), 0, "<=", info=", ".join(bad)))
    return res
