"""Fidelity: the shipped file (ONNX Runtime) against the teacher, where users will score, with thresholds.

Three sets (:mod:`tinyvmaf.evaluate.sets`): the held-out dense set (RMSE and
max |error| over the feature space real videos reach), the test contents
(frame level: RMSE, max, PLCC, SROCC) and Netflix's golden pairs (the worst
|pooled student − pooled teacher|, a clip's score being the mean of its
frames).  The figures are the evaluation's own (:func:`tinyvmaf.evaluate.measure.measure`),
so the gate and the model card cannot disagree.

Fails closed: a NaN anywhere in a set makes its figures NaN, and a NaN (or
missing) value fails its criterion; a set with fewer than two rows is not
measured at all and fails ``<set>/rows`` (and every criterion on it) by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..common.checks import CheckResult, Criterion
from ..config.schema import Config
from ..evaluate.measure import MIN_ROWS, measure, unmeasured
from ..evaluate.sets import standard_sets
from ..model.runtime import load_tiny_model


def fidelity_check(
    params: Config, model_path: Path, *, labels: Path, golden_frames: Path, student: Any = None
) -> CheckResult:
    """The fidelity criteria; ``dense_zero`` (speed_chroma_uv = 0 rows) is held to the dense bounds, by name."""
    st = params.student(None) if student is None else student
    spec = st.spec
    model = load_tiny_model(model_path, order=spec.order, keys=spec.keys)
    sets = {
        s.name: s
        for s in standard_sets(
            params.evaluate.dense,
            teacher=st.teacher,
            labels=labels,
            golden_frames=golden_frames,
            dense_spec=params.evaluate.dense_spec,
            sample_spec=params.sample.spec,
        )
    }
    th = params.gate.fidelity
    within = params.evaluate.within
    figs = {
        name: measure(model.predict, s, within=within) if len(s) >= MIN_ROWS else unmeasured(s)
        for name, s in sets.items()
    }
    res = CheckResult("fidelity", details={"teacher": st.teacher, "figures": figs})
    d, t, g = figs["dense"], figs["test"], figs["golden"]
    res.criteria += [Criterion(f"{name}/rows", len(s), MIN_ROWS, ">=") for name, s in sets.items()]
    res.criteria += [
        Criterion("dense/rmse", d["rmse"], th.dense.rmse_max, "<="),
        Criterion("dense/max_abs", d["max_abs"], th.dense.max_abs_max, "<="),
        Criterion("test/rmse", t["rmse"], th.test.rmse_max, "<="),
        Criterion("test/max_abs", t["max_abs"], th.test.max_abs_max, "<="),
        Criterion("test/plcc", t["plcc"], th.test.plcc_min, ">="),
        Criterion("test/srocc", t["srocc"], th.test.srocc_min, ">="),
        Criterion("golden/pooled_abs_max", g["pooled_abs_max"], th.golden.pooled_abs_max, "<="),
    ]
    if "dense_zero" in figs:
        z = figs["dense_zero"]
        res.criteria += [
            Criterion("dense_zero/rmse", z["rmse"], th.dense.rmse_max, "<="),
            Criterion("dense_zero/max_abs", z["max_abs"], th.dense.max_abs_max, "<="),
        ]
    return res
