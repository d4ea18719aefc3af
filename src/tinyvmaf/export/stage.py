"""The export stage: best checkpoint → the ONNX file, its sidecar and registry entry, the evaluation, the model card.

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
from ..contract import FEATURES, IR_VERSION
from ..evaluate.measure import measure_models
from ..evaluate.peers import load_peers
from ..evaluate.sets import standard_sets
from ..model.sidecar import make_sidecar, registry_entry, sha256_bytes, upsert_registry, write_sidecar
from .card import CardInputs, load_loco, render_card, write_figures
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
    eval_metrics: Path
    model_card: Path
    figures: Path

    @classmethod
    def from_params(cls, params: Config) -> ExportPaths:
        p = params.paths
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


def export_model(params: Config, paths: ExportPaths) -> ExportResult:
    """Checkpoint → ONNX (atomic), sidecar, registry entry, ``metrics/eval.json``, figures, model card."""
    from ..student.checkpoint import load_student

    ex, teacher, within = params.export, params.label.teacher, params.evaluate.within
    student, hp = load_student(paths.ckpt)
    sets = standard_sets(params.evaluate.dense, teacher=teacher, labels=paths.labels, golden_frames=paths.golden_frames)
    # The graph that ships, run by ONNX Runtime before the metadata is attached.
    ours = student_predictor(student, opset=ex.opset)
    preds = {s.name: ours(s.x).astype(np.float64) for s in sets}
    peers = load_peers(paths.peers_dir, params.evaluate.peers)
    sweep = sweep_students(paths.arch_ckpts)  # the winner's competitors, measured the same way
    models = {
        ex.id: ours,
        **{n: student_predictor(s, opset=ex.opset) for n, s in sweep.items()},
        **{n: m.predict for n, m in peers.items()},
    }
    evaluation = measure_models(models, sets, within=within)
    sizes = {
        ex.id: student.n_parameters(),
        **{n: s.n_parameters() for n, s in sweep.items()},
        **{n: onnx_parameters(m.path) for n, m in peers.items()},
    }
    for name, n in sizes.items():
        evaluation[name]["n_params"] = n
    winner, val = winner_val_metrics(paths.train_metrics)
    val = {k: round(v, 6) for k, v in val.items()}
    version = data_version(paths.data_dvc)
    arch = {
        "type": "mlp",
        "name": str(hp.get("arch") or winner),
        "width": student.width,
        "depth": student.depth,
        "activation": student.activation,
        "layers": [len(FEATURES)] + [student.width] * student.depth + [1],
        "n_parameters": student.n_parameters(),
    }
    heldout = heldout_summary(evaluation[ex.id], val)
    box = {"quality_max": params.sample.bounds.quality_max, "motion2_max": params.sample.bounds.motion2_max}
    metadata = {
        "feature_order": json.dumps(list(FEATURES)),
        "teacher": teacher,
        "data_version": version,
        "checkpoint_sha256": file_sha256(paths.ckpt),
        "heldout_metrics": json.dumps(heldout, sort_keys=True),
        "architecture": json.dumps(arch, sort_keys=True),
        "training_box": json.dumps(box, sort_keys=True),
        "normalisation": "in-graph: (features - norm.mean) / norm.std, training-set statistics",
        "output": "per-frame VMAF clipped to [0, 100]; a clip's score is the mean over frames",
    }
    model = build_student_graph(student, opset=ex.opset, metadata=metadata, producer_version=__version__)
    data = model.SerializeToString()
    atomic_write_bytes(paths.onnx, data)
    sidecar = make_sidecar(
        model_id=ex.id,
        onnx_bytes=data,
        opset=ex.opset,
        teacher=teacher,
        data_version=version,
        heldout=heldout,
        architecture=arch,
        training_box=box,
        license=ex.license,
        description=ex.description,
    )
    write_sidecar(paths.onnx.with_suffix(".json"), sidecar)
    upsert_registry(
        paths.onnx.parent / "registry.json",
        registry_entry(sidecar, license_url=ex.license_url, description=ex.description),
    )
    atomic_write_text(paths.eval_metrics, json.dumps(evaluation, indent=2, sort_keys=True) + "\n")
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
    log.info("wrote %s (%d B, sha256 %s)", paths.onnx, len(data), result.sha256[:12])
    result.figures = write_figures(paths.figures, preds, sets)
    card = CardInputs(
        model_id=ex.id,
        path=paths.onnx,
        n_bytes=len(data),
        sha256=result.sha256,
        metadata=metadata,
        architecture=arch,
        ops=result.ops,
        opset=ex.opset,
        ir_version=IR_VERSION,
        winner=winner,
        val=val,
        evaluation=evaluation,
        loco=load_loco(paths.loco_metrics),
        data_version=version,
        figures=result.figures,
    )
    atomic_write_text(paths.model_card, render_card(card, paths.model_card))
    log.info("wrote %s", paths.model_card)
    return result
