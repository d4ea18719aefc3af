"""The corpus manifest: one row per (reference, distorted) pair.

Schema (CSV, paths relative to the manifest's folder):

=========== ========================================================
key         unique pair id (also the cache and row id downstream)
content     source-content id; every distortion of one source shares it
ref, dist   media paths: raw YUV (``.yuv``) or anything FFmpeg decodes
width,      geometry of the raw YUV files (required when ref or dist is
height,     raw; ``dist_width/dist_height/dist_pix_fmt`` override them
pix_fmt     for a raw distorted clip at another geometry)
mos, dmos   optional subjective scores (empty where unknown)
=========== ========================================================
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from ..media.video import Video

REQUIRED = ("key", "content", "ref", "dist")
OPTIONAL = ("width", "height", "pix_fmt", "dist_width", "dist_height", "dist_pix_fmt", "mos", "dmos")
COLUMNS = REQUIRED + OPTIONAL


class ManifestError(ValueError):
    """The manifest is malformed; the message names the file, row and column."""


@dataclass(frozen=True)
class Pair:
    key: str
    content: str
    ref: Video
    dist: Video
    mos: float | None = None
    dmos: float | None = None


def _num(value: str | None, cast, where: str):
    if value is None or value.strip() == "":
        return None
    try:
        out = cast(value)
    except ValueError:
        raise ManifestError(f"{where}: {value!r} is not a number") from None
    if isinstance(out, float) and not math.isfinite(out):
        raise ManifestError(f"{where}: {value!r} is not finite")
    if cast is int and out <= 0:
        raise ManifestError(f"{where}: {value!r} must be a positive size")
    return out


def read_manifest(path: str | Path) -> list[Pair]:
    """Parse and validate a manifest; every error names the file, line and column at fault."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    root = path.parent
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ManifestError(
                f"{path}:{reader.line_num} (header): missing column(s) {missing}; required: {list(REQUIRED)}"
            )
        pairs: list[Pair] = []
        seen: dict[str, int] = {}
        for row in reader:
            line = reader.line_num  # physical line: DictReader skips blank lines, quoted fields span lines
            where = f"{path}:{line}"
            for col in REQUIRED:
                if not (row.get(col) or "").strip():
                    raise ManifestError(f"{where} column {col!r}: empty")
            key = row["key"].strip()
            if key in seen:
                raise ManifestError(f"{where} column 'key': duplicate key {key!r} (first on line {seen[key]})")
            seen[key] = line
            w = _num(row.get("width"), int, f"{where} column 'width'")
            h = _num(row.get("height"), int, f"{where} column 'height'")
            fmt = (row.get("pix_fmt") or "").strip() or None
            dw = _num(row.get("dist_width"), int, f"{where} column 'dist_width'") or w
            dh = _num(row.get("dist_height"), int, f"{where} column 'dist_height'") or h
            dfmt = (row.get("dist_pix_fmt") or "").strip() or fmt
            pairs.append(
                Pair(
                    key=key,
                    content=row["content"].strip(),
                    ref=Video(root / row["ref"].strip(), w, h, fmt),
                    dist=Video(root / row["dist"].strip(), dw, dh, dfmt),
                    mos=_num(row.get("mos"), float, f"{where} column 'mos'"),
                    dmos=_num(row.get("dmos"), float, f"{where} column 'dmos'"),
                )
            )
    if not pairs:
        raise ManifestError(f"{path}: no pairs")
    return pairs


def missing_media(pairs: list[Pair]) -> list[str]:
    """Every media path the manifest names that is not on disk (deduplicated, in order)."""
    seen: dict[str, None] = {}
    for p in pairs:
        for v in (p.ref, p.dist):
            if not v.path.is_file():
                seen.setdefault(str(v.path), None)
    return list(seen)


def write_manifest(rows: list[dict], path: str | Path) -> None:
    """Write rows (dicts over :data:`COLUMNS`) atomically, keeping only the columns that are used."""
    from ..common.atomic import atomic_write_text

    used = [c for c in COLUMNS if c in REQUIRED or any(r.get(c) not in (None, "") for r in rows)]
    lines = [",".join(used)]
    for r in rows:
        lines.append(",".join(_csv_cell(r.get(c)) for c in used))
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if any(ch in text for ch in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
