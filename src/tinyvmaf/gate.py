"""The gate: the last DVC stage, a set of checks that can fail.

Each check yields *criteria* (a value, a threshold, a comparison, pass/fail);
``metrics/gate.json`` records every one of them and the stage exits non-zero
naming the checks that failed, so ``dvc repro`` stops there.

contract  the file is what DESIGN.md promises: opset 17, ``features [N,6]``
          float32 in, ``vmaf [N]`` float32 out, dynamic batch, the metadata.
ops       only the operators listed in ``gate.allowed_ops`` appear.
golden    the extract path reproduces the teacher on golden pairs: the
          project's own set (generated here with FFmpeg, pinned in
          ``conf/golden/project.json``) and Netflix's when present.
fidelity  the exported student (ONNX Runtime) against the teacher on the
          ``test`` split: PLCC, SROCC, RMSE, max |error|.
parity    ONNX Runtime and the ONNX reference evaluator against the PyTorch
          student, in float32, on every test row plus edge rows: max ULP
          distance (bit patterns, :mod:`tinyvmaf.ulp`), never an absolute
          tolerance.

About parity and summation order.  Every op of the graph is exactly rounded
(Sub, Div, Relu, Squeeze, Clip) except Gemm, whose dot products each library
sums in its own order.  Measured on CPU: hidden layers (``[N,k]x[k,64]``)
agree bit for bit between ONNX Runtime (MLAS) and torch (MKL sgemm) — both
accumulate ``k`` in ascending order with fused multiply-adds, then add the
bias — but torch routes the last layer (one output) through MKL's GEMV,
NumPy (the reference evaluator) through OpenBLAS, each with partial sums in
a different order: on trained 64-wide students that alone is 4 to 5 ULP at
the output, more than the 2 the contract allows; ONNX Runtime and the stock
reference evaluator were 4 to 5 ULP apart from each other, and at 5 no
single reference can be within 2 ULP of both.  The reference here therefore
computes the graph's own ops in the graph's op order, in float32: Sub, Div,
then each Gemm as ``k``-ascending fused multiply-adds from zero followed by
the bias add, ReLU, Clip (:func:`torch_reference`); the reference evaluator
runs with its Gemm pinned to that same order (:class:`CanonicalGemm`), so it
still checks the graph's wiring and every other op's semantics
independently of ONNX Runtime.  The un-pinned numbers (torch's own
``StudentMLP.forward``, the stock reference evaluator) are measured and
written beside the gated ones, ungated, so the disagreement stays visible.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shlex
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_write_text
from .export import (
    BATCH_DIM,
    CONTRACT_OPSET,
    DEFAULT_ONNX_PATH,
    DEFAULT_TEACHER,
    INPUT_NAME,
    OUTPUT_NAME,
    REQUIRED_METADATA,
    ort_session,
    run_session,
    test_rows,
)
from .libvmaf import FEATURES
from .metrics import fidelity_metrics
from .provenance import file_sha256

if TYPE_CHECKING:
    import onnx
    import torch

    from .student import StudentMLP

log = logging.getLogger(__name__)

CHECKS: tuple[str, ...] = ("contract", "ops", "golden", "fidelity", "parity")
GOLDEN_ENV = "TINYVMAF_GOLDEN_DIR"
PROJECT_GOLDEN_FILE = "project.json"
#: Keys of a golden ``expected`` block: the pooled teacher score and the six features.
GOLDEN_KEYS: tuple[str, ...] = ("vmaf", *FEATURES)


# --------------------------------------------------------------------------- results


@dataclass
class Criterion:
    """One comparison of a measured value with its threshold."""

    name: str
    value: float | int | None
    threshold: float | int
    op: str  # ">=", "<=", "=="
    info: str = ""

    @property
    def passed(self) -> bool:
        v = self.value
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return False
        return {">=": v >= self.threshold, "<=": v <= self.threshold, "==": v == self.threshold}[self.op]

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"value": _json_num(self.value), "threshold": self.threshold, "op": self.op}
        d["pass"] = self.passed
        if self.info:
            d["info"] = self.info
        return d

    def describe(self) -> str:
        return f"{self.name} = {_fmt(self.value)} (needs {self.op} {_fmt(self.threshold)})"


@dataclass
class CheckResult:
    """The outcome of one check: its criteria, free-form details, or the error that stopped it."""

    name: str
    criteria: list[Criterion] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def passed(self) -> bool:
        # A check that measured nothing cannot vouch for anything.
        return self.error is None and bool(self.criteria) and all(c.passed for c in self.criteria)

    def failures(self) -> list[str]:
        if self.error is not None:
            return [f"error: {self.error}"]
        if not self.criteria:
            return ["no criterion was evaluated"]
        return [c.describe() for c in self.criteria if not c.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pass": self.passed,
            "criteria": {c.name: c.as_dict() for c in self.criteria},
            "details": self.details,
            "error": self.error,
        }


@dataclass
class GateReport:
    model: str
    model_sha256: str | None
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pass": self.passed,
            "failed": self.failed,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "checks": {c.name: c.as_dict() for c in self.checks},
        }


def _json_num(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN/inf; None reads as "not measured" and fails its criterion
    return v


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class GateConfig:
    """Everything the gate reads; built from ``params.yaml`` (``gate:``), overridable per field."""

    model: Path = Path(DEFAULT_ONNX_PATH)
    ckpt: Path = Path("models/best.ckpt")
    labels: Path = Path("labels.parquet")
    teacher: str = DEFAULT_TEACHER
    out: Path = Path("metrics/gate.json")
    report: Path = Path("reports/gate.md")
    checks: tuple[str, ...] = CHECKS
    golden_dir: Path = Path("conf/golden")
    golden_sets: tuple[str, ...] = ("project", "netflix")
    golden_tolerance: float = 5e-5
    netflix_dir: Path | None = None  # None: $TINYVMAF_GOLDEN_DIR, else ../shared/golden/netflix
    plcc_min: float = 0.995
    srocc_min: float = 0.995
    rmse_max: float = 3.0
    max_abs_max: float = 20.0
    parity_max_ulp: int = 2
    parity_reference_gemm: str = "canonical"  # canonical | numpy (the stock reference evaluator)
    motion2_large: float = 1000.0
    allowed_ops: tuple[str, ...] = ("Gemm", "Sub", "Div", "Relu", "Squeeze", "Clip")
    ffmpeg: str | None = None

    @classmethod
    def from_params(cls, params: Any, **overrides: Any) -> GateConfig:
        g = params.get("gate", {}) or {}
        ex = params.get("export", {}) or {}
        lab = params.get("label", {}) or {}
        ext = params.get("extract", {}) or {}
        fid = g.get("fidelity", {}) or {}
        netflix = g.get("netflix_dir")
        kw: dict[str, Any] = {
            "model": Path(g.get("model") or ex.get("path") or DEFAULT_ONNX_PATH),
            "ckpt": Path(g.get("ckpt", cls.ckpt)),
            "labels": Path(g.get("labels", cls.labels)),
            "teacher": str(lab.get("teacher", cls.teacher)),
            "out": Path(g.get("out", cls.out)),
            "report": Path(g.get("report", cls.report)),
            "golden_dir": Path(g.get("golden_dir", cls.golden_dir)),
            "golden_sets": tuple(g.get("golden_sets", cls.golden_sets)),
            "golden_tolerance": float(g.get("golden_tolerance", cls.golden_tolerance)),
            "netflix_dir": Path(netflix) if netflix else None,
            "plcc_min": float(fid.get("plcc_min", cls.plcc_min)),
            "srocc_min": float(fid.get("srocc_min", cls.srocc_min)),
            "rmse_max": float(fid.get("rmse_max", cls.rmse_max)),
            "max_abs_max": float(fid.get("max_abs_max", cls.max_abs_max)),
            "parity_max_ulp": int(g.get("parity_max_ulp", cls.parity_max_ulp)),
            "parity_reference_gemm": str(g.get("parity_reference_gemm", cls.parity_reference_gemm)),
            "motion2_large": float(g.get("motion2_large", cls.motion2_large)),
            "allowed_ops": tuple(g.get("allowed_ops", cls.allowed_ops)),
            "ffmpeg": ext.get("ffmpeg"),
        }
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)


def netflix_golden_dir(explicit: Path | None = None) -> Path:
    """Config > ``$TINYVMAF_GOLDEN_DIR`` > ``<repo>/../shared/golden/netflix`` (repo = the working dir)."""
    if explicit is not None:
        return explicit
    env = os.environ.get(GOLDEN_ENV)
    if env:
        return Path(env)
    return Path.cwd().parent / "shared" / "golden" / "netflix"


# --------------------------------------------------------------------------- contract and ops


def contract_check(model: onnx.ModelProto) -> CheckResult:
    """The ONNX contract of DESIGN.md, read from the file itself."""
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
        if len(d) != 2 or not isinstance(d[0], str) or d[1] != len(FEATURES):
            problems.append(f"input shape {d} != [{BATCH_DIM}, {len(FEATURES)}] with a symbolic batch")
    if [o.name for o in outs] != [OUTPUT_NAME]:
        problems.append(f"outputs {[o.name for o in outs]} != [{OUTPUT_NAME!r}]")
    else:
        t = outs[0].type.tensor_type
        if t.elem_type != TensorProto.FLOAT:
            problems.append(f"output dtype {TensorProto.DataType.Name(t.elem_type)} != FLOAT")
        d = dims(outs[0])
        if len(d) != 1 or not isinstance(d[0], str):
            problems.append(f"output shape {d} != [{BATCH_DIM}] with a symbolic batch")
    meta = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in REQUIRED_METADATA if not meta.get(k)]
    try:
        order = json.loads(meta.get("feature_order", "null"))
    except json.JSONDecodeError:
        order = None
    if order != list(FEATURES):
        problems.append(f"metadata feature_order {meta.get('feature_order')!r} != {list(FEATURES)}")
    res.details.update({"problems": problems, "missing_metadata": missing, "metadata": meta})
    res.criteria += [
        Criterion("opset", opset, CONTRACT_OPSET, "=="),
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


def ops_check(model: onnx.ModelProto, allowed: tuple[str, ...]) -> CheckResult:
    """Only plain ops of the default domain that the config allows."""
    ops = graph_ops(model)
    bad = sorted({f"{d}::{op}" if d not in ("", "ai.onnx") else op for d, op in ops if d not in ("", "ai.onnx")})
    bad += sorted({op for d, op in ops if d in ("", "ai.onnx") and op not in allowed})
    res = CheckResult("ops", details={"ops": [op for _, op in ops], "disallowed": bad, "allowed": list(allowed)})
    res.criteria.append(Criterion("disallowed_ops", len(bad), 0, "<=", info=", ".join(bad)))
    return res


# --------------------------------------------------------------------------- fidelity


def fidelity_check(cfg: GateConfig) -> CheckResult:
    """The shipped file (ONNX Runtime) against the teacher, frame level, on ``test``."""
    x, y, _ = test_rows(cfg.labels, cfg.teacher)
    if len(x) < 2:
        raise ValueError(f"{cfg.labels}: the test split has {len(x)} frame(s); fidelity needs at least 2")
    pred = run_session(ort_session(cfg.model), x)
    m = fidelity_metrics(pred, y)
    res = CheckResult("fidelity", details={"n_frames": m["n"], "teacher": cfg.teacher})
    res.criteria += [
        Criterion("plcc", m["plcc"], cfg.plcc_min, ">="),
        Criterion("srocc", m["srocc"], cfg.srocc_min, ">="),
        Criterion("rmse", m["rmse"], cfg.rmse_max, "<="),
        Criterion("max_abs", m["max_abs"], cfg.max_abs_max, "<="),
    ]
    return res


# --------------------------------------------------------------------------- parity


def canonical_linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``h @ weight.T + bias`` in float32, ``k`` ascending, fused multiply-add, then the bias add.

    Each step is ``round32(acc + h_k * w_k)``: the product of two float32 is
    exact in float64 and the sum is rounded once to float64, then to float32
    (a fused multiply-add up to a double rounding that needs an exact float32
    tie — not seen in practice).  This is the order ONNX Runtime's MLAS and
    MKL's SGEMM use for these shapes (measured bit-exact up to width 256).
    """
    import torch

    acc = torch.zeros(h.shape[0], weight.shape[0], dtype=torch.float32)
    hd, wd = h.to(torch.float64), weight.to(torch.float64)
    for k in range(weight.shape[1]):
        acc = (acc.to(torch.float64) + hd[:, k : k + 1] * wd[:, k]).to(torch.float32)
    return acc + bias.to(torch.float32)


def torch_reference(student: StudentMLP, x: np.ndarray) -> np.ndarray:
    """The PyTorch student in float32, op for op and in the order of the exported graph."""
    import torch
    from torch import nn

    linears = [m for m in student.net if isinstance(m, nn.Linear)]
    with torch.no_grad():
        h = (torch.from_numpy(np.ascontiguousarray(x, np.float32)) - student.mean) / student.std
        for i, lin in enumerate(linears):
            h = canonical_linear(h, lin.weight, lin.bias)
            if i < len(linears) - 1:
                h = torch.relu(h)
        out = torch.clamp(h.squeeze(-1), 0.0, 100.0)
    return out.numpy().astype(np.float32)


def torch_forward(student: StudentMLP, x: np.ndarray) -> np.ndarray:
    """``StudentMLP.forward`` as is (torch's own kernels): measured, not gated."""
    import torch

    with torch.no_grad():
        return student(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy().astype(np.float32)


def _canonical_gemm_class() -> type:
    from onnx.reference.op_run import OpRun

    class Gemm(OpRun):
        """Gemm for the reference evaluator with :func:`canonical_linear`'s summation order."""

        op_domain = ""

        def _run(self, a, b, c=None, alpha=None, beta=None, transA=None, transB=None):  # noqa: N803 - ONNX names
            a = a.T if transA else a
            b = b.T if transB else b
            acc = np.zeros((a.shape[0], b.shape[1]), dtype=np.float32)
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            for k in range(a.shape[1]):
                acc = (acc.astype(np.float64) + a64[:, k : k + 1] * b64[k]).astype(np.float32)
            if alpha not in (None, 1.0):
                acc = (acc * np.float32(alpha)).astype(np.float32)
            if c is not None and beta != 0:
                cc = c if beta in (None, 1.0) else (c * np.float32(beta)).astype(np.float32)
                acc = (acc + cc).astype(np.float32)
            return (acc.astype(a.dtype),)

    return Gemm


def reference_evaluator_run(model: onnx.ModelProto, x: np.ndarray, *, gemm: str = "canonical") -> np.ndarray:
    """Run the ONNX reference evaluator; ``gemm='canonical'`` pins Gemm's summation order."""
    from onnx.reference import ReferenceEvaluator

    if gemm not in ("canonical", "numpy"):
        raise ValueError(f"parity_reference_gemm must be 'canonical' or 'numpy', got {gemm!r}")
    new_ops = [_canonical_gemm_class()] if gemm == "canonical" else None
    ev = ReferenceEvaluator(model, new_ops=new_ops)
    (out,) = ev.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, np.float32)})
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


def parity_check(cfg: GateConfig, model: onnx.ModelProto) -> CheckResult:
    """ORT and the reference evaluator vs the PyTorch student, in ULPs, on test + edge rows."""
    import pandas as pd

    from .student import load_student
    from .ulp import max_ulp, ulp_distance

    student, _ = load_student(cfg.ckpt)
    x_test, _, _ = test_rows(cfg.labels, cfg.teacher)
    all_x = pd.read_parquet(cfg.labels, columns=list(FEATURES)).to_numpy(np.float32)
    x_edge, edge_names = edge_rows(all_x, cfg.motion2_large)
    x = np.concatenate([x_test, x_edge])
    ref = torch_reference(student, x)
    ort_out = run_session(ort_session(model.SerializeToString()), x)
    ev_out = reference_evaluator_run(model, x, gemm=cfg.parity_reference_gemm)
    d_ort = ulp_distance(ort_out, ref, nan="propagate")
    d_ev = ulp_distance(ev_out, ref, nan="propagate")
    res = CheckResult("parity")
    res.criteria += [
        Criterion("onnxruntime_vs_torch_ulp", int(d_ort.max()), cfg.parity_max_ulp, "<="),
        Criterion("reference_evaluator_vs_torch_ulp", int(d_ev.max()), cfg.parity_max_ulp, "<="),
    ]
    # Measured, not gated: torch's and NumPy's own summation orders (see the module docstring).
    fwd = torch_forward(student, x)
    stock = ev_out if cfg.parity_reference_gemm == "numpy" else reference_evaluator_run(model, x, gemm="numpy")
    worst = int(np.argmax(d_ort)) if len(d_ort) else 0
    res.details = {
        "rows": {"test": len(x_test), "edge": len(x_edge)},
        "edge_rows": edge_names,
        "torch_reference": "float32, graph op order: Sub, Div, Gemm as k-ascending FMA then bias, Relu, Clip",
        "reference_evaluator_gemm": cfg.parity_reference_gemm,
        "ulp_histogram_onnxruntime": np.bincount(np.minimum(d_ort, 16)).tolist() if len(d_ort) else [],
        "edge_max_ulp_onnxruntime": int(d_ort[len(x_test) :].max()) if len(x_edge) else 0,
        "worst_row": {"index": worst, "torch": float(ref[worst]), "onnxruntime": float(ort_out[worst])}
        if len(d_ort)
        else None,
        "ungated": {
            "onnxruntime_vs_torch_module_forward_ulp": max_ulp(ort_out, fwd, nan="propagate"),
            "stock_reference_evaluator_vs_torch_ulp": max_ulp(stock, ref, nan="propagate"),
            "stock_reference_evaluator_vs_onnxruntime_ulp": max_ulp(stock, ort_out, nan="propagate"),
            "torch_module_forward_vs_torch_reference_ulp": max_ulp(fwd, ref, nan="propagate"),
        },
    }
    return res


# --------------------------------------------------------------------------- golden


@dataclass(frozen=True)
class GoldenRecipe:
    """One project golden pair, made by FFmpeg from a lavfi source, byte-reproducibly.

    The reference is raw planar YUV (no container, nothing to stamp); the
    distorted clip is a libx264 encode with the flags that make it
    byte-reproducible (DESIGN.md: bitexact, no metadata, one thread).
    """

    name: str
    source: str  # lavfi source graph producing the reference frames
    width: int
    height: int
    frames: int
    dist_filter: str | None  # applied to the reference before encoding (e.g. a downscale)
    crf: int
    dist_ext: str = "mp4"
    pix_fmt: str = "yuv420p"

    @property
    def ref_name(self) -> str:
        return f"{self.name}_ref_{self.width}x{self.height}.yuv"

    @property
    def dist_name(self) -> str:
        return f"{self.name}_dist.{self.dist_ext}"

    def ref_args(self, ref: Path) -> list[str]:
        return [
            *("-f", "lavfi", "-i", self.source),
            *("-frames:v", str(self.frames), "-pix_fmt", self.pix_fmt),
            *("-sws_flags", "bicubic+accurate_rnd+bitexact", "-f", "rawvideo", "-y", str(ref)),
        ]

    def dist_args(self, ref: Path, dist: Path) -> list[str]:
        vf = ["-vf", self.dist_filter] if self.dist_filter else []
        return [
            *("-f", "rawvideo", "-pix_fmt", self.pix_fmt, "-s", f"{self.width}x{self.height}"),
            *("-framerate", "25", "-i", str(ref)),
            *vf,
            *("-sws_flags", "bicubic+accurate_rnd+bitexact"),
            *("-c:v", "libx264", "-preset", "medium", "-crf", str(self.crf), "-threads", "1"),
            *("-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", "-y", str(dist)),
        ]


#: The project's own golden pairs: small, few frames; a low- and a high-quality encode, a downscaled one.
PROJECT_RECIPES: tuple[GoldenRecipe, ...] = (
    GoldenRecipe("testsrc2_x264_crf36", "testsrc2=size=256x144:rate=25", 256, 144, 6, None, 36),
    GoldenRecipe(
        "mandelbrot_half_x264_crf28",
        "mandelbrot=size=256x144:rate=25:maxiter=256",
        256,
        144,
        6,
        "scale=128:72",
        28,
        dist_ext="mkv",
    ),
    GoldenRecipe("testsrc2_x264_crf10", "testsrc2=size=256x144:rate=25", 256, 144, 6, None, 10),
)


@dataclass(frozen=True)
class GoldenPair:
    """A golden pair ready to extract, with what it must reproduce."""

    name: str
    ref: Any  # media.Video
    dist: Any
    expected: dict[str, float]
    loose: dict[str, tuple[float, float]] = field(default_factory=dict)


def generate_project_media(folder: Path, ffmpeg: str | None = None) -> dict[str, dict[str, Any]]:
    """Write each recipe's ref/dist into ``folder``; returns per pair the Videos and file hashes."""
    from .ffmpeg import ffmpeg_info, run_ffmpeg
    from .media import Video

    exe = ffmpeg_info(ffmpeg).path
    out: dict[str, dict[str, Any]] = {}
    for r in PROJECT_RECIPES:
        ref, dist = folder / r.ref_name, folder / r.dist_name
        run_ffmpeg(r.ref_args(ref), exe, what=f"generating golden reference {r.name}")
        run_ffmpeg(r.dist_args(ref, dist), exe, what=f"encoding golden distorted {r.name}")
        out[r.name] = {
            "ref": Video(ref, r.width, r.height, r.pix_fmt),
            "dist": Video(dist),
            "sha256": {"ref": file_sha256(ref), "dist": file_sha256(dist)},
            "recipe": r,
        }
    return out


def extract_golden(pairs: list[tuple[str, Any, Any]], teacher: str, ffmpeg: str | None) -> dict[str, dict[str, float]]:
    """Pooled teacher score and features per pair, through the extract path with a fresh cache.

    A fresh cache makes the gate run libvmaf for real: a stale or hand-edited
    cache entry must not be able to vouch for the extractor.
    """
    from .extract import ExtractConfig, extract_pairs
    from .manifest import Pair

    with tempfile.TemporaryDirectory(prefix="tinyvmaf-golden-cache-") as cache:
        cfg = ExtractConfig(teachers=(teacher,), frame_policy="error", workers=2, ffmpeg=ffmpeg, cache_dir=cache)
        plist = [Pair(key=name, content=name, ref=ref, dist=dist) for name, ref, dist in pairs]
        results, _ = extract_pairs(plist, cfg, progress=False)
    pooled: dict[str, dict[str, float]] = {}
    for name, _, _ in pairs:
        frames = results[name]
        row = {k: sum(f[k] for f in frames) / len(frames) for k in (*FEATURES, teacher)}
        row["vmaf"] = row.pop(teacher)
        row["frames"] = len(frames)
        pooled[name] = row
    return pooled


def _compare_set(
    set_name: str,
    pairs: list[GoldenPair],
    got: dict[str, dict[str, float]],
    tolerance: float,
    res: CheckResult,
) -> None:
    for p in pairs:
        devs = {k: abs(got[p.name][k] - v) for k, v in p.expected.items() if k in got[p.name]}
        missing = [k for k in p.expected if k not in got[p.name]]
        worst_key = max(devs, key=devs.__getitem__) if devs else None
        value = max(devs.values()) if devs and not missing else None
        res.criteria.append(
            Criterion(
                f"{set_name}/{p.name}",
                value,
                tolerance,
                "<=",
                info=f"worst key {worst_key}" + (f"; missing {missing}" if missing else ""),
            )
        )
        for k, (v, tol) in p.loose.items():
            res.criteria.append(Criterion(f"{set_name}/{p.name}/{k}", abs(got[p.name][k] - v), tol, "<="))
        res.details.setdefault(set_name, {})[p.name] = {
            "got": got[p.name],
            "expected": p.expected,
            "abs_dev": devs,
        }


def load_project_golden(golden_dir: Path) -> dict[str, Any]:
    path = golden_dir / PROJECT_GOLDEN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no pinned project golden set (run `tinyvmaf gate --regenerate-golden`)")
    return json.loads(path.read_text())


def golden_project(cfg: GateConfig, res: CheckResult) -> None:
    spec = load_project_golden(cfg.golden_dir)
    pinned = {p["name"]: p for p in spec.get("pairs", [])}
    recipes = {r.name for r in PROJECT_RECIPES}
    if set(pinned) != recipes:
        raise ValueError(
            f"{cfg.golden_dir / PROJECT_GOLDEN_FILE} pins {sorted(pinned)} but the recipes are {sorted(recipes)}; "
            "run `tinyvmaf gate --regenerate-golden`"
        )
    with tempfile.TemporaryDirectory(prefix="tinyvmaf-golden-") as tmp:
        media = generate_project_media(Path(tmp), cfg.ffmpeg)
        drift = {
            name: m["sha256"] for name, m in media.items() if m["sha256"] != pinned[name].get("sha256", m["sha256"])
        }
        # Media that differ from the pinned bytes would be scored against numbers made from other
        # bytes: say so instead of reporting a mysterious deviation.
        res.criteria.append(
            Criterion(
                "project/media_sha256_mismatches",
                len(drift),
                0,
                "<=",
                info="FFmpeg generated other bytes than were pinned (another FFmpeg build?)" if drift else "",
            )
        )
        got = extract_golden([(n, m["ref"], m["dist"]) for n, m in media.items()], cfg.teacher, cfg.ffmpeg)
    pairs = [GoldenPair(n, None, None, {k: float(v) for k, v in pinned[n]["expected"].items()}) for n in media]
    _compare_set("project", pairs, got, cfg.golden_tolerance, res)


def golden_netflix(cfg: GateConfig, res: CheckResult) -> None:
    from .media import Video

    folder = netflix_golden_dir(cfg.netflix_dir)
    spec_path = folder / "golden.json"
    if not spec_path.is_file():
        res.details["netflix"] = f"skipped: {spec_path} not present (set ${GOLDEN_ENV})"
        return
    spec = json.loads(spec_path.read_text())
    pairs: list[GoldenPair] = []
    for p in spec["pairs"]:
        ref = Video(folder / p["ref"], p.get("width"), p.get("height"), p.get("pix_fmt"))
        dist = Video(folder / p["dist"], p.get("width"), p.get("height"), p.get("pix_fmt"))
        loose = {k: (float(v[0]), float(v[1])) for k, v in (p.get("expected_loose") or {}).items()}
        pairs.append(GoldenPair(p["name"], ref, dist, {k: float(v) for k, v in p["expected"].items()}, loose))
    got = extract_golden([(p.name, p.ref, p.dist) for p in pairs], cfg.teacher, cfg.ffmpeg)
    res.details["netflix_dir"] = str(folder)
    res.details["netflix_spec_tolerance"] = spec.get("tolerance")
    _compare_set("netflix", pairs, got, cfg.golden_tolerance, res)


def golden_check(cfg: GateConfig) -> CheckResult:
    res = CheckResult("golden", details={"sets": list(cfg.golden_sets)})
    unknown = [s for s in cfg.golden_sets if s not in ("project", "netflix")]
    if unknown:
        raise ValueError(f"unknown golden set(s) {unknown}; known: project, netflix")
    if "project" in cfg.golden_sets:
        golden_project(cfg, res)
    if "netflix" in cfg.golden_sets:
        golden_netflix(cfg, res)
    return res


def regenerate_project_golden(golden_dir: Path, teacher: str = DEFAULT_TEACHER, ffmpeg: str | None = None) -> Path:
    """Generate the project pairs, score them with libvmaf and pin the result in ``project.json``."""
    from .ffmpeg import ffmpeg_info

    info = ffmpeg_info(ffmpeg)
    with tempfile.TemporaryDirectory(prefix="tinyvmaf-golden-") as tmp:
        media = generate_project_media(Path(tmp), ffmpeg)
        got = extract_golden([(n, m["ref"], m["dist"]) for n, m in media.items()], teacher, ffmpeg)
    pairs = []
    for name, m in media.items():
        r: GoldenRecipe = m["recipe"]
        pairs.append(
            {
                "name": name,
                "frames": int(got[name]["frames"]),
                "ref_cmd": shlex.join(["ffmpeg", *r.ref_args(Path(r.ref_name))]),
                "dist_cmd": shlex.join(["ffmpeg", *r.dist_args(Path(r.ref_name), Path(r.dist_name))]),
                "sha256": m["sha256"],
                "expected": {k: got[name][k] for k in GOLDEN_KEYS},
            }
        )
    doc = {
        "about": (
            "The project's own golden pairs, generated by `tinyvmaf gate` with FFmpeg (lavfi sources, raw YUV "
            "references, bit-exact libx264 encodes) and scored by libvmaf (vmaf_v0.6.1, pooled mean over frames). "
            "Re-pin with `tinyvmaf gate --regenerate-golden` only after checking why values moved."
        ),
        "teacher": teacher,
        "ffmpeg_version": info.version,
        "ffmpeg_sha256": info.digest,
        "pairs": pairs,
    }
    path = golden_dir / PROJECT_GOLDEN_FILE
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return path


# --------------------------------------------------------------------------- running


def _guarded(name: str, fn: Callable[[], CheckResult]) -> CheckResult:
    """Run a check; one that cannot run fails (named) instead of stopping the others."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - any failure to measure is a failed check
        log.debug("check %s raised:\n%s", name, traceback.format_exc())
        return CheckResult(name, error=f"{type(exc).__name__}: {exc}")


def run_gate(cfg: GateConfig) -> GateReport:
    """Run the configured checks; never raises for a failing check, only records it."""
    import onnx

    unknown = [c for c in cfg.checks if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; known: {list(CHECKS)}")
    model: onnx.ModelProto | None = None
    sha: str | None = None
    load_error: str | None = None
    try:
        data = cfg.model.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        model = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - a missing/corrupt model fails the checks that need it
        load_error = f"cannot load {cfg.model}: {exc}"

    def needs_model(fn: Callable[[onnx.ModelProto], CheckResult]) -> Callable[[], CheckResult]:
        def run() -> CheckResult:
            if model is None:
                raise RuntimeError(load_error)
            return fn(model)

        return run

    table: dict[str, Callable[[], CheckResult]] = {
        "contract": needs_model(contract_check),
        "ops": needs_model(lambda m: ops_check(m, cfg.allowed_ops)),
        "golden": lambda: golden_check(cfg),
        "fidelity": needs_model(lambda m: fidelity_check(cfg)),
        "parity": needs_model(lambda m: parity_check(cfg, m)),
    }
    results = []
    for name in CHECKS:
        if name in cfg.checks:
            log.info("gate: %s", name)
            results.append(_guarded(name, table[name]))
    return GateReport(model=str(cfg.model), model_sha256=sha, checks=results)


def render_markdown(report: GateReport) -> str:
    lines = [
        "# Gate report",
        "",
        f"**{'PASS' if report.passed else 'FAIL'}**"
        + (f" — failed: {', '.join(report.failed)}" if report.failed else ""),
        "",
        f"Model: `{report.model}` (sha256 `{report.model_sha256}`)",
        "",
        "| check | criterion | value | threshold | pass |",
        "|---|---|---|---|---|",
    ]
    for c in report.checks:
        if c.error is not None:
            lines.append(f"| {c.name} | (error) | {c.error.replace('|', '/')} | | FAIL |")
        for cr in c.criteria:
            ok = "pass" if cr.passed else "**FAIL**"
            lines.append(f"| {c.name} | {cr.name} | {_fmt(cr.value)} | {cr.op} {_fmt(cr.threshold)} | {ok} |")
    parity = next((c for c in report.checks if c.name == "parity" and c.details), None)
    if parity is not None:
        lines += ["", "## Parity, ungated measurements", ""]
        lines += [f"- {k}: {v}" for k, v in parity.details.get("ungated", {}).items()]
        lines += [
            "",
            "The gated reference computes the graph's ops in the graph's op order (Gemm summed k-ascending with "
            "fused multiply-adds, then the bias). torch's own Linear with one output and NumPy's dot sum in other "
            "orders; the lines above show how far that alone moves the result.",
        ]
    golden = next((c for c in report.checks if c.name == "golden"), None)
    if golden is not None and isinstance(golden.details.get("netflix"), str):
        lines += ["", f"Netflix golden set: {golden.details['netflix']}"]
    return "\n".join(lines) + "\n"


def write_reports(report: GateReport, cfg: GateConfig) -> None:
    atomic_write_text(cfg.out, json.dumps(report.as_dict(), indent=2, sort_keys=False, default=str) + "\n")
    atomic_write_text(cfg.report, render_markdown(report))
