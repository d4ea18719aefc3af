"""Row 3: what DVC costs around the work — a no-op ``dvc repro``, and restoring a pipeline from the run-cache.

On a project copy (the demo sources at a few frames each, or with ``--full``
the whole demo corpus and the default config): a full ``dvc repro`` from
empty caches; then ``dvc repro`` with nothing changed (target ≤ 3 s,
reported as 3 s / its time); then ``dvc push --run-cache`` to a local
remote and, in a fresh clone with empty caches, ``dvc repro --pull``, which
restores every stage without running one (target ≤ 10 % of the full run,
reported as full / restore ≥ 10).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, Row, timed_run

sys.path.insert(0, str(REPO / "tests"))


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def pipeline_rows(*, full: bool) -> list[Row]:
    from servers import FAST_CONF, make_team_project, render_corpus

    with tempfile.TemporaryDirectory(prefix="tinyvmaf-bench-pipe-") as tmp:
        root = Path(tmp)
        if full:
            corpus, conf, label = REPO / "data", {}, "demo corpus, default config"
        else:
            corpus = render_corpus(root / "corpus" / "data", frames=12)
            conf, label = FAST_CONF, "test corpus (9 pairs), fast config"
        a = make_team_project(root / "A", corpus, conf=conf or None) if not full else _full_project(root / "A")
        cache = {"TINYVMAF_CACHE_DIR": str(root / "extract-cache")}
        full_s, _ = timed_run(["dvc", "repro"], cwd=a, extra_env=cache)
        git("add", "-A", cwd=a)
        git("commit", "-q", "-m", "results", cwd=a)
        noop = [timed_run(["dvc", "repro"], cwd=a, extra_env=cache)[0] for _ in range(3)]
        remote = root / "remote"
        remote.mkdir()
        timed_run(["dvc", "remote", "add", "-d", "--local", "team", str(remote)], cwd=a)
        timed_run(["dvc", "push", "-q", "--run-cache"], cwd=a)
        b = root / "B"
        git("clone", "-q", "-b", "base", str(a), str(b), cwd=root)
        timed_run(["dvc", "remote", "add", "-d", "--local", "team", str(remote)], cwd=b)
        restore_s, _ = timed_run(["dvc", "repro", "--pull"], cwd=b, extra_env={"TINYVMAF_CACHE_DIR": str(root / "c2")})
    noop_s = statistics.median(noop)
    return [
        Row("dvc repro, nothing changed", "3 s / its time", 3.0 / noop_s, ">= 1", noop_s <= 3.0,
            {"seconds": [round(t, 2) for t in noop], "project": label}),
        Row("restore from the run-cache", "full run / `dvc repro --pull` in a fresh clone", full_s / restore_s,
            ">= 10", full_s / restore_s >= 10, {"full_s": round(full_s, 1), "restore_s": round(restore_s, 2),
                                                 "project": label}),
        Row("full dvc repro", f"seconds ({label})", full_s, "report", None, {}),
    ]  # fmt: skip


def _full_project(dest: Path) -> Path:
    """The repository itself (demo corpus, default config) copied without its results."""
    import shutil

    from project import copy_project, run

    copy_project(dest)
    (dest / "dvc.lock").unlink(missing_ok=True)
    shutil.copytree(REPO / "data", dest / "data")
    run(["dvc", "add", "-q", "data"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "demo"], dest)
    run(["git", "branch", "base"], dest)
    return dest
