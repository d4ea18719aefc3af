"""Run any tiny feature model: ours, the libvmaf fork's, anything with the ``[N, F] → [N]`` contract.

A *tiny model* is an ONNX file taking one float32 ``[N, F]`` input of
libvmaf features and giving one score per row, with an optional sidecar
``<id>.json`` beside it (the libvmaf fork's format: ``features``,
``input_name``, ``output_name``, maybe ``input_mean``/``input_std``).
:func:`load_tiny_model` reads both and answers the two questions a caller
gets wrong silently:

* *which column is which*: the sidecar's ``features`` (or
  ``feature_order``), else the graph's ``feature_order`` metadata, else
  canonical-6 (what libvmaf's successor assumes); rows are always passed
  here in canonical-6 order and reordered by name;
* *who standardises*: a graph that begins with ``Sub(const[F])`` then
  ``Div(const[F])`` (or ``Mul``) already carries its scaler, so the
  sidecar's ``input_mean``/``input_std`` must be ignored (a warning says
  so: the libvmaf fork's successor would apply them a second time unless
  the sidecar says ``onnx_has_scaler: true``); a graph without one gets
  them applied here.

One CPU session with one intra-op thread: the models are tiny, and a fixed
thread count keeps results independent of the machine's core count.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..contract import FEATURES, HEADS_NAME

if TYPE_CHECKING:
    import onnx
    import onnxruntime


class ModelContractError(ValueError):
    """The model cannot be fed the features this project extracts; the message names the file and why."""


def ort_session(model: str | Path | bytes, *, threads: int = 1, optimise: bool = True) -> onnxruntime.InferenceSession:
    """A CPU ONNX Runtime session (one intra-op thread by default; ``optimise=False``: no graph optimisation)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if not optimise:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


#: Rows per ONNX Runtime run.  A fixed-order graph holds its products, ``[N, k, out]`` (16 KiB a row at
#: 64x64): small chunks stay in cache, ~3x faster than 4,096 rows at once (``benchmarks/graph_forms.md``).
CHUNK = 64


def run_chunked(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """``run`` over ``x`` in row chunks, float32 (every op of a tiny model is row-wise: chunking changes no bit).

    ``[N]`` out for a score model, ``[N, H]`` for one with heads (a bootstrap's components).
    """
    x = np.ascontiguousarray(x, np.float32)

    def rows(out: np.ndarray, n: int) -> np.ndarray:
        out = np.asarray(out, np.float32)
        return out.reshape(n) if out.ndim <= 1 or out.shape[1:] == (1,) else out.reshape(n, -1)

    if len(x) <= chunk:
        return rows(run(x), len(x))
    parts = [rows(run(x[i : i + chunk]), len(x[i : i + chunk])) for i in range(0, len(x), chunk)]
    return np.concatenate(parts)


def sidecar_path(onnx_path: str | Path) -> Path:
    """``<dir>/<id>.json`` beside ``<dir>/<id>.onnx`` (libvmaf's layout)."""
    p = Path(onnx_path)
    return p.with_suffix(".json")


def _const_values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers and ``Constant`` node outputs by name."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def graph_scaler(model: onnx.ModelProto) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mean, std)`` when the graph starts by standardising its input, else ``None``.

    Recognised: ``Sub(input, c1[F])`` followed by ``Div(·, c2[F])`` (std) or
    ``Mul(·, c2[F])`` (1/std), constants as initializers or Constant nodes.
    """
    if len(model.graph.input) != 1:
        return None
    consts = _const_values(model)
    inp = model.graph.input[0].name
    # A student with the chroma correction standardises the corrected features (export.graph.chroma_correction).
    corrected = [n for n in model.graph.node if n.op_type == "Concat" and n.name == "cc_concat"]
    if corrected:
        inp = corrected[0].output[0]
    users = [n for n in model.graph.node if inp in n.input]
    if len(users) != 1 or users[0].op_type != "Sub" or list(users[0].input)[0] != inp:
        return None
    sub = users[0]
    mean = consts.get(sub.input[1])
    if mean is None or mean.ndim != 1:
        return None
    nxt = [n for n in model.graph.node if sub.output[0] in n.input]
    if len(nxt) != 1 or nxt[0].op_type not in ("Div", "Mul") or list(nxt[0].input)[0] != sub.output[0]:
        return None
    scale = consts.get(nxt[0].input[1])
    if scale is None or scale.shape != mean.shape:
        return None
    std = scale if nxt[0].op_type == "Div" else 1.0 / scale
    return mean.astype(np.float64), np.asarray(std, dtype=np.float64)


def _feature_order(sidecar: dict | None, metadata: dict[str, str], path: Path) -> tuple[tuple[str, ...], str]:
    """The model's input columns by name, and where that was read."""
    if sidecar:
        for key in ("features", "feature_order"):
            if key in sidecar:
                return tuple(str(f) for f in sidecar[key]), f"sidecar '{key}'"
    if "feature_order" in metadata:
        raw = metadata["feature_order"]
        try:
            order = json.loads(raw)
        except json.JSONDecodeError:
            order = [s.strip() for s in raw.split(",")]
        return tuple(str(f) for f in order), "metadata 'feature_order'"
    return FEATURES, "default (canonical-6)"


@dataclass
class TinyModel:
    """A loaded tiny model: call :meth:`predict` with canonical-6 rows."""

    path: Path
    name: str
    session: Any
    input_name: str
    output_name: str
    features: tuple[str, ...]
    feature_source: str
    scaler_in_graph: bool
    external_scaler: tuple[np.ndarray, np.ndarray] | None
    metadata: dict[str, str]
    sidecar: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    order: tuple[str, ...] = FEATURES  # the caller's row order
    keys: tuple[str, ...] = ()  # the same features under libvmaf's keys (a sidecar may name them so)

    @property
    def n_outputs(self) -> int:
        shape = self.session.get_outputs()[0].shape
        return int(shape[1]) if len(shape) == 2 and isinstance(shape[1], int) else 1

    @property
    def columns(self) -> list[int]:
        return [column_of(f, self.order, self.keys) for f in self.features]

    @property
    def has_heads(self) -> bool:
        """A bootstrap student (or exact graph): its output is the raw component scores, ``heads [N, n]``."""
        return self.output_name == HEADS_NAME

    @property
    def bootstrap(self) -> Any:
        """The bootstrap teacher whose statistics this model's heads give (its metadata/sidecar ``teacher``)."""
        from ..teacher.spec import load_spec

        teacher = (self.sidecar or {}).get("teacher") or self.metadata.get("teacher")
        boot = load_spec(str(teacher)).bootstrap if self.has_heads and teacher else None
        if boot is None:
            raise ModelContractError(f"{self.path}: not a bootstrap model with heads (output {self.output_name!r})")
        return boot

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Scores ``[N]`` for rows ``[N, len(order)]`` (reordered and scaled as the model needs): the graph's
        float32 output, or for a model with heads the score libvmaf derives from them (key 0, float64)."""
        if self.has_heads:
            return self.statistics(rows)["score"]
        return self.run(rows)

    def predict_heads(self, rows: np.ndarray) -> np.ndarray:
        """A bootstrap model's raw component scores ``[N, n]`` (float32, what the graph outputs)."""
        self.bootstrap  # noqa: B018 - raises for a model without heads
        return self.run(rows)

    def statistics(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """libvmaf's per-frame bootstrap statistics from the heads (:func:`statistics_from_components`)."""
        from ..teacher.bootstrap import statistics_from_components

        return statistics_from_components(self.bootstrap, self.run(rows).astype(np.float64))

    def run(self, rows: np.ndarray) -> np.ndarray:
        """The graph's output on rows ``[N, len(order)]``: ``[N]`` scores, or ``[N, n]`` heads."""
        x = np.asarray(rows, dtype=np.float64).reshape(-1, len(self.order))[:, self.columns]
        if self.external_scaler is not None:
            mean, std = self.external_scaler
            x = (x - mean) / std
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        if len(x32) == 0:
            return np.zeros((0, self.n_outputs) if self.has_heads else 0, dtype=np.float32)
        return run_chunked(lambda c: self.session.run([self.output_name], {self.input_name: c})[0], x32)


def column_of(feature: str, order: tuple[str, ...], keys: tuple[str, ...]) -> int:
    """Where a model's input ``feature`` (a short name or a libvmaf key) sits in rows of ``order``."""
    if feature in order:
        return order.index(feature)
    return keys.index(feature)


def default_keys(order: tuple[str, ...]) -> tuple[str, ...]:
    """libvmaf's keys of canonical-6 short names (``adm2`` → ``integer_adm2``); others have no default."""
    return tuple(f"integer_{f}" for f in order) if order == FEATURES else ()


def load_tiny_model(
    path: str | Path,
    *,
    name: str | None = None,
    order: tuple[str, ...] = FEATURES,
    keys: tuple[str, ...] | None = None,
) -> TinyModel:
    """Open ``path`` (and its sidecar, if any) and check it can take rows of ``order`` (libvmaf ``keys``).

    The default is canonical-6 (every v0.6.1 model, the fork's peers
    included); a v1.0.16 student's sidecar names full libvmaf keys, which
    ``keys`` (the spec's, in the same order) maps to the row columns.
    """
    keys = default_keys(order) if keys is None else tuple(keys)
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ONNX model (train and export one, or pass --model)")
    data = path.read_bytes()
    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - any parse failure is "not an ONNX model"
        raise ModelContractError(f"{path}: not a readable ONNX model ({exc})") from None
    side_path = sidecar_path(path)
    sidecar = json.loads(side_path.read_text()) if side_path.is_file() else None
    metadata = {p.key: p.value for p in proto.metadata_props}
    features, source = _feature_order(sidecar, metadata, path)
    unknown = [f for f in features if f not in order and f not in keys]
    if unknown:
        raise ModelContractError(
            f"{path}: model expects feature(s) {unknown}; the rows hold {list(order)} (libvmaf keys {list(keys)})"
        )
    session = ort_session(data)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 2 or inputs[0].shape[1] != len(features):
        raise ModelContractError(
            f"{path}: inputs {[(i.name, i.shape) for i in inputs]} are not one [N, {len(features)}] tensor"
        )
    in_name = str((sidecar or {}).get("input_name") or inputs[0].name)
    out_name = str((sidecar or {}).get("output_name") or outputs[0].name)
    if in_name != inputs[0].name or out_name not in [o.name for o in outputs]:
        raise ModelContractError(
            f"{path}: sidecar names input {in_name!r}/output {out_name!r}, the graph has "
            f"{inputs[0].name!r}/{[o.name for o in outputs]}"
        )
    warnings: list[str] = []
    in_graph = graph_scaler(proto) is not None
    external = None
    has_stats = sidecar is not None and "input_mean" in sidecar and "input_std" in sidecar
    if has_stats and in_graph:
        warnings.append(
            f"{side_path.name}: input_mean/input_std ignored: the graph standardises its input itself"
            + ("" if sidecar.get("onnx_has_scaler") else " (and the sidecar lacks onnx_has_scaler: true)")
        )
    elif has_stats:
        external = (np.asarray(sidecar["input_mean"], np.float64), np.asarray(sidecar["input_std"], np.float64))
    return TinyModel(
        path=path,
        name=name or str((sidecar or {}).get("id") or path.stem),
        session=session,
        input_name=in_name,
        output_name=out_name,
        features=features,
        feature_source=source,
        scaler_in_graph=in_graph,
        external_scaler=external,
        metadata=metadata,
        sidecar=sidecar,
        warnings=warnings,
        order=tuple(order),
        keys=keys,
    )
