"""Record every file a ``tinyvmaf`` command opens for reading (for the stage-deps test, never in normal use).

With ``TINYVMAF_AUDIT_OPENS=LOG`` in the environment, :func:`record_opens`
(called first thing in ``tinyvmaf.cli.main``) adds a Python audit hook
(``sys.addaudithook``) that appends one line per distinct path to ``LOG``:
``read PATH`` for a file opened for reading (the ``open`` event: built-in
``open``, ``io.open_code``, ``os.open``) and ``list PATH`` for a folder listed
(``os.listdir``, ``os.scandir``; pathlib's ``glob``/``iterdir`` go through
them). Paths are absolute. ``tests/pipeline/test_stage_deps.py`` runs every
stage command so and checks each path under the project against the stage's
deps in ``dvc.yaml``.

What it cannot see: files opened by native code (pyarrow's parquet reader,
ONNX Runtime's model loader, FFmpeg) and anything read by processes that do not
start through ``tinyvmaf.cli.main`` (the train stage's spawned workers).
A path that does not exist when opened is not recorded (nothing was read; see
the hook for ``dir_fd``). Lines are written with ``os.write`` on a descriptor opened before the hook is
added (no recursion) in append mode, so several processes may share one log.
"""

from __future__ import annotations

import os
import sys

ENV = "TINYVMAF_AUDIT_OPENS"

_READ_FLAGS = (os.O_RDONLY, os.O_RDWR)


def _is_read(mode: object, flags: object) -> bool:
    if isinstance(mode, str):
        return "r" in mode
    if isinstance(flags, int):
        # O_CREAT | O_EXCL creates the file (mkstemp: an atomic write's temporary), it reads nothing
        fresh = flags & os.O_CREAT and flags & os.O_EXCL
        return not fresh and (flags & os.O_ACCMODE) in _READ_FLAGS
    return False


def record_opens() -> bool:
    """Install the hook when ``$TINYVMAF_AUDIT_OPENS`` names a log file; return whether it did."""
    log = os.environ.get(ENV)
    if not log:
        return False
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    seen: set[tuple[str, str]] = set()

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            kind = "read" if _is_read(mode, flags) else None
        elif event in ("os.listdir", "os.scandir"):
            path, kind = (args[0] if args else "."), "list"
        else:
            return
        if kind is None or isinstance(path, int) or path is None:
            return
        try:
            name = os.path.abspath(os.fsdecode(path))
        except (TypeError, ValueError):
            return
        if (kind, name) in seen or "\n" in name:
            return
        # Only what exists is read. The event has no dir_fd: a name relative to one (shutil.rmtree's
        # walk) resolves against the working directory here, to a path that is usually not there.
        if not os.path.exists(name):
            return
        seen.add((kind, name))
        os.write(fd, f"{kind} {name}\n".encode(errors="surrogateescape"))

    sys.addaudithook(hook)
    return True
