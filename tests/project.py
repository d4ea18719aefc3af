"""Throw-away copies of this project for end-to-end tests (DVC, experiments, remotes).

A copy holds the working tree's files (tracked and not-ignored, so tests see
uncommitted work too), its own git repository and DVC cache, a small demo
corpus, and params composed from ``conf/`` with the test's overrides.  It
never touches the real checkout, its cache or its ``mlflow.db``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: A small corpus: 3 contents (one per split at the default fractions), 3 rungs, 12 frames.
SMALL_SOURCES = ("testsrc2", "mandelbrot", "coffee_pan")
SMALL_HRCS = ("x264_crf18", "x264_crf38", "down144_x264_crf30")
#: Training overrides that keep a full `dvc repro` to well under a minute.
FAST_TRAIN = ("train.epochs=3", "sample.count=20000", "sample.val_count=2000")


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for CLI calls: the venv first on PATH, no inherited MLflow/cache targets."""
    out = dict(os.environ)
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    for var in ("MLFLOW_TRACKING_URI", "DVC_CACHE_DIR"):
        out.pop(var, None)
    out.update(extra or {})
    return out


def run(cmd: list[str] | str, cwd: Path, extra_env: dict[str, str] | None = None, timeout: int = 600) -> str:
    """Run a command in its own process group, bounded by ``timeout``; fail with its output if it fails.

    On a timeout (or any interruption) the whole group is killed, not only the
    child: ``dvc`` and ``tinyvmaf`` start processes of their own (queue workers,
    training workers, FFmpeg) that must not outlive the test.  Returns stdout+stderr.
    """
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env(extra_env),
        shell=isinstance(cmd, str),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        kill_group(proc)
        raise
    if proc.returncode != 0:
        raise AssertionError(f"{cmd} failed in {cwd} (exit {proc.returncode}):\n{out}\n{err}")
    return out + err


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(cmd: list[str], cwd: Path | None, log: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """A background command in its own process group (:func:`kill_group` reaches all it starts), output in ``log``.

    SIGINT gets its default disposition, as a terminal's foreground job has it: a shell without job
    control starts background jobs with SIGINT ignored, and Python keeps an inherited SIG_IGN (no
    KeyboardInterrupt ever), so a Ctrl-C test run under ``make test &`` would otherwise test nothing.
    """
    with log.open("w") as fh:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env(extra_env),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )


def finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    """Wait with a deadline; on timeout kill the whole group; fail with the log on a timeout or a non-zero exit."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AssertionError(f"{proc.args} timed out after {timeout} s:\n{log.read_text()[-3000:]}") from None
    assert proc.returncode == 0, log.read_text()[-3000:]


def kill_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group of ``proc``, SIGKILL it after ``grace`` seconds, reap the child."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue


def _project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    keep = []
    for raw in listed:
        name = raw.decode()
        if name and name != "data.dvc" and (REPO / name).is_file():
            keep.append(name)
    return keep


def copy_project(dest: Path) -> Path:
    """Copy the working tree (without data.dvc: each copy tracks its own corpus) and ``git init`` it."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in _project_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "config", "user.email", "tests@tinyvmaf"], dest)
    run(["git", "config", "user.name", "tinyvmaf tests"], dest)
    return dest


def make_project(
    dest: Path,
    *,
    sources: tuple[str, ...] = SMALL_SOURCES,
    hrcs: tuple[str, ...] = SMALL_HRCS,
    frames: int = 12,
    overrides: tuple[str, ...] = FAST_TRAIN,
    corpus_cache: Path | None = None,
) -> Path:
    """A committed project copy with a small demo corpus tracked by ``data.dvc``.

    ``corpus_cache`` (a folder) keeps one rendered corpus across tests: it is
    deterministic, so copying it is the same as rendering it again.
    """
    copy_project(dest)
    data = dest / "data"
    if corpus_cache is not None and (corpus_cache / "manifest.csv").is_file():
        shutil.copytree(corpus_cache, data)
    else:
        cmd = ["tinyvmaf", "corpus", "demo", "data", "--frames", str(frames), "--no-progress"]
        for s in sources:
            cmd += ["--source", s]
        for h in hrcs:
            cmd += ["--hrc", h]
        run(cmd, dest)
        if corpus_cache is not None:
            shutil.copytree(data, corpus_cache, dirs_exist_ok=True)
    run(["tinyvmaf", "params", *overrides], dest)
    run(["dvc", "add", "-q", "data"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "test project"], dest)
    return dest


def journal_lines(cache_dir: Path) -> list[str]:
    """Real libvmaf runs recorded in a cache folder's journal."""
    path = cache_dir / "journal.log"
    return path.read_text().splitlines() if path.is_file() else []


def expand_stages(dvc_yaml: dict, params: dict) -> dict[str, dict]:
    """``dvc.yaml``'s stages as DVC runs them: ``foreach`` expanded (``name@key``), ``${key}``/``${item.X}``
    substituted; ``${paths...}`` left for the caller (or :func:`resolved`)."""
    import re

    out: dict[str, dict] = {}
    for name, spec in dvc_yaml["stages"].items():
        if "foreach" not in spec:
            out[name] = spec
            continue
        over = spec["foreach"]
        m = re.fullmatch(r"\$\{(\w+)\}", over)
        assert m, f"{name}: foreach {over!r} is not a ${{params key}}"
        for key, item in params[m[1]].items():

            def sub(v, key=key, item=item):
                if isinstance(v, str):
                    v = v.replace("${key}", key)
                    return re.sub(r"\$\{item\.(\w+)\}", lambda g: str(item[g[1]]), v)
                if isinstance(v, list):
                    return [sub(x) for x in v]
                if isinstance(v, dict):
                    return {sub(k): sub(x) for k, x in v.items()}
                return v

            out[f"{name}@{key}"] = sub(spec["do"])
    return out


def resolved(dvc_yaml: dict, params: dict) -> dict[str, dict]:
    """:func:`expand_stages` with every ``${...}`` resolved from ``params`` (entries ``{PATH: opts}`` keep opts)."""
    import re

    from omegaconf import OmegaConf

    def key(k: str) -> str:  # OmegaConf resolves values, not keys: ${a.b} in a key by hand
        def look(m: re.Match) -> str:
            v = params
            for part in m[1].split("."):
                v = v[part]
            return str(v)

        return re.sub(r"\$\{([\w.]+)\}", look, k)

    def keys(v):
        if isinstance(v, dict):
            return {key(k): keys(x) for k, x in v.items()}
        if isinstance(v, list):
            return [keys(x) for x in v]
        return v

    stages = keys(expand_stages(dvc_yaml, params))
    cfg = OmegaConf.create({**params, "_stages": stages})
    return OmegaConf.to_container(cfg, resolve=True)["_stages"]
