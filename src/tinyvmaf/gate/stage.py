"""The gate: the last DVC stage, a set of checks that can fail.

Each check yields *criteria* (a value, a threshold, a comparison,
pass/fail); ``metrics/gate.json`` records every one of them and the stage
exits non-zero naming the checks that failed, so ``dvc repro`` stops there.

contract  opset, I/O, metadata, ``onnx.checker`` (:mod:`.contract`)
ops       only the ops export can emit (:mod:`.contract`)
golden    the golden stage passed for this teacher (``metrics/golden.json``):
          the extractor reproduces Netflix's values and the callable
          teacher reproduces libvmaf.  Read, not re-run: a retrain does not
          run libvmaf again.
fidelity  the shipped file against the teacher on the dense set, the test
          contents and Netflix's golden pairs (:mod:`.fidelity`)
parity    ONNX Runtime (optimised and not) against the reference evaluator
          within ``gate.parity.max_ulp``, and each against the float64
          student, inside a derived bound (:mod:`.parity`)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..common.atomic import atomic_write_text
from ..common.checks import CheckResult, Criterion, Report, fmt, guarded
from ..config.schema import Config
from ..contract import FEATURES
from .contract import contract_check, ops_check
from .fidelity import fidelity_check
from .parity import edge_rows, parity_check, random_rows

log = logging.getLogger(__name__)

CHECKS: tuple[str, ...] = ("contract", "ops", "golden", "fidelity", "parity")


@dataclass(frozen=True)
class GatePaths:
    onnx: Path
    ckpt: Path
    labels: Path
    golden_frames: Path
    golden_metrics: Path
    gate_metrics: Path
    gate_report: Path

    @classmethod
    def from_params(cls, params: Config) -> GatePaths:
        return cls(**{f: Path(getattr(params.paths, f)) for f in cls.__dataclass_fields__})


def golden_check(golden_metrics: Path, teacher: str) -> CheckResult:
    """The golden stage's verdict, for the teacher this model was distilled from."""
    if not golden_metrics.is_file():
        raise FileNotFoundError(f"{golden_metrics}: no golden report (run `dvc repro golden`)")
    doc = json.loads(golden_metrics.read_text())
    checks = doc.get("checks", {})
    failed = [name for name, c in checks.items() if not c.get("pass")]
    res = CheckResult("golden", details={"report": str(golden_metrics), "checks": sorted(checks), "failed": failed})
    res.criteria += [
        Criterion("golden_checks_failed", len(failed) if checks else None, 0, "<=", info=", ".join(failed)),
        Criterion("golden_teacher_matches", int(doc.get("teacher") == teacher), 1, "==", info=str(doc.get("teacher"))),
    ]
    for name in ("netflix", "project", "teacher"):
        res.details[name] = {k: v.get("value") for k, v in checks.get(name, {}).get("criteria", {}).items()}
    return res


def parity_rows(params: Config, labels: Path) -> dict[str, np.ndarray]:
    """Test rows, the corners of the data, random rows of the training box, and as many from an unseen seed."""
    df = pd.read_parquet(labels)
    all_x = df[list(FEATURES)].to_numpy(np.float32)
    test = df.loc[df["split"] == "test", list(FEATURES)].to_numpy(np.float32)
    edge, _ = edge_rows(all_x, params.gate.parity.motion2_large)
    b = params.sample.bounds
    p = params.gate.parity
    rand = random_rows(p.random_rows, params.seed, b.quality_max, b.motion2_max)
    unseen = random_rows(p.random_rows, p.unseen_seed, b.quality_max, b.motion2_max)
    return {"test": test, "edge": edge, "random": rand, "unseen": unseen}


def run_gate(params: Config, paths: GatePaths, checks: tuple[str, ...] = CHECKS) -> Report:
    """Run the configured checks; never raises for a failing check, only records it."""
    import onnx

    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; known: {list(CHECKS)}")
    model: onnx.ModelProto | None = None
    sha: str | None = None
    load_error: str | None = None
    try:
        data = paths.onnx.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        model = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - a missing/corrupt model fails the checks that need it
        load_error = f"cannot load {paths.onnx}: {exc}"

    def needs_model(fn: Callable[[onnx.ModelProto], CheckResult]) -> Callable[[], CheckResult]:
        def run() -> CheckResult:
            if model is None:
                raise RuntimeError(load_error)
            return fn(model)

        return run

    def parity(m: onnx.ModelProto) -> CheckResult:
        from ..student.checkpoint import load_student

        student, _ = load_student(paths.ckpt)
        p = params.gate.parity
        return parity_check(
            m,
            student,
            parity_rows(params, paths.labels),
            max_ulp_scaled=p.max_ulp,
            ulp_scale=p.ulp_scale,
            student_max_ulp=p.student_max_ulp,
        )

    table: dict[str, Callable[[], CheckResult]] = {
        "contract": needs_model(contract_check),
        "ops": needs_model(ops_check),
        "golden": lambda: golden_check(paths.golden_metrics, params.label.teacher),
        "fidelity": needs_model(
            lambda m: fidelity_check(params, paths.onnx, labels=paths.labels, golden_frames=paths.golden_frames)
        ),
        "parity": needs_model(parity),
    }
    results = []
    for name in CHECKS:
        if name in checks:
            log.info("gate: %s", name)
            results.append(guarded(name, table[name]))
    return Report({"model": str(paths.onnx), "model_sha256": sha}, results)


def render_markdown(report: Report) -> str:
    lines = [
        "# Gate report",
        "",
        f"**{'PASS' if report.passed else 'FAIL'}**"
        + (f" — failed: {', '.join(report.failed)}" if report.failed else ""),
        "",
        f"Model: `{report.subject['model']}` (sha256 `{report.subject['model_sha256']}`)",
        "",
        *report.table(),
    ]
    parity = report.check("parity")
    if parity is not None and parity.details:
        d = parity.details
        lines += [
            "",
            "## Parity",
            "",
            f"Distances in ULPs of float32 at {fmt(d['ulp_scale'])} (1 ULP = {d['ulp_unit']:.3g}). Backends against "
            "the reference evaluator (the graph fixes every rounding: they should agree to the bit):",
            "",
            "| backend | max ULP | by row set | rows differing |",
            "|---|---|---|---|",
        ]
        for b in ("onnxruntime", "onnxruntime_unoptimised"):
            v = d.get(f"{b}_vs_reference_evaluator")
            if v is not None:
                by_set = ", ".join(f"{k} {fmt(x)}" for k, x in v["max_ulp_by_set"].items())
                lines.append(
                    f"| {b} | {fmt(max(v['max_ulp_by_set'].values(), default=0.0))} | {by_set} | "
                    f"{v['rows_differing']} |"
                )
        lines += [
            "",
            "Against the student in float64; the bound is the per-row forward error bound of the graph's "
            "own summation order (see `tinyvmaf/gate/parity.py`):",
            "",
            "| backend | max ULP | bound max ULP | bound median ULP |",
            "|---|---|---|---|",
        ]
        for b in ("onnxruntime", "onnxruntime_unoptimised", "reference_evaluator"):
            if b in d:
                lines.append(
                    f"| {b} | {fmt(d[b]['max_ulp'])} | {fmt(d[b]['bound_max_ulp'])} | {fmt(d[b]['bound_median_ulp'])} |"
                )
        lines += ["", "Ungated diagnostics (`*_bit_ulp`: bit-pattern ULPs; `*_ulp`: ULPs at the scale above):", ""]
        lines += [f"- {k}: {v}" for k, v in d.get("ungated", {}).items()]
    return "\n".join(lines) + "\n"


def write_reports(report: Report, paths: GatePaths) -> None:
    atomic_write_text(paths.gate_metrics, json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    atomic_write_text(paths.gate_report, render_markdown(report))
