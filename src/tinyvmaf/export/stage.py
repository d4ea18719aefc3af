"""The export and eval stages, per student: best checkpoint → the ONNX file and sidecar (and the teacher's
exact graph); then the evaluation, ``eval.json`` and the model card.

``metadata_props`` carry what a consumer needs to trust the file: the
feature order, the teacher, the data version (the md5 in ``data.dvc``), the
checkpoint's sha256, the architecture and the held-out figures — and
nothing that depends on *when* or *from which commit* it was built, so the
committed ``dvc.lock`` can be reproduced from its own tree (the commit goes
to MLflow).  The held-out figures are measured here by ONNX Runtime on the
exported graph itself, on the evaluation sets
(:mod:`tinyvmaf.evaluate.sets`), with the libvmaf fork's published models
measured on the same rows beside it (``metrics/eval.json``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..common.atomic import atomic_write_bytes, atomic_write_text
from ..common.provenance import UNKNOWN, data_version, file_sha256
from ..config.schema import Config
from ..contract import IR_VERSION, TEACHER
from ..evaluate.measure import measure_models
from ..evaluate.peers import load_peers
from ..model.sidecar import make_sidecar, sha256_bytes, write_sidecar
from .card import SET_TITLES, CardInputs, load_loco, render_card, write_figures
from .graph import build_student_graph, student_predictor

if TYPE_CHECKING:
    from ..student.network import StudentMLP

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportPaths:
    ckpt: Path
    arch_ckpts: Path
    labels: Path
    golden_frames: Path
    train_metrics: Path
    peers_dir: Path
    loco_metrics: Path
    data_dvc: Path
    onnx: Path
    exact_onnx: Path
    eval_metrics: Path
    model_card: Path
    figures: Path

    @classmethod
    def from_params(cls, params: Config, student: str | None = None) -> ExportPaths:
        p = params.student(student).paths
        return cls(**{f: Path(getattr(p, f)) for f in cls.__dataclass_fields__})


@dataclass
class ExportResult:
    path: Path
    n_bytes: int
    sha256: str
    metadata: dict[str, str]
    evaluation: dict[str, dict[str, dict[str, Any]]]
    val_metrics: dict[str, float]
    winner: str
    ops: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def winner_val_metrics(train_metrics: Path) -> tuple[str, dict[str, float]]:
    """The winning arch and its val metrics from ``metrics/train.json`` (``unknown``, {} if absent)."""
    if not train_metrics.is_file():
        return UNKNOWN, {}
    doc = json.loads(train_metrics.read_text())
    name = str(doc.get("winner") or UNKNOWN)
    entry = (doc.get("archs") or {}).get(name)
    for source in (entry, doc):
        if isinstance(source, dict):
            vals = {k: float(v) for k, v in source.items() if k.startswith("val_") and isinstance(v, int | float)}
            if vals:
                return name, vals
    return name, {}


#: eval.json / model card name of a swept arch's own best checkpoint.
SWEEP_PREFIX = "sweep/"


def sweep_students(folder: Path) -> dict[str, StudentMLP]:
    """Every swept arch's best checkpoint (``models/archs/<arch>.ckpt``), keyed by its eval.json name."""
    from ..student.checkpoint import load_student

    paths = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
    return {f"{SWEEP_PREFIX}{p.stem}": load_student(p)[0] for p in paths}


def onnx_parameters(path: Path) -> int:
    """Weights and biases of a graph's Gemm/MatMul layers (what model sizes usually count; not a scaler's)."""
    import onnx

    model = onnx.load(str(path))
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    used = {i for n in model.graph.node if n.op_type in ("Gemm", "MatMul") for i in n.input[1:]}
    return sum(sizes.get(name, 0) for name in used)


def heldout_summary(evaluation: dict[str, dict[str, Any]], val: dict[str, float]) -> dict[str, Any]:
    """What the ONNX metadata and sidecar record: per set the headline figures (no per-pair detail)."""
    keep = ("rmse", "max_abs", "p99_abs", "plcc", "srocc", "within", "n", "pooled_abs_max")
    sets = {s: {k: v for k, v in f.items() if k in keep} for s, f in evaluation.items() if isinstance(f, dict)}
    return {"val": val, **sets}


def exact_id(teacher: str) -> str:
    """The registry id of a teacher's exact graph: libvmaf's ids allow no dots (``vmaf_v1_0_16_3d0h_exact``)."""
    return teacher.replace(".", "_").lower() + "_exact"


def export_model(params: Config, paths: ExportPaths, student_key: str | None = None) -> ExportResult:
    """Checkpoint → ONNX (atomic) and sidecar; the teacher's exact graph and sidecar beside it.

    The held-out headline figures that the file's metadata and sidecar carry
    are measured here, by ONNX Runtime on the graph that ships; the full
    comparison (sweep, peers, the exact graph, subjective scores) is the
    eval stage's (:func:`evaluate_model`).
    """
    from ..evaluate.sets import student_sets
    from ..student.checkpoint import load_student
    from .exact import build_exact_graph

    st = params.student(student_key)
    ex, teacher, within = params.export, st.teacher, params.evaluate.within
    student, hp = load_student(paths.ckpt)
    if student.teacher != teacher:
        raise ValueError(f"{paths.ckpt} is a student of {student.teacher}, not of {teacher} (students.{st.key})")
    spec = st.spec
    sets = student_sets(params, st)
    ours = score_of(student_predictor(student, opset=ex.opset), spec)
    evaluation = measure_models({st.id: ours}, sets, within=within)
    winner, val = winner_val_metrics(paths.train_metrics)
    val = {k: round(v, 6) for k, v in val.items()}
    version = data_version(paths.data_dvc)
    arch = {
        "type": "mlp",
        "name": str(hp.get("arch") or winner),
        "width": student.width,
        "depth": student.depth,
        "activation": student.activation,
        "layers": [student.n_features] + [student.width] * student.depth + [student.n_heads],
        "n_parameters": student.n_parameters(),
    }
    heldout = heldout_summary(evaluation[st.id], val)
    box = training_box(params, spec)
    features = sidecar_features(spec)
    lo, hi = student.clip
    metadata = {
        "feature_order": json.dumps(features),
        "teacher": teacher,
        "data_version": version,
        "checkpoint_sha256": file_sha256(paths.ckpt),
        "heldout_metrics": json.dumps(heldout, sort_keys=True),
        "architecture": json.dumps(arch, sort_keys=True),
        "training_box": json.dumps(box, sort_keys=True),
        "normalisation": "in-graph: (features - norm.mean) / norm.std, training-set statistics",
        "output": f"per-frame VMAF clipped to [{lo:g}, {hi:g}] (the teacher's score_clip); a clip's score is "
        "the mean over frames",
    }
    if student.n_heads > 1:
        metadata["output"] = (
            f"heads [N, {student.n_heads}]: the raw component scores of {teacher} (key 0 first); the statistics "
            "derive from them as the metadata/sidecar 'statistics' says"
        )
        metadata["statistics"] = json.dumps(bootstrap_statistics(spec), sort_keys=True)
    if student.interface.correction is not None:
        metadata["chroma_correction"] = "in-graph: speed_chroma_uv == 0 -> c * (1 - adm3), as libvmaf"
    model = build_student_graph(student, opset=ex.opset, metadata=metadata, producer_version=__version__)
    data = model.SerializeToString()
    atomic_write_bytes(paths.onnx, data)
    sidecar = make_sidecar(
        model_id=st.id,
        onnx_bytes=data,
        opset=ex.opset,
        teacher=teacher,
        data_version=version,
        heldout=heldout,
        architecture=arch,
        training_box=box,
        license=ex.license,
        description=st.description,
        features=features,
        clip=student.clip,
        statistics=bootstrap_statistics(spec),
        n_heads=student.n_heads,
    )
    write_sidecar(paths.onnx.with_suffix(".json"), sidecar)
    # The teacher itself, exactly, as the reference row (no training data in it: the same bytes for any corpus).
    exact = build_exact_graph(spec, opset=ex.opset)
    for prop in exact.metadata_props:  # the input as the sidecar names it (libvmaf keys outside v0.6.1)
        if prop.key == "feature_order":
            prop.value = json.dumps(features)
    exact_data = exact.SerializeToString()
    atomic_write_bytes(paths.exact_onnx, exact_data)
    exact_pred = score_of(exact_predictor(exact_data), spec)
    exact_eval = measure_models({"exact": exact_pred}, sets, within=within)["exact"]
    write_sidecar(
        paths.exact_onnx.with_suffix(".json"),
        make_sidecar(
            model_id=paths.exact_onnx.stem,
            onnx_bytes=exact_data,
            opset=ex.opset,
            teacher=teacher,
            data_version="none (the teacher's model file only)",
            heldout=heldout_summary(exact_eval, {}),
            architecture={"type": "svr", "n_parameters": exact_parameters(spec)},
            training_box={},
            license=ex.license,
            description=f"libvmaf's {teacher} as an exact ONNX graph (the reference every student is measured against)",
            features=features,
            clip=student.clip,
            exact=True,
            statistics=bootstrap_statistics(spec),
            n_heads=student.n_heads,
        ),
    )
    result = ExportResult(
        path=paths.onnx,
        n_bytes=len(data),
        sha256=sha256_bytes(data),
        metadata=metadata,
        evaluation=evaluation,
        val_metrics=val,
        winner=winner,
        ops=list(dict.fromkeys(node.op_type for node in model.graph.node)),
    )
    log.info("wrote %s (%d B, sha256 %s) and %s", paths.onnx, len(data), result.sha256[:12], paths.exact_onnx)
    return result


def score_of(predict: Any, spec: Any) -> Any:
    """A model's score function: ``predict`` itself, or for a bootstrap teacher's heads the score libvmaf
    derives from them (key 0 through its transform and clip)."""
    if spec.bootstrap is None:
        return predict
    from ..teacher.bootstrap import statistics_from_components

    return lambda x: statistics_from_components(spec.bootstrap, np.asarray(predict(x), np.float64))["score"]


def bootstrap_statistics(spec: Any) -> dict[str, Any] | None:
    """The sidecar's ``statistics`` of a bootstrap teacher's model (None for any other teacher)."""
    if spec.bootstrap is None:
        return None
    from ..teacher.bootstrap import statistics_doc

    return statistics_doc(spec.bootstrap)


def sidecar_features(spec: Any) -> list[str]:
    """The sidecar's ``features``: canonical-6 short names for the v0.6.1 family (unchanged), else libvmaf keys."""
    from ..teacher.spec import v061_family

    return list(spec.order) if v061_family(spec) else list(spec.keys)


def training_box(params: Config, spec: Any) -> dict[str, Any]:
    """Where the student was taught, for the sidecar and metadata (scoring warns outside it)."""
    from ..teacher.spec import v061_family

    if v061_family(spec):
        return {"quality_max": params.sample.bounds.quality_max, "motion2_max": params.sample.bounds.motion2_max}
    return {"from": "sample/spec_box: the model file's extractor bounds, else the corpus range + margin"}


def exact_parameters(spec: Any) -> int:
    from .exact import parameter_count

    return parameter_count(spec)


def exact_predictor(data: bytes) -> Any:
    """An exact graph's bytes as ONNX Runtime runs them (in chunks, like every tiny model)."""
    from ..model.runtime import ort_session, run_chunked

    session = ort_session(data)
    name = session.get_inputs()[0].name
    return lambda x: run_chunked(lambda c: session.run(None, {name: c})[0], np.asarray(x, np.float32))


def evaluate_model(params: Config, paths: ExportPaths, student_key: str | None = None) -> dict[str, Any]:
    """The eval stage: the shipped file beside its teacher's exact graph, the swept archs and (for v0.6.1) the
    peers, on every set; the subjective scores where the corpus has them; ``eval.json``, figures, model card."""
    import onnx
    import pandas as pd

    from ..evaluate.sets import student_sets
    from ..evaluate.subjective import markdown_table, subjective_metrics
    from ..model.runtime import load_tiny_model

    st = params.student(student_key)
    spec, within = st.spec, params.evaluate.within
    sets = student_sets(params, st)
    ours = load_tiny_model(paths.onnx, order=spec.order, keys=spec.keys)
    exact_name = paths.exact_onnx.stem
    exact = load_tiny_model(paths.exact_onnx, order=spec.order, keys=spec.keys)
    sweep = sweep_students(paths.arch_ckpts)
    models: dict[str, Any] = {st.id: ours.predict, exact_name: exact.predict}
    sweep_heads = {n: student_predictor(s, opset=params.export.opset) for n, s in sweep.items()}
    models.update({n: score_of(p, spec) for n, p in sweep_heads.items()})
    sizes = {
        st.id: None,
        exact_name: exact_parameters(spec),
        **{n: s.n_parameters() for n, s in sweep.items()},
    }
    # The fork's peers distil vmaf_v0.6.1: beside its student only (the bootstrap reads the same features)
    peers = load_peers(paths.peers_dir, params.evaluate.peers) if spec.name == TEACHER else {}
    models.update({n: m.predict for n, m in peers.items()})
    sizes.update({n: onnx_parameters(m.path) for n, m in peers.items()})
    evaluation = measure_models(models, sets, within=within)
    winner, val = winner_val_metrics(paths.train_metrics)
    val = {k: round(v, 6) for k, v in val.items()}
    sidecar = json.loads(paths.onnx.with_suffix(".json").read_text())
    sizes[st.id] = int(sidecar["architecture"]["n_parameters"])
    for name, n in sizes.items():
        evaluation[name]["n_params"] = n
    interval_md = ""
    if spec.bootstrap is not None:  # every head and statistic, beside the exact graph's (the reference row)
        from ..evaluate.interval import markdown_table as interval_table
        from ..evaluate.interval import measure_intervals

        heads = {st.id: ours.predict_heads, exact_name: exact.predict_heads, **sweep_heads}
        for name, figs in measure_intervals(heads, sets, spec.bootstrap, order=spec.order).items():
            evaluation[name]["interval"] = figs
        interval_md = "\n".join(
            line
            for s in sets
            for line in (f"{SET_TITLES.get(s.name, s.name)}:", "", *interval_table(_intervals(evaluation), s.name), "")
        )
    labels = pd.read_parquet(paths.labels)
    x = labels[list(spec.order)].to_numpy(np.float32)
    subjective = subjective_metrics(
        labels, {"teacher": labels["label"].to_numpy(np.float64), "student": ours.predict(x).astype(np.float64)}
    )
    doc = {**evaluation, "subjective": subjective}
    atomic_write_text(paths.eval_metrics, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    preds = {s.name: ours.predict(s.x).astype(np.float64) for s in sets}
    figures = write_figures(paths.figures, preds, sets, order=spec.order)
    data = paths.onnx.read_bytes()
    proto = onnx.load_from_string(data)
    card = CardInputs(
        model_id=st.id,
        path=paths.onnx,
        n_bytes=len(data),
        sha256=sha256_bytes(data),
        metadata={p.key: p.value for p in proto.metadata_props},
        architecture=sidecar["architecture"],
        ops=list(dict.fromkeys(node.op_type for node in proto.graph.node)),
        opset=params.export.opset,
        ir_version=IR_VERSION,
        winner=winner,
        val=val,
        evaluation=evaluation,
        loco=load_loco(paths.loco_metrics),
        data_version=data_version(paths.data_dvc),
        figures=figures,
        order=tuple(sidecar["features"]),
        clip=ours_clip(sidecar),
        exact_name=exact_name,
        subjective=markdown_table(subjective),
        interval=interval_md,
    )
    atomic_write_text(paths.model_card, render_card(card, paths.model_card))
    log.info("wrote %s, %s and %d figures", paths.eval_metrics, paths.model_card, len(figures))
    return doc


def _intervals(evaluation: dict[str, Any]) -> dict[str, Any]:
    return {name: r["interval"] for name, r in evaluation.items() if isinstance(r, dict) and "interval" in r}


def ours_clip(sidecar: dict[str, Any]) -> tuple[float, float]:
    """The output range a sidecar states (``notes``), defaulting to VMAF's [0, 100]."""
    import re

    m = re.search(r"in \[([-0-9.e]+), ([-0-9.e]+)\] out", str(sidecar.get("notes", "")))
    return (float(m[1]), float(m[2])) if m else (0.0, 100.0)
