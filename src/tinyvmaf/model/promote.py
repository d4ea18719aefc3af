"""``tinyvmaf model promote``: register a gated model in the MLflow Model Registry, and crown it if it is better.

A step of its own, after ``dvc repro``, not inside the gate stage: a
run-cache restore skips stages, so a registration done inside one would
silently not happen on a teammate's machine.

What it does:

1. refuses a model whose gate did not pass (``metrics/gate.json`` for this
   very file: the sha256 must match);
2. logs the ONNX file with ``mlflow.onnx.log_model`` in a ``promote`` run
   (signature ``features`` float32 ``[-1, 6]`` → ``vmaf`` float32 ``[-1]``,
   an input example, the sidecar as an extra file) and registers it as a
   new version of ``mlflow.registered_model`` (``vmaf_tiny_fr``), tagged with
   the data version, the git commit and the gate figures;
3. moves the alias ``mlflow.alias`` (``champion``) to it only if there is no
   champion yet or the new version *beats* it: no gated fidelity figure
   worse, at least one better (lower is better for every one of them).

``mlflow.pyfunc.load_model("models:/vmaf_tiny_fr@champion")`` then
predicts on a DataFrame of the six features (float32, canonical-6 order).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..common.provenance import data_version, file_sha256, git_commit
from ..config.schema import Config
from ..contract import FEATURES, HEADS_NAME, OUTPUT_NAME

log = logging.getLogger(__name__)

#: Gate criteria compared for promotion: (check, criterion); lower is better for each.
FIGURES: tuple[tuple[str, str], ...] = (
    ("fidelity", "dense/rmse"),
    ("fidelity", "dense/max_abs"),
    ("fidelity", "test/rmse"),
    ("fidelity", "test/max_abs"),
    ("fidelity", "golden/pooled_abs_max"),
)
TAG_PREFIX = "gate."


class PromotionError(RuntimeError):
    """The model may not be registered (its gate failed, or the gate report is for another file)."""


@dataclass
class Promotion:
    name: str
    version: str
    champion: bool
    previous_champion: str | None
    reason: str
    figures: dict[str, float]


def gate_figures(gate_metrics: Path, onnx_path: Path) -> dict[str, float]:
    """The figures of a *passed* gate report that belongs to ``onnx_path`` (by sha256)."""
    if not gate_metrics.is_file():
        raise PromotionError(f"{gate_metrics}: no gate report (run `dvc repro gate` first)")
    doc = json.loads(gate_metrics.read_text())
    sha = file_sha256(onnx_path)
    if doc.get("model_sha256") != sha:
        raise PromotionError(
            f"{gate_metrics} is the gate report of another file (sha256 {doc.get('model_sha256')}), "
            f"not {onnx_path} ({sha})"
        )
    if not doc.get("pass"):
        raise PromotionError(f"{onnx_path} failed its gate ({', '.join(doc.get('failed', []))}): not registering it")
    out = {}
    for check, crit in FIGURES:
        value = doc["checks"][check]["criteria"][crit]["value"]
        out[f"{check}/{crit}"] = float(value)
    return out


def log_subjective(tracker: Any, run_id: str, eval_metrics: Path) -> None:
    """The eval stage's clip-level agreement with MOS/DMOS (``eval.json`` ``subjective``) on the promote run.

    Metrics ``subjective_<predictor>_<plcc|srocc|rmse>`` (teacher and student) where the corpus has
    subjective scores; otherwise a ``subjective`` tag saying why there are none.
    """
    if not eval_metrics.is_file():
        tracker.client.set_tag(run_id, "subjective", f"no {eval_metrics} (run the eval stage)")
        return
    sub = json.loads(eval_metrics.read_text()).get("subjective") or {}
    if "predictors" not in sub:
        tracker.client.set_tag(run_id, "subjective", f"not measured: {sub.get('skipped', 'no subjective block')}")
        return
    values = {
        f"subjective_{who}_{m}": float(f[m])
        for who, f in sub["predictors"].items()
        for m in ("plcc", "srocc", "rmse")
        if m in f
    }
    tracker.log_metrics(run_id, values)
    tracker.client.set_tag(run_id, "subjective", f"{sub['n_clips']} {sub['split']} clips, {sub['scale']}")


def beats(new: dict[str, float], old: dict[str, float]) -> tuple[bool, str]:
    """Pareto: no figure worse, one better.  Returns the verdict and why."""
    worse = [k for k in new if k in old and new[k] > old[k]]
    better = [k for k in new if k in old and new[k] < old[k]]
    if worse:
        return False, f"worse than the champion on {', '.join(worse)}"
    if not better:
        return False, "no better than the champion on any gated figure"
    return True, f"better on {', '.join(better)}, worse on none"


def signature_and_example(
    n_features: int = len(FEATURES), example_rows: np.ndarray | None = None, n_heads: int = 1
) -> tuple[Any, np.ndarray]:
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    # The input tensor is unnamed on purpose: MLflow then feeds a DataFrame of the six feature columns
    # (canonical-6 order) as one [N, 6] array; a named spec would look for a column called "features".
    sig = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, n_features))]),
        outputs=Schema(
            [TensorSpec(np.dtype(np.float32), (-1,), OUTPUT_NAME)]
            if n_heads == 1
            else [TensorSpec(np.dtype(np.float32), (-1, n_heads), HEADS_NAME)]  # a bootstrap's components
        ),
    )
    if example_rows is not None:
        return sig, np.asarray(example_rows, np.float32)
    example = np.array([[0.95, 0.6, 0.85, 0.92, 0.95, 4.0], [0.75, 0.25, 0.5, 0.62, 0.71, 12.0]], dtype=np.float32)
    return sig, example


#: Two typical frames of a v1.0.16 teacher (cambi, speed_chroma_uv, adm3, motion3), for MLflow's input example.
V1016_EXAMPLE = np.array([[0.3, 3.8, 0.95, 3.2], [1.5, 0.0, 0.8, 9.0]], dtype=np.float32)


def promote(params: Config, onnx_path: Path, gate_metrics: Path, student: str | None = None) -> Promotion:
    """Register ``onnx_path`` (gated) as a new version of its student's registered model; move the champion
    alias when it beats the champion.  One registered model per student (``students.<key>.registered_model``)."""
    import mlflow
    import onnx
    from mlflow import MlflowClient

    from ..train.tracking import Tracker

    figures = gate_figures(gate_metrics, onnx_path)
    tracker = Tracker(params)
    client: MlflowClient = tracker.client
    st = params.student(student)
    name, alias = st.config.registered_model, params.mlflow.alias
    sidecar = onnx_path.with_suffix(".json")
    tags = {
        "teacher": st.teacher,
        "data_version": data_version(st.paths.data_dvc),
        "git_commit": git_commit(mark_dirty=True),
        "onnx_sha256": file_sha256(onnx_path),
        **{f"{TAG_PREFIX}{k}": repr(v) for k, v in figures.items()},
    }
    run_id = tracker.start_run("promote", tags={"model_id": onnx_path.stem, **tags})
    log_subjective(tracker, run_id, Path(st.paths.eval_metrics))
    n = len(st.spec.order)
    sig, example = signature_and_example(
        n, None if st.spec.order == FEATURES else V1016_EXAMPLE[:, :n], n_heads=len(st.spec.heads)
    )
    mlflow.set_tracking_uri(tracker.uri)
    try:
        with mlflow.start_run(run_id=run_id):
            info = mlflow.onnx.log_model(
                onnx.load(str(onnx_path)),
                name="model",
                signature=sig,
                input_example=example,
                extra_files=[str(sidecar)] if sidecar.is_file() else None,
                save_as_external_data=False,
                onnx_execution_providers=["CPUExecutionProvider"],  # what the student needs; no GPU provider
            )
        version = mlflow.register_model(info.model_uri, name, tags=tags)
    except BaseException:
        tracker.end_run(run_id, "FAILED", only_running=True)
        raise
    tracker.end_run(run_id, only_running=True)
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=st.description)
    try:
        current = client.get_model_version_by_alias(name, alias)
    except Exception:  # noqa: BLE001 - MLflow raises a RestException when the alias is unset
        current = None
    if current is None:
        ok, reason = True, f"no {alias} yet"
    else:
        old = {k[len(TAG_PREFIX) :]: float(v) for k, v in current.tags.items() if k.startswith(TAG_PREFIX)}
        ok, reason = beats(figures, old)
        reason = f"version {current.version}: {reason}"
    if ok:
        client.set_registered_model_alias(name, alias, version.version)
    log.info("registered %s version %s; %s %s", name, version.version, alias, "moved" if ok else "kept")
    return Promotion(name, str(version.version), ok, None if current is None else str(current.version), reason, figures)
