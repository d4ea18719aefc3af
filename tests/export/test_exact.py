"""The exact teacher graphs: allow-listed ops, float32-exact against the float64 teacher, the same bits everywhere."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import onnx
import pytest

from tinyvmaf.contract import IR_VERSION, OPSET
from tinyvmaf.export import exact
from tinyvmaf.export.exact import (
    ALLOWED_OPS,
    HEADS_NAME,
    build_exact_bootstrap_graph,
    build_exact_graph,
    exact_reference,
    parameter_count,
)
from tinyvmaf.gate.parity import scaled_ulp, ulp_at
from tinyvmaf.model.runtime import ort_session
from tinyvmaf.teacher.bootstrap import load_bootstrap
from tinyvmaf.teacher.spec import load_spec

SPECS = ("vmaf_v0.6.1", "vmaf_v1.0.16_3d0h", "vmaf_v1.0.16_3d0h_2160")
BOOT = "vmaf_b_v0.6.3"
NAMES = (*SPECS, BOOT)
#: Rows per dense check: the float64 bootstrap teacher costs ~0.15 ms a row (21 SVRs), so it gets fewer.
N_ROWS = {**dict.fromkeys(SPECS, 100_000), BOOT: 8192}
#: Rows per parity check (onnx.reference is the slow one).
N_PARITY = {**dict.fromkeys(SPECS, 8192), BOOT: 256}
#: Plausible feature ranges (what libvmaf writes for real video), and the share of exact-zero speed_chroma_uv.
RANGES = {
    "adm2": (0.0, 1.2),
    "vif_scale0": (0.0, 1.2),
    "vif_scale1": (0.0, 1.2),
    "vif_scale2": (0.0, 1.2),
    "vif_scale3": (0.0, 1.2),
    "motion2": (0.0, 60.0),
    "cambi": (0.0, 17.0),
    "speed_chroma_uv": (0.0, 45.0),
    "adm3": (0.5, 1.0),
    "motion3": (0.0, 18.0),
}
SPEED_ZEROS = 0.15
UNIT = ulp_at(64.0)


def in_range_rows(order: tuple[str, ...], n: int, seed: int) -> np.ndarray:
    """Uniform float32 rows inside :data:`RANGES`, with exact zeros in speed_chroma_uv."""
    rng = np.random.default_rng([seed, 2024])
    x = np.empty((n, len(order)), dtype=np.float64)
    for j, f in enumerate(order):
        x[:, j] = rng.uniform(*RANGES[f], n)
        if f == "speed_chroma_uv":
            x[rng.random(n) < SPEED_ZEROS, j] = 0.0
    return x.astype(np.float32)


def _output(model: onnx.ModelProto) -> str:
    return model.graph.output[0].name


def run_ort(model: onnx.ModelProto, x: np.ndarray, *, optimise: bool = True, batch: int = 512) -> np.ndarray:
    sess = ort_session(model.SerializeToString(), optimise=optimise)
    out = _output(model)
    return np.concatenate([sess.run([out], {"features": x[i : i + batch]})[0] for i in range(0, len(x), batch)])


def run_reference_evaluator(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    ref = ReferenceEvaluator(model)
    with np.errstate(over="ignore", invalid="ignore"):  # |s|·2^126 overflows to inf on purpose (then clipped)
        return ref.run([_output(model)], {"features": x})[0]


@dataclasses.dataclass
class Case:
    name: str
    source: object  # TeacherSpec or BootstrapTeacher
    model: onnx.ModelProto
    x: np.ndarray
    teacher64: np.ndarray  # the float64 teacher on the same float32 rows
    ort: np.ndarray


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    out = {}
    for i, name in enumerate(NAMES):
        if name == BOOT:
            src = load_bootstrap(name)
            model, order = build_exact_bootstrap_graph(src), src.input_order
            want = lambda x, b=src: b.components(x.astype(np.float64))  # noqa: E731
        else:
            src = load_spec(name)
            model, order = build_exact_graph(src), src.order
            want = lambda x, s=src: s.predict(x.astype(np.float64))  # noqa: E731
        x = in_range_rows(order, N_ROWS[name], seed=i)
        out[name] = Case(name, src, model, x, want(x), run_ort(model, x))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_op_is_on_the_forks_allow_list(cases: dict[str, Case], name: str) -> None:
    ops = {n.op_type for n in cases[name].model.graph.node}
    assert ops <= ALLOWED_OPS, ops - ALLOWED_OPS
    assert "Exp" not in ops and "MatMul" not in ops  # on the list, but not the same bits on every backend


def test_the_allow_list_is_the_forks() -> None:
    """Spot checks against libvmaf/src/dnn/op_allowlist.c (lusoris/vmaf), as the issue quotes it."""
    assert {"Clip", "Min", "Max", "Mul", "Add", "Sub", "HardSigmoid", "HardSwish", "Gather", "Cast"} <= ALLOWED_OPS
    assert not {"Equal", "Where", "Split", "Floor", "Round", "Greater", "Less", "Not"} & ALLOWED_OPS
    assert len(ALLOWED_OPS) == 61


@pytest.mark.parametrize("name", NAMES)
def test_interface_and_metadata(cases: dict[str, Case], name: str) -> None:
    c = cases[name]
    m = c.model
    onnx.checker.check_model(m, full_check=True)
    assert [(o.domain, o.version) for o in m.opset_import] == [("", OPSET)] and m.ir_version == IR_VERSION
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["teacher"] == name and meta["kind"] == "exact"
    (inp,), (out,) = m.graph.input, m.graph.output
    dims = [(d.dim_param, d.dim_value) for d in inp.type.tensor_type.shape.dim]
    order = json.loads(meta["feature_order"])
    assert inp.name == "features" and dims == [("N", 0), ("", len(order))]
    if name == BOOT:
        assert out.name == HEADS_NAME and order == list(c.source.input_order)
        assert json.loads(meta["components"]) == [f"{BOOT}_{k:02d}" for k in range(21)]
        assert c.ort.shape == (len(c.x), 21)
    else:
        assert out.name == "vmaf" and order == list(c.source.order)
        assert c.ort.shape == (len(c.x),)
    assert c.ort.dtype == np.float32
    for n in (1, 3):  # any batch size
        np.testing.assert_array_equal(run_ort(m, c.x[:n]), c.ort[:n])


@pytest.mark.parametrize("name", NAMES)
def test_dense_accuracy_against_the_float64_teacher(cases: dict[str, Case], name: str) -> None:
    c = cases[name]
    err = c.ort.astype(np.float64) - c.teacher64
    rmse, worst = float(np.sqrt(np.mean(err**2))), float(np.abs(err).max())
    print(f"{name}: {len(c.x)} rows, RMSE {rmse:.2e}, max |err| {worst:.2e}")
    assert rmse <= 0.005
    assert worst <= 0.01  # measured ≤ 1.7e-3: float32 rounding of a cancelling sum, times 1/slope₀ ≈ 83


@pytest.mark.parametrize("name", ["vmaf_v1.0.16_3d0h", "vmaf_v1.0.16_3d0h_2160"])
def test_exact_zero_speed_takes_the_corrected_branch(cases: dict[str, Case], name: str) -> None:
    c = cases[name]
    s = c.source.order.index("speed_chroma_uv")
    zero = c.x[:, s] == 0.0
    assert zero.mean() >= 0.10
    np.testing.assert_allclose(c.ort[zero], c.teacher64[zero], atol=0.005, rtol=0)
    # without the correction the same rows score elsewhere: the graph really took the other branch
    plain = dataclasses.replace(c.source.teacher, chroma_correction=None)
    uncorrected = plain.predict(c.x[zero].astype(np.float64), order=c.source.order)
    assert np.median(np.abs(uncorrected - c.teacher64[zero])) > 1.0
    # the smallest non-zero float32 is not zero: no correction (the graph tests the raw value exactly)
    tiny = c.x[zero][:256].copy()
    tiny[:, s] = np.float32(2.0**-149)
    np.testing.assert_allclose(run_ort(c.model, tiny), uncorrected[:256], atol=0.005, rtol=0)


def test_the_zero_indicator_is_exact() -> None:
    """nz = Clip(Clip(|s|·2^126, 0, 1)·2^24, 0, 1): exactly 0 for ±0, exactly 1 for every other float32."""
    f32 = np.float32
    pos = np.array([2.0**-149, 2.0**-126, 1e-30, 1e-7, 0.5, 1.0, 45.0, 3.4e38, np.inf], f32)
    s = np.concatenate([[f32(0.0), f32(-0.0)], pos, -pos]).astype(f32)
    with np.errstate(over="ignore"):
        nz = np.clip(np.clip(np.abs(s) * exact._NZ_LIFT, f32(0), f32(1)) * exact._NZ_STEP, f32(0), f32(1))
    assert nz.dtype == np.float32
    assert nz.tolist() == [0.0, 0.0] + [1.0] * (2 * len(pos))


def test_2160_clips_at_110(cases: dict[str, Case]) -> None:
    c = cases["vmaf_v1.0.16_3d0h_2160"]
    assert c.source.clip == (0.0, 110.0)
    over = c.teacher64 == 110.0  # the float64 teacher clipped there: unclipped it is above 110
    assert over.any()
    assert float(c.ort.max()) == 110.0 and np.count_nonzero(c.ort == np.float32(110.0)) >= 0.9 * over.sum()
    np.testing.assert_allclose(c.ort[over], 110.0, atol=0.005, rtol=0)  # float32 may land just under the clip
    assert np.count_nonzero((c.ort > 100.0) & (c.ort < 110.0)) > 0  # the range above 100 is used, not clipped away
    other = cases["vmaf_v1.0.16_3d0h"]  # its sibling clips at 100
    assert float(other.ort.max()) == 100.0


@pytest.mark.parametrize("name", NAMES)
def test_backends_agree_to_two_ulps(cases: dict[str, Case], name: str) -> None:
    """ONNX Runtime (optimised and not) against onnx.reference and exact_reference: ≤ 2 ULP at scale 64 (measured 0)."""
    c = cases[name]
    x = c.x[: N_PARITY[name]]
    ort = c.ort[: len(x)]
    others = {
        "onnxruntime_unoptimised": run_ort(c.model, x, optimise=False),
        "reference_evaluator": run_reference_evaluator(c.model, x),
        "exact_reference": exact_reference(c.model, x),
    }
    for label, y in others.items():
        assert y.shape == ort.shape and y.dtype == np.float32
        d = float(scaled_ulp(ort, y, UNIT).max())
        print(f"{name}: onnxruntime vs {label}: {d:g} ULP at 64")
        assert d <= 2.0, (label, d)


def test_serialisation_is_deterministic() -> None:
    from tinyvmaf.teacher.svr import load_teacher

    first = {name: build_exact_graph(load_spec(name)).SerializeToString() for name in SPECS}
    boot = build_exact_bootstrap_graph(load_bootstrap(BOOT)).SerializeToString()
    for loader in (load_spec, load_teacher, load_bootstrap):  # parsed afresh from the model files
        loader.cache_clear()
    assert {name: build_exact_graph(load_spec(name)).SerializeToString() for name in SPECS} == first
    assert build_exact_bootstrap_graph(load_bootstrap(BOOT)).SerializeToString() == boot
    assert len(set(first.values())) == len(SPECS)  # and different teachers differ


def test_exact_reference_refuses_a_foreign_graph(cases: dict[str, Case]) -> None:
    m = onnx.ModelProto()
    m.CopyFrom(cases["vmaf_v0.6.1"].model)
    coef = next(t for t in m.graph.initializer if t.name == "svr.coef")
    arr = onnx.numpy_helper.to_array(coef).copy()
    arr[0, 0] += 1e-3
    coef.CopyFrom(onnx.numpy_helper.from_array(arr, "svr.coef"))
    with pytest.raises(ValueError, match="not the exact graph"):
        exact_reference(m, cases["vmaf_v0.6.1"].x[:4])
    with pytest.raises(ValueError, match=r"\[N, 6\]"):
        exact_reference(load_spec("vmaf_v0.6.1"), np.zeros((2, 4), np.float32))


def test_nan_and_infinite_features_follow_the_teacher() -> None:
    """A NaN feature gives NaN (no Gather error: the index is clipped), ±inf and negatives what the teacher gives."""
    for name in ("vmaf_v0.6.1", "vmaf_v1.0.16_3d0h"):
        spec = load_spec(name)
        f = len(spec.order)
        x = np.full((6, f), 0.5, np.float32)
        x[1, 0], x[2, 0], x[3, 0], x[4, 1], x[5, 1] = np.nan, np.inf, -5.0, np.nan, -0.0
        got, want = run_ort(build_exact_graph(spec), x), spec.predict(x.astype(np.float64))
        np.testing.assert_allclose(got, want, atol=0.005, rtol=0, equal_nan=True)


def test_parameter_count() -> None:
    v061 = load_spec("vmaf_v0.6.1")
    assert parameter_count(v061) == 211 * 6 + 211 + 2 + 2 * 7 + 2  # SVs, coef, gamma/rho, slopes/intercepts, clip
    v1016 = load_spec("vmaf_v1.0.16_3d0h")  # + transform p0..p2 + the chroma parameter
    assert parameter_count(v1016) == 215 * 4 + 215 + 2 + 2 * 5 + 3 + 2 + 1
    boot = load_bootstrap(BOOT)
    assert parameter_count(boot) == sum(m.coef.size * 7 + 2 + 14 for m in boot.models)


def test_throughput_single_thread(cases: dict[str, Case]) -> None:
    """Rows/s at batch 4096, one intra-op thread (printed; asserted only as a sanity floor)."""
    for name, c in cases.items():
        if name == BOOT:  # 0.7 s a batch; measured for the module docstring, not here
            continue
        sess = ort_session(c.model.SerializeToString(), threads=1)
        x = c.x[:4096]
        sess.run([_output(c.model)], {"features": x})
        t, runs = time.perf_counter(), 0
        while time.perf_counter() - t < 0.1:
            sess.run([_output(c.model)], {"features": x})
            runs += 1
        rate = runs * len(x) / (time.perf_counter() - t)
        print(f"{name}: {rate:,.0f} rows/s (1 thread, batch {len(x)})")
        assert rate > 500
