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
exact     the teacher's exact graph like any model: contract, ops on the
          fork's allow-list, parity (ONNX Runtime against the reference
          evaluator and the op-for-op NumPy mirror) and fidelity to the
          float64 teacher on the dense set (``gate.fidelity.exact``)
interval  a bootstrap teacher's student only: each head against its own
          component, by name, and the five statistics against the
          teacher's (``gate.interval``, :mod:`.interval`)

Every student's ops must be on the libvmaf fork's loader allow-list
(:data:`tinyvmaf.export.exact.ALLOWED_OPS`) as well as among those export
emits.  ``metrics/<teacher>/gate.json`` also carries the registry entries
of the models it passed, from which the registry stage writes
``registry.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..common.atomic import atomic_write_text
from ..common.checks import CheckResult, Criterion, Report, fmt, guarded
from ..config.schema import Config
from ..contract import TEACHER
from .contract import contract_check, ops_check
from .fidelity import fidelity_check
from .interval import interval_check
from .parity import edge_rows, generic_edge_rows, parity_check, random_rows

log = logging.getLogger(__name__)

CHECKS: tuple[str, ...] = ("contract", "ops", "golden", "fidelity", "parity", "exact", "interval")
#: Checks that apply to some students only: ``interval`` to a bootstrap teacher's (its heads and statistics).
BOOTSTRAP_ONLY: tuple[str, ...] = ("interval",)


@dataclass(frozen=True)
class GatePaths:
    onnx: Path
    ckpt: Path
    labels: Path
    golden_frames: Path
    golden_metrics: Path
    gate_metrics: Path
    gate_report: Path

    exact_onnx: Path | None = None

    @classmethod
    def from_params(cls, params: Config, student: str | None = None) -> GatePaths:
        p = params.student(student).paths
        return cls(**{f: Path(getattr(p, f)) for f in cls.__dataclass_fields__})


def golden_check(golden_metrics: Path, teacher: str) -> CheckResult:
    """The golden stage's verdict, which scored the teacher this model was distilled from."""
    if not golden_metrics.is_file():
        raise FileNotFoundError(f"{golden_metrics}: no golden report (run `dvc repro golden`)")
    doc = json.loads(golden_metrics.read_text())
    checks = doc.get("checks", {})
    failed = [name for name, c in checks.items() if not c.get("pass")]
    res = CheckResult("golden", details={"report": str(golden_metrics), "checks": sorted(checks), "failed": failed})
    res.criteria += [
        Criterion("golden_checks_failed", len(failed) if checks else None, 0, "<=", info=", ".join(failed)),
        Criterion(
            "golden_teacher_scored",
            int(teacher in (doc.get("teachers") or [])),
            1,
            "==",
            info=str(doc.get("teachers")),
        ),
    ]
    for name in ("netflix", "project", "teacher"):
        res.details[name] = {k: v.get("value") for k, v in checks.get(name, {}).get("criteria", {}).items()}
    return res


def parity_rows(params: Config, labels: Path, teacher: str = TEACHER) -> dict[str, np.ndarray]:
    """Test rows, the corners of the data, random rows of the training box, and as many from an unseen seed."""
    from ..teacher.spec import load_spec, v061_family

    spec = load_spec(teacher)
    order = list(spec.order)
    df = pd.read_parquet(labels)
    all_x = df[order].to_numpy(np.float32)
    test = df.loc[df["split"] == "test", order].to_numpy(np.float32)
    p = params.gate.parity
    if v061_family(spec):
        edge, _ = edge_rows(all_x, p.motion2_large)
        b = params.sample.bounds
        rand = random_rows(p.random_rows, params.seed, b.quality_max, b.motion2_max)
        unseen = random_rows(p.random_rows, p.unseen_seed, b.quality_max, b.motion2_max)
        return {"test": test, "edge": edge, "random": rand, "unseen": unseen}
    from ..sample.spec_box import box_for, draw_generic

    sc = params.sample.spec
    box = box_for(spec, all_x.astype(np.float64), margin=sc.margin, zero_share_min=sc.zero_share_min)
    zero_cols = [order.index(c) for c in box.zero_columns]
    edge, _ = generic_edge_rows(all_x, zero_cols)
    train = df.loc[df["split"] == "train", order].to_numpy(np.float64)

    def draw(seed: int) -> np.ndarray:
        x, _ = draw_generic(
            np.random.default_rng([seed, 17]), {"uniform": p.random_rows}, train, box, jitter_sigma=sc.jitter_sigma
        )
        return x.astype(np.float32)

    return {"test": test, "edge": edge, "random": draw(params.seed), "unseen": draw(p.unseen_seed)}


def exact_check(params: Config, path: Path, rows: dict[str, np.ndarray], spec: Any, dense: Any) -> CheckResult:
    """The exact teacher graph: contract, allow-listed ops, backend parity, fidelity to the float64 teacher."""
    import onnx

    from ..export.exact import ALLOWED_OPS, exact_reference
    from ..export.stage import sidecar_features
    from .contract import graph_ops
    from .parity import onnxruntime_run, reference_evaluator_run, scaled_ulp, ulp_at

    data = path.read_bytes()
    model = onnx.load_from_string(data)
    res = CheckResult("exact", details={"model": str(path), "sha256": hashlib.sha256(data).hexdigest()})
    contract = contract_check(
        model, sidecar_features(spec), required=("feature_order", "teacher"), n_heads=len(spec.heads)
    )
    res.criteria += [Criterion(f"contract/{c.name}", c.value, c.threshold, c.op) for c in contract.criteria]
    bad = sorted({op for d, op in graph_ops(model) if d not in ("", "ai.onnx") or op not in ALLOWED_OPS})
    res.criteria.append(Criterion("ops_off_allowlist", len(bad), 0, "<=", info=", ".join(bad)))
    x = np.concatenate(list(rows.values())).astype(np.float32)
    p = params.gate.parity
    unit = ulp_at(p.ulp_scale)
    ort = onnxruntime_run(model, x)
    for name, other in (
        ("reference_evaluator", reference_evaluator_run(model, x)),
        ("numpy_mirror", exact_reference(model, x)),
    ):
        d = scaled_ulp(ort, np.asarray(other, np.float32), unit)
        res.criteria.append(Criterion(f"onnxruntime_vs_{name}_ulp", float(d.max()) if len(d) else 0.0, p.max_ulp, "<="))
    pred = onnxruntime_run(model, dense.x).astype(np.float64)
    # A bootstrap's graph: every head against the float64 teacher's raw component.
    want = dense.y if spec.bootstrap is None else spec.components(dense.x.astype(np.float64))
    err = pred - want
    rmse = float(np.sqrt(np.mean(err**2))) if len(err) else None
    res.criteria.append(Criterion("dense/rmse", rmse, params.gate.fidelity.exact.rmse_max, "<="))
    res.details["dense_max_abs"] = float(np.abs(err).max()) if len(err) else None
    return res


def registry_entries(paths: GatePaths, params: Config, spec: Any) -> list[dict[str, Any]]:
    """The registry entries of a gated student and its exact graph, from their sidecars (written by export)."""
    from ..model.sidecar import registry_entry

    out = []
    for onnx_path in (paths.onnx, paths.exact_onnx):
        if onnx_path is None:
            continue
        sidecar = json.loads(onnx_path.with_suffix(".json").read_text())
        if sidecar["sha256"] != hashlib.sha256(onnx_path.read_bytes()).hexdigest():
            raise ValueError(f"{onnx_path.with_suffix('.json')}: sha256 does not match {onnx_path} (re-run export)")
        entry = registry_entry(
            sidecar, license_url=params.export.license_url, description=sidecar["notes"].split(". ")[0]
        )
        entry["teacher"] = spec.name
        if sidecar.get("exact"):
            entry["exact"] = True
        out.append(entry)
    return out


def run_gate(params: Config, paths: GatePaths, checks: tuple[str, ...] = CHECKS, student: str | None = None) -> Report:
    """Run the configured checks; never raises for a failing check, only records it."""
    import onnx

    st = params.student(student)
    teacher, spec = st.teacher, st.spec

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
            parity_rows(params, paths.labels, teacher),
            max_ulp_scaled=p.max_ulp,
            ulp_scale=p.ulp_scale,
            student_max_ulp=p.student_max_ulp,
        )

    def exact() -> CheckResult:
        from ..evaluate.sets import student_sets

        if paths.exact_onnx is None:
            raise FileNotFoundError("no exact graph path (run export)")
        dense = next(s for s in student_sets(params, st) if s.name == "dense")
        return exact_check(params, paths.exact_onnx, parity_rows(params, paths.labels, teacher), spec, dense)

    from ..export.exact import ALLOWED_OPS
    from ..export.graph import EMITTED_OPS
    from ..export.stage import sidecar_features

    allowed = tuple(op for op in EMITTED_OPS if op in ALLOWED_OPS)
    table: dict[str, Callable[[], CheckResult]] = {
        "contract": needs_model(lambda m: contract_check(m, sidecar_features(spec), n_heads=len(spec.heads))),
        "ops": needs_model(lambda m: ops_check(m, allowed)),
        "golden": lambda: golden_check(paths.golden_metrics, teacher),
        "fidelity": needs_model(
            lambda m: fidelity_check(
                params, paths.onnx, labels=paths.labels, golden_frames=paths.golden_frames, student=st
            )
        ),
        "parity": needs_model(parity),
        "exact": exact,
        "interval": needs_model(lambda m: interval_check(params, paths.onnx, st)),
    }
    results = []
    for name in CHECKS:
        if name in BOOTSTRAP_ONLY and spec.bootstrap is None:
            continue  # not this student's: nothing to check (and gate.json stays as it was for the others)
        if name in checks:
            log.info("gate: %s", name)
            results.append(guarded(name, table[name]))
    report = Report({"model": str(paths.onnx), "model_sha256": sha, "teacher": teacher}, results)
    # Registry entries only for a whole, passing gate of files that have their sidecars (what export writes):
    # a gate of a subset of checks, or of a hand-made file, proves nothing the registry may rely on.
    sidecars = all(p is not None and p.with_suffix(".json").is_file() for p in (paths.onnx, paths.exact_onnx))
    if report.passed and set(checks) == set(CHECKS) and sidecars:
        report.subject["registry"] = registry_entries(paths, params, spec)
    return report


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
