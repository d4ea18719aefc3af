"""Import a Netflix-format dataset file (``NFLX_dataset_public.py``, ``..._raw.py``) as a manifest.

Netflix ships its subjective datasets as Python modules of assignments and
its own trainer *executes* them.  A dataset file is data from elsewhere, so
here it is parsed with :mod:`ast` and only evaluated where it is plainly
data: literals, names assigned earlier in the module, and string ``+``
concatenation (``ref_dir + '/BigBuckBunny_25fps.yuv'``).  Any other
statement or expression (an ``import``, a call, an attribute, an f-string)
is an error that names the file and line; nothing in the file ever runs.

What is read (the format of Netflix's ``vmaf/routine.py:read_dataset``):

* module level: ``yuv_fmt``, ``width``, ``height`` (the raw geometry),
  ``ref_videos`` (``content_id``, ``content_name``, ``path``) and
  ``dis_videos`` (``asset_id``, ``content_id``, ``path`` and a score:
  ``dmos``, ``mos``, or ``os``, a list of raw opinion scores whose mean is
  the MOS);
* per entry, ``width`` / ``height`` / ``yuv_fmt`` override the module's: on
  a reference they set the pair's geometry, on a distorted entry the
  distorted clip's (a smaller one is upscaled by the extractor);
* ``yuv_fmt = 'notyuv'`` means the file is a container FFmpeg decodes.

Where the media are: the ``--ref-dir`` / ``--dis-dir`` given on the command
line replace the names ``ref_dir`` / ``dis_dir`` wherever a path uses them.
A path written as a bare string (``NFLX_dataset_public.py`` has absolute
paths from Netflix's own machines) is relocated by its file name: under
``--ref-dir`` for a reference, under ``--dis-dir`` for a distorted entry,
except that a distorted entry naming a reference's path (the dataset scores
each reference against itself) gets that reference.  Paths built from
other names (``yuv420_dir + '/x.yuv'``) keep the file's value, relative to
the dataset file's folder.
"""

from __future__ import annotations

import ast
import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from .manifest import write_manifest

#: Netflix ``yuv_fmt`` → FFmpeg ``pix_fmt`` of the raw files (``None``: a container, not raw).
YUV_FMT_TO_PIX_FMT: dict[str, str | None] = {
    **{
        f"yuv{sub}p{depth}": f"yuv{sub}p{depth}"
        for sub in ("420", "422", "444")
        for depth in ("", "10le", "12le", "16le")
    },
    "notyuv": None,
}

#: Names on the module level that the command line's directories replace.
DIR_NAMES = ("ref_dir", "dis_dir")


class DatasetError(ValueError):
    """The dataset file is not plain data, is inconsistent, or names media that are not on disk."""


@dataclass(frozen=True)
class _Entry:
    """One evaluated dict of ``ref_videos`` / ``dis_videos`` with where it was written."""

    data: dict[str, Any]
    line: int
    path_expr: ast.expr | None


class _Evaluator:
    """Evaluate the restricted expression language of dataset files (never ``eval``)."""

    def __init__(self, filename: Path, overrides: dict[str, str]) -> None:
        self.filename = filename
        self.overrides = overrides
        self.names: dict[str, Any] = {}

    def error(self, node: ast.AST, what: str) -> DatasetError:
        line = getattr(node, "lineno", 0)
        return DatasetError(
            f"{self.filename}:{line}: {what}; a dataset file may hold only assignments of literals, "
            "module-level names and string '+' (it is parsed, never executed)"
        )

    def eval(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str | int | float | bool) or node.value is None:
                return node.value
            raise self.error(node, f"constant {node.value!r} is not allowed")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = self.eval(node.operand)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.error(node, "a sign applies only to a number")
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.List | ast.Tuple):
            items = [self.eval(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict):
            out: dict[Any, Any] = {}
            for k, v in zip(node.keys, node.values, strict=True):
                if k is None:
                    raise self.error(node, "'**' in a dict is not allowed")
                key = self.eval(k)
                if isinstance(key, list | dict):
                    raise self.error(k, "a dict key must be a string or a number")
                out[key] = self.eval(v)
            return out
        if isinstance(node, ast.Name):
            if node.id in self.overrides:
                return self.overrides[node.id]
            if node.id not in self.names:
                raise self.error(node, f"name {node.id!r} is not assigned earlier in the file")
            return self.names[node.id]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.eval(node.left), self.eval(node.right)
            if not (isinstance(left, str) and isinstance(right, str)):
                raise self.error(node, "'+' is allowed only between strings")
            return left + right
        raise self.error(node, f"{type(node).__name__} expression is not allowed")

    def run(self, module: ast.Module) -> dict[str, ast.expr]:
        """Evaluate every statement in order; returns the last value node of each name."""
        nodes: dict[str, ast.expr] = {}
        for i, stmt in enumerate(module.body):
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and i == 0:
                continue  # a module docstring
            if isinstance(stmt, ast.Pass):
                continue
            if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
                targets = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
                value_node = stmt.value
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                targets, value_node = [stmt.target.id], stmt.value
            else:
                raise self.error(stmt, f"{type(stmt).__name__} statement is not allowed")
            value = self.eval(value_node)
            for name in targets:
                self.names[name] = value
                nodes[name] = value_node
        return nodes


def parse_dataset(dataset: Path, overrides: dict[str, str] | None = None) -> tuple[dict[str, Any], dict[str, ast.expr]]:
    """Module-level names of a dataset file and their value nodes, without executing it."""
    try:
        source = dataset.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{dataset}: dataset file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{dataset}: cannot read the dataset file: {exc}") from None
    try:
        module = ast.parse(source, filename=str(dataset))
    except SyntaxError as exc:
        raise DatasetError(f"{dataset}:{exc.lineno}: not valid Python syntax: {exc.msg}") from None
    ev = _Evaluator(dataset, dict(overrides or {}))
    nodes = ev.run(module)
    return ev.names, nodes


def _entries(dataset: Path, names: dict[str, Any], nodes: dict[str, ast.expr], var: str) -> list[_Entry]:
    """The dicts of ``var`` with the line each one starts on (for error messages)."""
    if var not in names:
        raise DatasetError(f"{dataset}: no {var!r} list (is this a Netflix-format dataset file?)")
    value, node = names[var], nodes[var]
    if not isinstance(value, list | tuple):
        raise DatasetError(f"{dataset}:{node.lineno}: {var!r} must be a list of dicts")
    elt_nodes: list[ast.expr | None] = (
        list(node.elts) if isinstance(node, ast.List | ast.Tuple) else [None] * len(value)
    )
    out = []
    for item, elt in zip(value, elt_nodes, strict=True):
        line = elt.lineno if elt is not None else node.lineno
        if not isinstance(item, dict):
            raise DatasetError(f"{dataset}:{line}: each entry of {var!r} must be a dict")
        path_expr = None
        if isinstance(elt, ast.Dict):
            for k, v in zip(elt.keys, elt.values, strict=True):
                if isinstance(k, ast.Constant) and k.value == "path":
                    path_expr = v
        out.append(_Entry(item, line, path_expr))
    return out


def _field(dataset: Path, entry: _Entry, var: str, key: str, kinds: type | tuple[type, ...]) -> Any:
    if key not in entry.data:
        raise DatasetError(f"{dataset}:{entry.line}: {var} entry has no {key!r}")
    value = entry.data[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise DatasetError(f"{dataset}:{entry.line}: {var} entry {key!r} = {value!r} has the wrong type")
    return value


def _score(dataset: Path, entry: _Entry, key: str) -> float | None:
    if key not in entry.data or entry.data[key] is None:
        return None
    value = entry.data[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DatasetError(f"{dataset}:{entry.line}: {key!r} = {value!r} is not a finite number")
    return float(value)


def _mean_opinion(dataset: Path, entry: _Entry) -> float | None:
    """MOS from ``os``: the mean of the raw opinion scores (a list, or a dict subject → score)."""
    raw = entry.data.get("os")
    if raw is None:
        return None
    votes = list(raw.values()) if isinstance(raw, dict) else raw
    if not isinstance(votes, list | tuple):
        raise DatasetError(f"{dataset}:{entry.line}: 'os' must be a list of opinion scores")
    scores = [v for v in votes if v is not None]
    bad = [v for v in scores if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)]
    if bad:
        raise DatasetError(f"{dataset}:{entry.line}: 'os' holds non-numeric score(s) {bad[:3]}")
    if not scores:
        return None
    return math.fsum(scores) / len(scores)


def _pix_fmt(dataset: Path, line: int, yuv_fmt: Any) -> str | None:
    if yuv_fmt not in YUV_FMT_TO_PIX_FMT:
        raise DatasetError(
            f"{dataset}:{line}: yuv_fmt {yuv_fmt!r} is not supported; known: {', '.join(YUV_FMT_TO_PIX_FMT)}"
        )
    return YUV_FMT_TO_PIX_FMT[yuv_fmt]


def _dim(dataset: Path, line: int, key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DatasetError(f"{dataset}:{line}: {key} = {value!r} must be a positive integer")
    return value


def _basename(path: str) -> str:
    # Dataset files come from POSIX and Windows machines alike.
    return PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name


def _uses_name(expr: ast.expr | None) -> bool:
    return expr is not None and any(isinstance(n, ast.Name) for n in ast.walk(expr))


def import_nflx(dataset: Path, ref_dir: Path, dis_dir: Path, out: Path) -> int:
    """Write ``out`` (a manifest) from a Netflix-format dataset file; returns the number of pairs.

    Every distorted entry becomes a pair keyed ``{content_name}_{asset_id}``
    (the asset id is unique within a dataset, the content name keeps keys
    readable).  Media that are not on disk are reported together, in one
    :class:`DatasetError`, so a user fixes them in one pass.
    """
    dataset, out = Path(dataset), Path(out)
    ref_root, dis_root = Path(ref_dir).resolve(), Path(dis_dir).resolve()
    names, nodes = parse_dataset(dataset, {"ref_dir": str(ref_root), "dis_dir": str(dis_root)})
    base = dataset.resolve().parent

    def line_of(name: str) -> int:
        return nodes[name].lineno if name in nodes else 0

    def resolve(entry: _Entry, value: str, default_root: Path) -> Path:
        if _uses_name(entry.path_expr):
            path = Path(value)
            return path if path.is_absolute() else base / path
        return default_root / _basename(value)

    module_fmt = names.get("yuv_fmt")
    module_pix = _pix_fmt(dataset, line_of("yuv_fmt"), module_fmt) if module_fmt is not None else None
    module_w = _dim(dataset, line_of("width"), "width", names.get("width"))
    module_h = _dim(dataset, line_of("height"), "height", names.get("height"))

    refs: dict[Any, tuple[_Entry, Path, str]] = {}
    ref_by_literal: dict[str, Path] = {}
    for e in _entries(dataset, names, nodes, "ref_videos"):
        cid = _field(dataset, e, "ref_videos", "content_id", (int, str))
        name = _field(dataset, e, "ref_videos", "content_name", (str, int))
        raw_path = _field(dataset, e, "ref_videos", "path", str)
        if cid in refs:
            raise DatasetError(f"{dataset}:{e.line}: duplicate content_id {cid!r} (first on line {refs[cid][0].line})")
        path = resolve(e, raw_path, ref_root)
        refs[cid] = (e, path, str(name))
        ref_by_literal[raw_path] = path

    rows: list[dict[str, Any]] = []
    seen_assets: dict[Any, int] = {}
    media: dict[Path, str] = {}
    keys: dict[str, int] = {}
    for e in _entries(dataset, names, nodes, "dis_videos"):
        aid = _field(dataset, e, "dis_videos", "asset_id", (int, str))
        cid = _field(dataset, e, "dis_videos", "content_id", (int, str))
        raw_path = _field(dataset, e, "dis_videos", "path", str)
        if aid in seen_assets:
            raise DatasetError(f"{dataset}:{e.line}: duplicate asset_id {aid!r} (first on line {seen_assets[aid]})")
        seen_assets[aid] = e.line
        if cid not in refs:
            raise DatasetError(f"{dataset}:{e.line}: content_id {cid!r} has no entry in ref_videos")
        ref_entry, ref_path, content = refs[cid]
        if not _uses_name(e.path_expr) and raw_path in ref_by_literal:
            dist_path = ref_by_literal[raw_path]
        else:
            dist_path = resolve(e, raw_path, dis_root)

        # Geometry: the module's, overridden by the reference entry for the
        # pair and by the distorted entry for the distorted clip alone.
        ref_fmt = ref_entry.data.get("yuv_fmt", module_fmt)
        if ref_fmt is None:
            raise DatasetError(f"{dataset}:{ref_entry.line}: no yuv_fmt (neither on the module level nor per entry)")
        pix = _pix_fmt(dataset, ref_entry.line, ref_fmt) if "yuv_fmt" in ref_entry.data else module_pix
        w = _dim(dataset, ref_entry.line, "width", ref_entry.data.get("width", module_w))
        h = _dim(dataset, ref_entry.line, "height", ref_entry.data.get("height", module_h))
        dpix = _pix_fmt(dataset, e.line, e.data["yuv_fmt"]) if "yuv_fmt" in e.data else pix
        dw = _dim(dataset, e.line, "width", e.data.get("width", w))
        dh = _dim(dataset, e.line, "height", e.data.get("height", h))
        for p, ww, hh, line in ((pix, w, h, ref_entry.line), (dpix, dw, dh, e.line)):
            if p is not None and (ww is None or hh is None):
                raise DatasetError(f"{dataset}:{line}: raw {p} video needs width and height (module level or entry)")

        key = f"{content}_{aid}"
        if key in keys:
            raise DatasetError(f"{dataset}:{e.line}: pair key {key!r} repeats the entry on line {keys[key]}")
        keys[key] = e.line
        media.setdefault(ref_path, f"ref_videos entry on line {ref_entry.line}")
        media.setdefault(dist_path, f"dis_videos entry on line {e.line}")
        row: dict[str, Any] = {
            "key": key,
            "content": content,
            "ref": ref_path,
            "dist": dist_path,
            "width": w if pix else None,
            "height": h if pix else None,
            "pix_fmt": pix,
            "mos": _score(dataset, e, "mos") if "mos" in e.data else _mean_opinion(dataset, e),
            "dmos": _score(dataset, e, "dmos"),
        }
        if dpix and (dpix, dw, dh) != (pix, w, h):
            row.update(dist_width=dw, dist_height=dh, dist_pix_fmt=dpix)
        rows.append(row)

    if not rows:
        raise DatasetError(f"{dataset}: dis_videos is empty")
    missing = [(p, where) for p, where in media.items() if not p.is_file()]
    if missing:
        listing = "\n".join(f"  {p}  ({where})" for p, where in missing)
        raise DatasetError(
            f"{dataset}: {len(missing)} media file(s) not found (--ref-dir {ref_root}, --dis-dir {dis_root}):\n"
            f"{listing}"
        )

    folder = out.resolve().parent
    for row in rows:
        for col in ("ref", "dist"):
            row[col] = Path(os.path.relpath(row[col], folder)).as_posix()
    write_manifest(rows, out)
    return len(rows)
