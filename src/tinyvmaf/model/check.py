"""``tinyvmaf model check DIR``: do the sidecars and the registry tell the truth about the ONNX files?

For every ``<id>.onnx`` in the folder (and every registry entry), by name:

sha256        the sidecar's and the registry's ``sha256`` equal the file's bytes
io            ``input_name``/``output_name`` exist in the graph; the input is
              ``[N, F]`` with F = the number of ``features``; shapes match
              ``input_shape``/``output_shape``
ops           every op of the graph is in the caller's allow-list: ``tinyvmaf model
              check`` accepts what any tiny model may use (the export's ops, plus
              ``Gemm`` and ``Sigmoid`` of the fork's peers and earlier students),
              release only what export emits (the gate's list)
features      the sidecar's feature order names known features, once each,
              and agrees with the graph's ``feature_order`` metadata
scaler        ``onnx_has_scaler`` says what the graph does; a sidecar that
              carries ``input_mean``/``input_std`` for a graph that already
              standardises, without ``onnx_has_scaler: true``, is the
              double-scaling risk (libvmaf's successor would scale twice)
registry      ids match ``^[a-z0-9][a-z0-9_-]*$``, each entry names an
              existing file, ``kind`` is fr/nr/filter
quant_mode    anything but fp32 needs the ``<id>.int8.onnx`` the loader will open
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..contract import FEATURES
from .runtime import graph_scaler
from .sidecar import ID_RE, KINDS, REGISTRY_FILE, REGISTRY_REQUIRED, read_registry, sha256_bytes


def known_features(teacher: object) -> tuple[str, ...]:
    """The names a sidecar may use: canonical-6, plus its teacher's libvmaf keys when tinyvmaf carries it."""
    from ..teacher.svr import packaged_models

    if isinstance(teacher, str) and teacher in packaged_models():
        from ..teacher.spec import load_spec

        return (*FEATURES, *load_spec(teacher).keys)
    return FEATURES


@dataclass
class Finding:
    model: str
    check: str
    message: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        return f"{self.severity}: {self.model}: {self.check}: {self.message}"


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def add(self, model: str, check: str, message: str, severity: str = "error") -> None:
        self.findings.append(Finding(model, check, message, severity))


def _dims(value_info) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _shape_matches(declared: list[int], actual: list[int | str]) -> bool:
    """``-1`` in a sidecar shape is any (symbolic) dimension."""
    return len(declared) == len(actual) and all(d == -1 or d == a for d, a in zip(declared, actual, strict=True))


def check_model_file(onnx_path: Path, report: CheckReport, allowed_ops: tuple[str, ...]) -> None:
    import onnx

    mid = onnx_path.stem
    report.models.append(mid)
    data = onnx_path.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001
        report.add(mid, "onnx", f"not a readable ONNX file: {exc}")
        return
    meta = {p.key: p.value for p in model.metadata_props}
    side_path = onnx_path.with_suffix(".json")
    if not side_path.is_file():
        report.add(mid, "sidecar", f"no sidecar {side_path.name} (feature order and scaling are then guesses)")
        return
    try:
        side = json.loads(side_path.read_text())
    except json.JSONDecodeError as exc:
        report.add(mid, "sidecar", f"{side_path.name} is not JSON: {exc}")
        return
    if side.get("sha256") != sha256_bytes(data):
        report.add(mid, "sha256", f"sidecar sha256 {side.get('sha256')} != the file's {sha256_bytes(data)}")
    if side.get("onnx") not in (None, onnx_path.name):
        report.add(mid, "sidecar", f"'onnx' names {side.get('onnx')!r}, the file is {onnx_path.name!r}")
    if "kind" in side and side["kind"] not in KINDS:
        report.add(mid, "sidecar", f"kind {side['kind']!r} is not one of {list(KINDS)}")

    features = side.get("features", side.get("feature_order"))
    if features is None:
        report.add(mid, "features", "the sidecar names no feature order ('features')")
        features = list(FEATURES)
    known = known_features(side.get("teacher"))
    unknown = [f for f in features if f not in known]
    if unknown or len(set(features)) != len(features):
        report.add(mid, "features", f"feature order {features} has unknown or repeated names (known: {list(known)})")
    if "feature_order" in meta:
        try:
            graph_order = json.loads(meta["feature_order"])
        except json.JSONDecodeError:
            graph_order = [s.strip() for s in meta["feature_order"].split(",")]
        if list(graph_order) != list(features):
            report.add(mid, "features", f"sidecar order {features} != the graph's feature_order {graph_order}")

    ins, outs = list(model.graph.input), list(model.graph.output)
    in_name, out_name = side.get("input_name"), side.get("output_name")
    if [i.name for i in ins] != [in_name]:
        report.add(mid, "io", f"input_name {in_name!r} but the graph's inputs are {[i.name for i in ins]}")
    else:
        dims = _dims(ins[0])
        if len(dims) != 2 or dims[1] != len(features):
            report.add(mid, "io", f"input shape {dims} is not [N, {len(features)}]")
        if "input_shape" in side and not _shape_matches(side["input_shape"], dims):
            report.add(mid, "io", f"input_shape {side['input_shape']} != the graph's {dims}")
    if out_name not in [o.name for o in outs]:
        report.add(mid, "io", f"output_name {out_name!r} but the graph's outputs are {[o.name for o in outs]}")
    else:
        dims = _dims(next(o for o in outs if o.name == out_name))
        if "output_shape" in side and not _shape_matches(side["output_shape"], dims):
            report.add(mid, "io", f"output_shape {side['output_shape']} != the graph's {dims}")

    exact = side.get("exact") is True
    if exact:  # a teacher's exact graph: any op of the fork's loader allow-list, its own normalisation
        from ..export.exact import ALLOWED_OPS

        allowed_ops = tuple(sorted(ALLOWED_OPS))
    ops = sorted({n.op_type for n in model.graph.node} - set(allowed_ops))
    if ops:
        report.add(mid, "ops", f"ops {ops} are not in the allow-list {list(allowed_ops)}")
    if exact:
        return

    in_graph = graph_scaler(model) is not None
    flag = side.get("onnx_has_scaler")
    stats = "input_mean" in side and "input_std" in side
    if flag is True and not in_graph:
        report.add(mid, "scaler", "onnx_has_scaler is true but the graph does not standardise its input")
    if flag is False and in_graph:
        report.add(
            mid, "scaler", "onnx_has_scaler is false but the graph standardises its input: features get scaled twice"
        )
    if in_graph and stats and flag is not True:
        report.add(
            mid,
            "scaler",
            "double-scaling risk: the graph standardises its input (Sub, Div) and the sidecar carries "
            "input_mean/input_std without onnx_has_scaler: true, so libvmaf's successor scales the features twice",
        )
    if not in_graph and not stats:
        report.add(mid, "scaler", "the graph has no scaler and the sidecar no input_mean/input_std", "warning")

    quant = side.get("quant_mode")
    if quant not in (None, "fp32"):
        int8 = onnx_path.with_name(f"{mid}.int8.onnx")
        if not int8.is_file():
            report.add(mid, "quant_mode", f"quant_mode {quant!r} makes libvmaf load {int8.name}, which is absent")


def check_registry(folder: Path, report: CheckReport) -> None:
    path = folder / REGISTRY_FILE
    if not path.is_file():
        report.add(REGISTRY_FILE, "registry", f"no {REGISTRY_FILE} in {folder}", "warning")
        return
    try:
        doc = read_registry(path)
    except (ValueError, json.JSONDecodeError) as exc:
        report.add(REGISTRY_FILE, "registry", str(exc))
        return
    if doc.get("schema_version") != 1:
        report.add(REGISTRY_FILE, "registry", f"schema_version {doc.get('schema_version')!r} != 1")
    for entry in doc["models"]:
        mid = str(entry.get("id"))
        missing = [k for k in REGISTRY_REQUIRED if k not in entry]
        if missing:
            report.add(mid, "registry", f"entry lacks {missing}")
            continue
        if not ID_RE.match(mid):
            report.add(mid, "registry", f"id {mid!r} does not match {ID_RE.pattern}")
        if entry["kind"] not in KINDS:
            report.add(mid, "registry", f"kind {entry['kind']!r} is not one of {list(KINDS)}")
        onnx_file = folder / str(entry["onnx"])
        if not onnx_file.is_file():
            report.add(mid, "registry", f"names {entry['onnx']}, which is not in {folder}")
        elif entry["sha256"] != sha256_bytes(onnx_file.read_bytes()):
            report.add(mid, "sha256", f"registry sha256 {entry['sha256']} != {onnx_file.name}'s")


def check_dir(folder: str | Path, allowed_ops: tuple[str, ...]) -> CheckReport:
    """Every ONNX file in ``folder`` against its sidecar, and the registry against the files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    report = CheckReport()
    files = sorted(p for p in folder.glob("*.onnx") if not p.name.endswith(".int8.onnx"))
    if not files:
        report.add(str(folder), "onnx", "no .onnx files")
    for p in files:
        check_model_file(p, report, allowed_ops)
    check_registry(folder, report)
    return report
