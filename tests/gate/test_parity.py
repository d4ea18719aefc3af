"""Cross-backend parity of the exported graph: the same bits everywhere, and what the ops check refuses."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from tinyvmaf.export.graph import EMITTED_OPS, GraphWriter, build_graph, build_student_graph, student_layers
from tinyvmaf.gate.contract import ops_check
from tinyvmaf.gate.parity import (
    graph_order_float32,
    parity_check,
    random_rows,
    run_backends,
    ulp_at,
)
from tinyvmaf.student.network import StudentMLP

QUALITY_MAX, MOTION2_MAX = 1.25, 100.0


def fresh_student(activation: str = "hardswish", width: int = 64, depth: int = 3, seed: int = 0) -> StudentMLP:
    """An untrained student with outputs over VMAF's range (sums of terms of size ~64, like a trained one)."""
    torch.manual_seed(seed)
    student = StudentMLP(width, depth, activation=activation, dropout=0.0)
    x = torch.from_numpy(random_rows(4096, seed, QUALITY_MAX, MOTION2_MAX))
    student.set_normalisation(x.mean(0), x.std(0))
    with torch.no_grad():  # outputs spread over VMAF's range: mean 50, std 15
        last = student.linears()[-1]
        y = student.forward_unclipped(x)
        last.weight.mul_(15.0 / float(y.std()))
        last.bias.sub_(float(student.forward_unclipped(x).mean()) - 50.0)
    return student.eval()


def rows(seed: int, n: int = 20_000) -> np.ndarray:
    return random_rows(n, seed, QUALITY_MAX, MOTION2_MAX)


class GemmWriter(GraphWriter):
    """The export before issue 16: a Gemm per layer (each backend sums it in its own order)."""

    def dense(self, x: str, w: np.ndarray, b: np.ndarray, prefix: str) -> str:
        wname = self.init(f"{prefix}.weight", np.asarray(w, np.float32))
        bname = self.init(f"{prefix}.bias", np.asarray(b, np.float32))
        return self.node("Gemm", [x, wname, bname], f"{prefix}.out", transB=1)


def test_onnxruntime_is_the_reference_evaluator_on_a_fresh_hardswish_student() -> None:
    """≤ 2 ULP@64 is the gate's bar; the graph fixes every rounding, so the bits are the same (0)."""
    student = fresh_student()
    model = build_student_graph(student)
    x = np.concatenate([rows(1), rows(987_654)])  # the gate's seed stream and one no stage uses
    out = run_backends(model, x)
    unit = ulp_at(64.0)
    assert unit == 2.0**-17
    assert float(np.ptp(out["onnxruntime"])) > 10  # outputs spread over the range: not a vacuous comparison
    for name in ("onnxruntime", "onnxruntime_unoptimised"):
        assert np.abs(out[name].astype(np.float64) - out["reference_evaluator"]).max() / unit <= 2, name
        assert np.array_equal(out[name].view(np.uint32), out["reference_evaluator"].view(np.uint32)), name
    # A third implementation, NumPy float32 in the graph's order, agrees to the bit as well.
    assert np.array_equal(graph_order_float32(student, x).view(np.uint32), out["onnxruntime"].view(np.uint32))


def test_batch_size_changes_no_bit() -> None:
    student = fresh_student(width=32, depth=2)
    out = run_backends(build_student_graph(student), rows(3, 300))["onnxruntime"]
    from tinyvmaf.model.runtime import ort_session

    session = ort_session(build_student_graph(student).SerializeToString())
    one = np.concatenate([session.run(None, {"features": r[None]})[0] for r in rows(3, 300)])
    assert np.array_equal(one.view(np.uint32), out.view(np.uint32))


def test_parity_check_passes_a_fresh_student_inside_its_bound() -> None:
    student = fresh_student()
    res = parity_check(
        build_student_graph(student),
        student,
        {"random": rows(1, 5000), "unseen": rows(2, 5000)},
        max_ulp_scaled=2,
        ulp_scale=64.0,
        student_max_ulp=64,
    )
    crit = {c.name: c for c in res.criteria}
    assert res.passed, [c.describe() for c in res.criteria if not c.passed]
    assert crit["onnxruntime_vs_reference_evaluator_ulp"].value == 0.0
    assert crit["onnxruntime_unoptimised_vs_reference_evaluator_ulp"].value == 0.0
    for b in ("onnxruntime", "onnxruntime_unoptimised", "reference_evaluator"):
        assert 0 < crit[f"{b}_bound_ratio"].value <= 1, b
    assert set(res.details["onnxruntime_vs_reference_evaluator"]["max_ulp_by_set"]) == {"random", "unseen"}


def test_a_gemm_graph_is_rejected_by_the_ops_check() -> None:
    student = fresh_student(width=16, depth=2)
    mean, std = student.mean.numpy(), student.std.numpy()
    gemm = build_graph(mean, std, student_layers(student), activation="hardswish", writer=GemmWriter)
    res = ops_check(gemm)
    assert not res.passed and res.details["disallowed"] == ["Gemm"]
    assert ops_check(build_student_graph(student)).passed


def test_a_sigmoid_graph_is_rejected_by_the_ops_check() -> None:
    """SiLU still exports (old checkpoints), but Sigmoid is not correctly rounded: the gate refuses it by name."""
    res = ops_check(build_student_graph(fresh_student("silu", width=16, depth=2)))
    assert not res.passed and res.details["disallowed"] == ["Sigmoid"]
    assert res.criteria[0].info == "Sigmoid"


@pytest.mark.parametrize("op", ["Gemm", "MatMul", "ReduceSum", "Sigmoid", "Exp", "HardSwish", "HardSigmoid"])
def test_backend_ordered_or_not_correctly_rounded_ops_are_not_allowed(op: str) -> None:
    assert op not in EMITTED_OPS


def test_model_is_checker_clean_and_plain() -> None:
    model = build_student_graph(fresh_student(width=8, depth=1))
    onnx.checker.check_model(model, full_check=True)
    assert {n.domain for n in model.graph.node} == {""}
    assert {n.op_type for n in model.graph.node} <= set(EMITTED_OPS)


def bootstrap_student(seed: int = 0) -> StudentMLP:
    """An untrained student of ``vmaf_b_v0.6.3``: 21 heads, raw (unclipped) outputs spread like components."""
    torch.manual_seed(seed)
    student = StudentMLP(64, 3, activation="hardswish", dropout=0.0, teacher="vmaf_b_v0.6.3")
    x = torch.from_numpy(random_rows(4096, seed, QUALITY_MAX, MOTION2_MAX))
    student.set_normalisation(x.mean(0), x.std(0))
    with torch.no_grad():
        last = student.linears()[-1]
        y = student.forward_unclipped(x)
        last.weight.mul_(15.0 / y.std(0)[:, None])
        last.bias.sub_(student.forward_unclipped(x).mean(0) - 50.0)
    return student.eval()


def test_a_bootstrap_student_outputs_its_heads_unclipped_and_bit_identical_on_every_backend() -> None:
    student = bootstrap_student()
    model = build_student_graph(student)
    assert [o.name for o in model.graph.output] == ["heads"]
    assert "Clip" not in {n.op_type for n in model.graph.node if n.name.startswith("clip")}
    x = np.concatenate([rows(1, 5000), rows(2, 5000)])
    out = run_backends(model, x)
    assert out["onnxruntime"].shape == (10_000, 21)
    assert float(out["onnxruntime"].max()) > 100 or float(out["onnxruntime"].min()) < 0  # really not clipped
    for name in ("onnxruntime", "onnxruntime_unoptimised"):
        assert np.array_equal(out[name].view(np.uint32), out["reference_evaluator"].view(np.uint32)), name
    assert np.array_equal(graph_order_float32(student, x).view(np.uint32), out["onnxruntime"].view(np.uint32))
    with torch.no_grad():
        torch_out = student(torch.from_numpy(x)).numpy()
    assert torch_out.shape == (10_000, 21) and np.abs(torch_out - out["onnxruntime"]).max() < 1e-3
    res = parity_check(
        model, student, {"random": rows(1, 5000), "unseen": rows(2, 5000)}, max_ulp_scaled=2, ulp_scale=64.0,
        student_max_ulp=64,
    )  # fmt: skip
    assert res.passed, [c.describe() for c in res.criteria if not c.passed]
    assert res.details["onnxruntime"]["worst_row"]["head"].startswith("head_")
