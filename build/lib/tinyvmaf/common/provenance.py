"""Where a result came from: the git commit, the corpus version, a file's hash.

The ONNX metadata, the model card and the MLflow tags all record these;
one implementation keeps them saying the same thing.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Mapping
from pathlib import Path

UNKNOWN = "unknown"
_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks (corpus files can be large)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def git_commit(cwd: str | Path = ".", *, mark_dirty: bool = False) -> str:
    """``HEAD``'s sha (``unknown`` outside a git checkout).

    ``mark_dirty`` appends ``-dirty`` when tracked files have changes: right
    for an MLflow run started by hand, wrong for an exported model, because
    ``dvc repro`` itself dirties the tree (``dvc.lock``) and every pipeline
    export would look dirty.
    """
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        if not sha:
            return UNKNOWN
        if not mark_dirty:
            return sha
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return f"{sha}-dirty" if dirty else sha


def data_version(dvc_file: str | Path = "data.dvc") -> str:
    """The md5 DVC recorded for the corpus in ``data.dvc`` (``unknown`` when absent or unreadable)."""
    import yaml

    path = Path(dvc_file)
    if not path.is_file():
        return UNKNOWN
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return UNKNOWN
    outs = doc.get("outs") if isinstance(doc, Mapping) else None
    md5 = next((o.get("md5") for o in outs or [] if isinstance(o, Mapping) and o.get("md5")), None)
    return str(md5) if md5 else UNKNOWN
