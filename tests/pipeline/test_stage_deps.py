"""Every stage depends on everything its command reads: the code it imports and the files it opens.

**Code.** The command of a stage is ``tinyvmaf NAME ...``: the walk starts at the
dispatcher (``tinyvmaf/cli.py``) and the command's module, follows every
``import`` inside ``tinyvmaf`` transitively — module level and inside
functions alike (the code imports lazily), but not ``if TYPE_CHECKING:``
blocks, which never run — and includes each package's ``__init__.py``.
Each file found must be a dep of the stage, or lie under a folder that is.

**Files.** Each stage command of the shared pipeline (``servers.pipeline``) runs
again, in a copy, under the audit hook of ``tinyvmaf.common.audit``
(``$TINYVMAF_AUDIT_OPENS``): every file it opens for reading and every folder it
lists inside the project must be a dep, under a dep folder, one of its own outs,
``params.yaml`` (read per key: the stage's ``params:``), or git's and DVC's own.
A ``X.dvc`` file counts as read from ``X`` (DVC refuses a ``.dvc`` file as a dep;
its md5 is the hash of the dep ``X``).  The hook sees Python-level opens only
(see its docstring): parquet and ONNX Runtime reads are native, and the train
stage's spawned workers are not recorded.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from omegaconf import OmegaConf

from tinyvmaf.cli import COMMANDS
from tinyvmaf.common.audit import ENV as AUDIT_ENV

from kit import REPO
from project import expand_stages, run

if TYPE_CHECKING:
    from servers import Pipeline

pytest_plugins = ["servers"]

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


def _params(stage_reads: dict | None = None) -> dict:
    """The repository's params; with ``stage_reads``, only the students the audited copy had (FAST_CONF: v061)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    if stage_reads is not None:
        keys = {name.partition("@")[2] for name in stage_reads if "@" in name}
        params["students"] = {k: v for k, v in params["students"].items() if k in keys}
    return params


def stages() -> dict[str, dict]:
    """The repository's stages as DVC runs them (``foreach`` expanded over params.yaml's students)."""
    return expand_stages(yaml.safe_load((REPO / "dvc.yaml").read_text()), _params())


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
    gate = stages()["gate@v061"]
    deps = [d for d in gate["deps"] if d != "src/tinyvmaf/student"]
    assert "src/tinyvmaf/student/checkpoint.py" in uncovered(closure(command_modules(gate["cmd"])), deps)


def test_bytecode_is_not_a_dep() -> None:
    assert {"__pycache__/", "*.pyc"} <= set((REPO / ".dvcignore").read_text().split())


# --------------------------------------------------------------------------- files read


def resolved_stages(dvc_yaml: dict, params: dict) -> dict[str, dict]:
    """``dvc.yaml``'s stages with every ``${...}`` resolved from ``params.yaml``, as DVC resolves them.

    An entry ``{PATH: options}`` becomes ``PATH`` first (OmegaConf resolves values, not keys).
    """
    stages = {
        name: {k: [_path(e) for e in v] if k in ("deps", "outs", "metrics", "plots") else v for k, v in spec.items()}
        for name, spec in expand_stages(dvc_yaml, params).items()
    }
    cfg = OmegaConf.create({**params, "_stages": stages})
    return OmegaConf.to_container(cfg, resolve=True)["_stages"]


def _path(entry: str | dict) -> str:
    return next(iter(entry)) if isinstance(entry, dict) else entry


def _paths(entries: list | None) -> list[str]:
    return [_path(e) for e in entries or []]


def outs_of(spec: dict) -> list[str]:
    return [p for kind in ("outs", "metrics", "plots") for p in _paths(spec.get(kind))]


def _under(rel: str, base: str) -> bool:
    base = base.rstrip("/")
    return rel == base or rel.startswith(base + "/")


def unread_deps(reads: set[str], spec: dict) -> list[str]:
    """The paths in ``reads`` (project-relative) that no dep of the stage ``spec`` covers."""
    deps, outs = _paths(spec.get("deps")), outs_of(spec)
    missing = []
    for rel in sorted(reads):
        target = rel[: -len(".dvc")] if rel.endswith(".dvc") else rel
        if rel == "params.yaml" and spec.get("params"):
            continue
        if rel.split("/")[0] in (".git", ".dvc") or rel in (".gitignore", ".dvcignore"):
            continue
        if any(_under(target, d) for d in deps) or any(_under(rel, o) for o in outs):
            continue
        missing.append(rel)
    return missing


def _project_reads(log: Path, root: Path) -> set[str]:
    found: set[str] = set()
    for line in log.read_text().splitlines() if log.exists() else []:
        _, _, name = line.partition(" ")
        path = Path(name)
        if path.is_relative_to(root) and path != root:
            found.add(path.relative_to(root).as_posix())
    return found


@pytest.fixture(scope="module")
def stage_reads(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Each stage command of the shared pipeline, run again in a copy under the audit hook: {stage: paths read}."""
    root = tmp_path_factory.mktemp("audit")
    proj = root / "A"
    shutil.copytree(pipeline.path, proj, symlinks=True)
    cache = root / "extract-cache"
    shutil.copytree(pipeline.cache_dir, cache)
    proj = proj.resolve()
    reads: dict[str, set[str]] = {}
    params = yaml.safe_load((proj / "params.yaml").read_text())
    for name, spec in expand_stages(yaml.safe_load((proj / "dvc.yaml").read_text()), params).items():
        log = root / f"{name}.log"
        extra = {AUDIT_ENV: str(log), "TINYVMAF_CACHE_DIR": str(cache), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/m.db"}
        run(spec["cmd"], proj, extra, timeout=600)
        reads[name] = _project_reads(log, proj)
    return reads


@pytest.mark.slow
def test_stage_deps_cover_the_files_its_command_reads(stage_reads: dict[str, set[str]]) -> None:
    stages = resolved_stages(yaml.safe_load((REPO / "dvc.yaml").read_text()), _params(stage_reads))
    assert set(stage_reads) == set(stages)
    # the hook saw what each stage reads through Python (so an empty record cannot pass)
    assert "data/manifest.csv" in stage_reads["extract"]
    assert "data.dvc" in stage_reads["export@v061"] and "metrics/golden.json" in stage_reads["gate@v061"]
    assert "metrics/vmaf_v0.6.1/gate.json" in stage_reads["registry"]
    problems = {name: unread_deps(stage_reads[name], spec) for name, spec in stages.items()}
    problems = {name: missing for name, missing in problems.items() if missing}
    assert not problems, f"stages that read files they do not depend on: {problems}"


@pytest.mark.slow
def test_a_missing_file_dep_is_caught(stage_reads: dict[str, set[str]]) -> None:
    """A copy of dvc.yaml without export's dep on the corpus (whose data.dvc md5 export records) fails."""
    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    doc["stages"]["export"]["do"]["deps"].remove("${paths.data}")
    stages = resolved_stages(doc, _params(stage_reads))
    assert unread_deps(stage_reads["export@v061"], stages["export@v061"]) == ["data.dvc"]


def test_dvc_yaml_names_the_files_student_paths_names() -> None:
    """dvc.yaml spells each student's files with ``${item.*}``; they must be StudentPaths' (what the code writes)."""
    from tinyvmaf.config import load_params

    params = load_params(REPO / "params.yaml")
    stages = resolved_stages(yaml.safe_load((REPO / "dvc.yaml").read_text()), _params())
    for key in params.students:
        p = params.student(key).paths
        expect = {
            "label": {p.labels},
            "sample": {p.samples, p.sample_metrics},
            "train": {p.ckpt, p.arch_ckpts, p.train_metrics, p.train_plots},
            "export": {p.onnx, p.onnx.removesuffix(".onnx") + ".json", p.exact_onnx, p.exact_onnx[:-5] + ".json"},
            "eval": {p.eval_metrics, p.figures, p.model_card},
            "gate": {p.gate_metrics, p.gate_report},
        }
        for stage, files in expect.items():
            assert set(outs_of(stages[f"{stage}@{key}"])) == files, (stage, key)
    assert outs_of(stages["registry"]) == [params.paths.registry]
