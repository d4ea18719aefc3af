"""The export stage: best checkpoint → ``vmaf_tiny_fr_v2_nflx.onnx`` + model card.

The graph is written node by node with ``onnx.helper`` from the student's
weights instead of going through ``torch.onnx.export``: torch ≥ 2.9 exports
at opset 18 through dynamo, and the tracer's output (node names, constant
folding, op choice) changes between torch releases.  Built by hand the graph
is exactly the contract of ``DESIGN.md`` —

    features[N,6] → Sub(mean) → Div(std) → {Gemm → Relu} × depth → Gemm → Squeeze → Clip(0,100) → vmaf[N]

— the same ops, in the same order, as ``StudentMLP.forward`` (so the parity
check compares like with like), with the normalisation inside the graph (no
sidecar file), plain ops only and deterministic bytes: the same checkpoint,
data and commit always serialise to the same file.

``metadata_props`` carry what a consumer needs to trust the file: the
feature order, the teacher, the data version (the md5 in ``data.dvc``), the
git commit, the checkpoint's sha256 and the held-out metrics (the winner's
val metrics from ``metrics/train.json`` and test metrics computed here, by
ONNX Runtime on the exported graph itself).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_path, atomic_write_bytes, atomic_write_text
from .libvmaf import FEATURES
from .metrics import fidelity_metrics
from .provenance import UNKNOWN, data_version, file_sha256, git_commit

if TYPE_CHECKING:  # heavy imports stay out of module import (the CLI imports this lazily anyway)
    import onnx
    import onnxruntime
    import pandas as pd

    from .student import StudentMLP

log = logging.getLogger(__name__)

#: The opset of the ONNX contract (DESIGN.md).
CONTRACT_OPSET = 17
#: IR version matching opset 17 (ONNX 1.12): what older runtimes accept.
CONTRACT_IR_VERSION = 8
INPUT_NAME = "features"
OUTPUT_NAME = "vmaf"
BATCH_DIM = "N"
DEFAULT_ONNX_PATH = "model/tiny/vmaf_tiny_fr_v2_nflx.onnx"
DEFAULT_TEACHER = "vmaf_v0.6.1"
#: metadata_props every exported model carries (the gate's contract check reads them).
REQUIRED_METADATA = (
    "feature_order",
    "teacher",
    "data_version",
    "git_commit",
    "checkpoint_sha256",
    "heldout_metrics",
    "architecture",
)


# --------------------------------------------------------------------------- graph


def student_layers(student: StudentMLP) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(weight[out, in], bias[out])`` of each Linear, in forward order, as float32."""
    from torch import nn

    layers = []
    for module in student.net:
        if isinstance(module, nn.Linear):
            w = module.weight.detach().cpu().numpy().astype(np.float32)
            b = module.bias.detach().cpu().numpy().astype(np.float32)
            layers.append((w, b))
        elif not isinstance(module, nn.ReLU | nn.Dropout):
            raise TypeError(f"cannot export {type(module).__name__}: StudentMLP holds only Linear, ReLU, Dropout")
    return layers


def build_graph(
    mean: np.ndarray,
    std: np.ndarray,
    layers: list[tuple[np.ndarray, np.ndarray]],
    *,
    metadata: dict[str, str] | None = None,
    opset: int = CONTRACT_OPSET,
) -> onnx.ModelProto:
    """The student as an ONNX model: ops in ``StudentMLP.forward``'s order, ReLU between Gemms.

    Weights keep torch's ``[out, in]`` layout with ``Gemm(transB=1)``, which
    is exactly ``torch.addmm(b, x, W.T)``: no transposed copy that could
    differ from the checkpoint.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if opset < 13:
        raise ValueError(f"opset {opset} < 13: Squeeze/Clip take their axes/bounds as inputs from opset 13 on")
    if not layers:
        raise ValueError("no layers to export")
    f32 = np.float32
    inits = [
        numpy_helper.from_array(np.asarray(mean, f32).reshape(len(FEATURES)), "norm.mean"),
        numpy_helper.from_array(np.asarray(std, f32).reshape(len(FEATURES)), "norm.std"),
    ]
    nodes = [
        helper.make_node("Sub", [INPUT_NAME, "norm.mean"], ["centred"], name="normalise_sub"),
        helper.make_node("Div", ["centred", "norm.std"], ["z"], name="normalise_div"),
    ]
    x = "z"
    for i, (w, b) in enumerate(layers):
        last = i == len(layers) - 1
        wname, bname, out = f"layer{i}.weight", f"layer{i}.bias", f"layer{i}.out"
        inits += [
            numpy_helper.from_array(np.asarray(w, f32), wname),
            numpy_helper.from_array(np.asarray(b, f32), bname),
        ]
        nodes.append(helper.make_node("Gemm", [x, wname, bname], [out], name=f"layer{i}_gemm", transB=1))
        x = out
        if not last:
            nodes.append(helper.make_node("Relu", [x], [f"layer{i}.act"], name=f"layer{i}_relu"))
            x = f"layer{i}.act"
    if layers[-1][0].shape[0] != 1:
        raise ValueError(f"the last layer must have one output, has {layers[-1][0].shape[0]}")
    inits += [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "squeeze.axes"),
        numpy_helper.from_array(np.array(0.0, dtype=f32), "clip.min"),
        numpy_helper.from_array(np.array(100.0, dtype=f32), "clip.max"),
    ]
    nodes += [
        helper.make_node("Squeeze", [x, "squeeze.axes"], ["score"], name="squeeze"),
        helper.make_node("Clip", ["score", "clip.min", "clip.max"], [OUTPUT_NAME], name="clip_0_100"),
    ]
    graph = helper.make_graph(
        nodes,
        "tinyvmaf_student",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, len(FEATURES)])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [BATCH_DIM])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=CONTRACT_IR_VERSION,
        producer_name="tinyvmaf",
        producer_version=_package_version(),
        doc_string=(
            "VMAF vmaf_v0.6.1 distilled into an MLP. Input: raw libvmaf integer features in the order of "
            "metadata 'feature_order'. Output: per-frame VMAF in [0, 100]; pool frames by their mean."
        ),
    )
    if metadata:
        helper.set_model_props(model, dict(sorted(metadata.items())))
    onnx.checker.check_model(model, full_check=True)
    return model


def build_student_graph(
    student: StudentMLP, *, metadata: dict[str, str] | None = None, opset: int = CONTRACT_OPSET
) -> onnx.ModelProto:
    """:func:`build_graph` from a loaded :class:`StudentMLP`."""
    mean = student.mean.detach().cpu().numpy()
    std = student.std.detach().cpu().numpy()
    return build_graph(mean, std, student_layers(student), metadata=metadata, opset=opset)


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("tinyvmaf")
    except Exception:  # noqa: BLE001 - an uninstalled checkout still exports
        return "0"


# --------------------------------------------------------------------------- running


def ort_session(model: str | Path | bytes, *, threads: int = 1) -> onnxruntime.InferenceSession:
    """A CPU ONNX Runtime session, the one the gate and ``tinyvmaf score`` both use.

    One intra-op thread: the student is tiny, and a fixed thread count keeps
    results independent of the machine's core count.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def run_session(session: onnxruntime.InferenceSession, features: np.ndarray) -> np.ndarray:
    """Scores ``[N]`` float32 for raw features ``[N, 6]`` (an empty batch gives an empty array)."""
    x = np.ascontiguousarray(features, dtype=np.float32).reshape(-1, len(FEATURES))
    if len(x) == 0:
        return np.zeros(0, dtype=np.float32)
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
    return np.asarray(out, dtype=np.float32)


# --------------------------------------------------------------------------- provenance


def winner_val_metrics(train_metrics: str | Path) -> tuple[str, dict[str, float]]:
    """The winning arch and its val metrics from ``metrics/train.json`` (``unknown``, {} if absent).

    The train stage writes ``{"winner": name, "val_plcc": ..., ..., "archs": {name: {...}}}``;
    the ``val_*`` numbers of the winner's ``archs`` entry are taken, else the top-level ones.
    """
    path = Path(train_metrics)
    if not path.is_file():
        return UNKNOWN, {}
    doc = json.loads(path.read_text())
    name = str(doc.get("winner") or UNKNOWN)
    entry = (doc.get("archs") or {}).get(name)
    for source in (entry, doc):
        if isinstance(source, dict):
            vals = {k: float(v) for k, v in source.items() if k.startswith("val_") and _is_number(v)}
            if vals:
                return name, vals
    return name, {}


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _rounded(d: dict[str, Any], places: int = 6) -> dict[str, Any]:
    """Round metric floats: metadata bytes must not depend on a last-bit BLAS difference."""
    return {k: round(v, places) if isinstance(v, float) else v for k, v in d.items()}


# --------------------------------------------------------------------------- stage


@dataclass(frozen=True)
class ExportConfig:
    """Paths and options of the export stage (``export:`` in params.yaml)."""

    ckpt: Path = Path("models/best.ckpt")
    labels: Path = Path("labels.parquet")
    train_metrics: Path = Path("metrics/train.json")
    out: Path = Path(DEFAULT_ONNX_PATH)
    model_card: Path | None = Path("reports/model_card.md")
    figures: Path | None = Path("reports/figures")
    data_dvc: Path = Path("data.dvc")
    teacher: str = DEFAULT_TEACHER
    opset: int = CONTRACT_OPSET
    git_commit: str | None = None  # None = ask git

    @classmethod
    def from_params(cls, params: Any) -> ExportConfig:
        ex = params.get("export", {}) or {}
        lab = params.get("label", {}) or {}

        def opt(key: str, default: str | None) -> Path | None:
            value = ex.get(key, default)
            return Path(value) if value else None

        return cls(
            ckpt=Path(ex.get("ckpt", cls.ckpt)),
            labels=Path(ex.get("labels", cls.labels)),
            train_metrics=Path(ex.get("train_metrics", cls.train_metrics)),
            out=Path(ex.get("path", cls.out)),
            model_card=opt("model_card", "reports/model_card.md"),
            figures=opt("figures", "reports/figures"),
            data_dvc=Path(ex.get("data_dvc", cls.data_dvc)),
            teacher=str(lab.get("teacher", cls.teacher)),
            opset=int(ex.get("opset", cls.opset)),
        )


@dataclass
class ExportResult:
    path: Path
    n_bytes: int
    sha256: str
    metadata: dict[str, str]
    test_metrics: dict[str, float]
    val_metrics: dict[str, float]
    winner: str
    ops: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def teacher_column(df: pd.DataFrame, teacher: str) -> str:
    """The column holding the teacher's per-frame score: the teacher's own, else ``label``."""
    for col in (teacher, "label"):
        if col in df.columns:
            return col
    raise KeyError(f"labels have neither a {teacher!r} nor a 'label' column (columns: {list(df.columns)})")


def test_rows(labels: str | Path, teacher: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Features ``[N, 6]`` float32, teacher scores ``[N]`` and the rows of the ``test`` split."""
    import pandas as pd

    df = pd.read_parquet(labels)
    missing = [c for c in (*FEATURES, "split") if c not in df.columns]
    if missing:
        raise KeyError(f"{labels}: missing column(s) {missing}")
    test = df[df["split"] == "test"].reset_index(drop=True)
    col = teacher_column(test, teacher)
    return test[list(FEATURES)].to_numpy(np.float32), test[col].to_numpy(np.float64), test


def export_model(cfg: ExportConfig) -> ExportResult:
    """Checkpoint → ONNX (atomic), then the model card and its figures."""
    from .student import load_student

    student, hp = load_student(cfg.ckpt)
    x_test, y_test, _ = test_rows(cfg.labels, cfg.teacher)
    # Test metrics of the graph that ships: run ORT on it before the metadata is attached
    # (metadata does not change what the graph computes).
    bare = build_student_graph(student, opset=cfg.opset)
    pred = run_session(ort_session(bare.SerializeToString()), x_test)
    test_metrics = _rounded(fidelity_metrics(pred, y_test))
    winner, val_metrics = winner_val_metrics(cfg.train_metrics)
    val_metrics = _rounded(val_metrics)
    arch = {
        "type": "mlp",
        "width": student.width,
        "depth": student.depth,
        "layers": [len(FEATURES)] + [student.width] * student.depth + [1],
        "activation": "relu",
        "n_parameters": student.n_parameters(),
        "name": str(hp.get("arch") or hp.get("name") or winner),
    }
    metadata = {
        "feature_order": json.dumps(list(FEATURES)),
        "teacher": cfg.teacher,
        "data_version": data_version(cfg.data_dvc),
        "git_commit": cfg.git_commit or git_commit(),
        "checkpoint_sha256": file_sha256(cfg.ckpt),
        "heldout_metrics": json.dumps({"winner": winner, "val": val_metrics, "test": test_metrics}, sort_keys=True),
        "architecture": json.dumps(arch, sort_keys=True),
        "normalisation": "in-graph: (features - norm.mean) / norm.std, train-split statistics",
        "output": "per-frame VMAF clipped to [0, 100]; a clip's score is the mean over frames",
    }
    model = build_student_graph(student, metadata=metadata, opset=cfg.opset)
    data = model.SerializeToString()
    atomic_write_bytes(cfg.out, data)
    result = ExportResult(
        path=cfg.out,
        n_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        metadata=metadata,
        test_metrics=test_metrics,
        val_metrics=val_metrics,
        winner=winner,
        ops=list(dict.fromkeys(node.op_type for node in model.graph.node)),
    )
    log.info("wrote %s (%d B, sha256 %s); test %s", cfg.out, len(data), result.sha256[:12], test_metrics)
    if cfg.figures is not None:
        result.figures = write_figures(cfg.figures, pred, y_test, x_test)
    if cfg.model_card is not None:
        atomic_write_text(cfg.model_card, model_card(result, arch, cfg))
        log.info("wrote %s", cfg.model_card)
    return result


# --------------------------------------------------------------------------- model card


def write_figures(folder: Path, pred: np.ndarray, target: np.ndarray, features: np.ndarray) -> list[Path]:
    """Student vs teacher scatter and error against each feature, on the test split (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    err = np.asarray(pred, np.float64) - np.asarray(target, np.float64)
    # No timestamp/software chunk: the same model gives the same PNG bytes.
    meta = {"Software": None}
    paths = []

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(target, pred, s=4, alpha=0.5)
    ax.plot([0, 100], [0, 100], "k--", lw=1)
    ax.set(xlim=(0, 100), ylim=(0, 100), xlabel="teacher VMAF (vmaf_v0.6.1)", ylabel="student VMAF (ONNX)")
    ax.set_title(f"test split, {len(pred)} frames")
    fig.tight_layout()
    paths.append(folder / "student_vs_teacher.png")
    with atomic_path(paths[-1]) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=meta)
    plt.close(fig)

    fig, axes = plt.subplots(2, 3, figsize=(12, 7), sharey=True)
    for ax, j, name in zip(axes.flat, range(len(FEATURES)), FEATURES, strict=True):
        ax.scatter(features[:, j], err, s=4, alpha=0.5)
        ax.axhline(0.0, color="k", lw=1)
        ax.set_xlabel(name)
    for ax in axes[:, 0]:
        ax.set_ylabel("student − teacher")
    fig.suptitle("error against each feature (test split)")
    fig.tight_layout()
    paths.append(folder / "error_vs_features.png")
    with atomic_path(paths[-1]) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=meta)
    plt.close(fig)
    return paths


def model_card(result: ExportResult, arch: dict, cfg: ExportConfig) -> str:
    """Markdown model card: what the file is, where it came from, how good it is."""
    md = result.metadata

    def table(metrics: dict[str, float]) -> list[str]:
        if not metrics:
            return ["(none recorded)"]
        rows = ["| metric | value |", "|---|---|"]
        rows += [f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
        return rows

    layers = " → ".join(str(n) for n in arch["layers"])
    card_dir = cfg.model_card.parent if cfg.model_card else Path(".")
    lines = [
        "# Model card: tinyvmaf student",
        "",
        f"File: `{result.path}` ({result.n_bytes} bytes, sha256 `{result.sha256}`)",
        "",
        "## What it is",
        "",
        f"A tiny MLP distilled from the VMAF teacher `{md['teacher']}` (libvmaf). "
        "Input `features` float32 `[N, 6]`: raw libvmaf integer features in the order "
        f"`{', '.join(FEATURES)}`. Output `vmaf` float32 `[N]`: per-frame VMAF clipped to [0, 100]; "
        "pool a clip by the mean over frames. Normalisation is inside the graph.",
        "",
        f"- architecture: {layers} (ReLU), `{arch['name']}`",
        f"- parameters: {arch['n_parameters']}",
        f"- ONNX: opset {cfg.opset}, ops {', '.join(result.ops)}; dynamic batch; IR version {CONTRACT_IR_VERSION}",
        f"- data version (data.dvc md5): `{md['data_version']}`",
        f"- git commit: `{md['git_commit']}`",
        f"- checkpoint sha256: `{md['checkpoint_sha256']}`",
        "",
        "## Held-out metrics",
        "",
        f"Validation (winner `{result.winner}` of the arch sweep, from `{cfg.train_metrics}`):",
        "",
        *table(result.val_metrics),
        "",
        "Test split, frame level, exported ONNX vs teacher (computed at export):",
        "",
        *table(result.test_metrics),
        "",
        "## Plots",
        "",
    ]
    for p in result.figures:
        rel = p.relative_to(card_dir) if p.is_relative_to(card_dir) else p.resolve()
        lines += [f"![{p.stem}]({rel.as_posix()})", ""]
    if not result.figures:
        lines += ["(figures not written)", ""]
    return "\n".join(lines)
