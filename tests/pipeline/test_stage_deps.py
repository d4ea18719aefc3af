"""Every stage depends on every piece of code its command imports (so no edit leaves a stale output).

The command of a stage is ``tinyvmaf NAME ...``: the walk starts at the
dispatcher (``tinyvmaf/cli.py``) and the command's module, follows every
``import`` inside ``tinyvmaf`` transitively — module level and inside
functions alike (the code imports lazily), but not ``if TYPE_CHECKING:``
blocks, which never run — and includes each package's ``__init__.py``.
Each file found must be a dep of the stage, or lie under a folder that is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tinyvmaf.cli import COMMANDS

from kit import REPO

SRC = REPO / "src"


def module_file(name: str) -> Path | None:
    base = SRC / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def imports_of(name: str) -> set[str]:
    """The ``tinyvmaf`` modules ``name`` imports (absolute names), TYPE_CHECKING blocks excluded."""
    path = module_file(name)
    assert path is not None, name
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "tinyvmaf"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "tinyvmaf":
                continue
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names if module_file(f"{mod}.{a.name}")}
    return out


def closure(start: list[str]) -> set[Path]:
    """Files of every module reachable from ``start``, with the ``__init__.py`` of each enclosing package."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c imports a and a.b
        todo += sorted(imports_of(name))
    files = {module_file(n) for n in seen}
    return {f.relative_to(REPO) for f in files if f is not None}


def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def command_modules(cmd: str) -> list[str]:
    words = cmd.split()
    assert words[0] == "tinyvmaf", cmd
    return ["tinyvmaf.cli", COMMANDS[words[1]][0]]


def uncovered(files: set[Path], deps: list[str]) -> list[str]:
    code_deps = [Path(d) for d in deps if not d.startswith("$")]
    return sorted(str(f) for f in files if not any(f == d or d in f.parents for d in code_deps))


@pytest.mark.parametrize("stage", list(stages()))
def test_stage_deps_cover_what_its_command_imports(stage: str) -> None:
    spec = stages()[stage]
    files = closure(command_modules(spec["cmd"]))
    assert Path("src/tinyvmaf/cli.py") in files and len(files) > 5
    missing = uncovered(files, spec["deps"])
    assert not missing, f"stage {stage!r} imports code it does not depend on: {missing}"


def test_removing_a_dep_is_caught() -> None:
    spec = stages()["extract"]
    files = closure(command_modules(spec["cmd"]))
    deps = [d for d in spec["deps"] if d != "src/tinyvmaf/media"]
    assert uncovered(files, deps) == [
        "src/tinyvmaf/media/__init__.py",
        "src/tinyvmaf/media/ffmpeg.py",
        "src/tinyvmaf/media/video.py",
    ]
    # and a lazy import inside a function counts too: the gate's parity check loads the checkpoint lazily
    gate = stages()["gate"]
    deps = [d for d in gate["deps"] if d != "src/tinyvmaf/student"]
    assert "src/tinyvmaf/student/checkpoint.py" in uncovered(closure(command_modules(gate["cmd"])), deps)


def test_bytecode_is_not_a_dep() -> None:
    assert {"__pycache__/", "*.pyc"} <= set((REPO / ".dvcignore").read_text().split())
