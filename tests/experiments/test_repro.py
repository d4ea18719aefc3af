"""`tinyvmaf repro`: independent stages at once, each still reproduced by real DVC (tinyvmaf.experiments.repro).

A throw-away git + DVC repository with a diamond a -> (b1, b2) -> c and a lone
stage d.  b1 and b2 meet at a rendezvous when asked to: each marks that it
started and waits for the other's mark, which only two stages running at the
same time can get past.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tinyvmaf.experiments.repro import make_plan, reproduce, summary

from project import env

STAGE_PY = """\
import os, sys, time
from pathlib import Path

name, out, *ins = sys.argv[1:]
marks = Path(os.environ["REPRO_MARKS"])
(marks / f"{name}.started").write_text("")
other = {"b1": "b2", "b2": "b1"}.get(name)
if other and os.environ.get("REPRO_RENDEZVOUS"):
    deadline = time.monotonic() + 60
    while not (marks / f"{other}.started").exists():
        if time.monotonic() > deadline:
            sys.exit(f"{name}: {other} never started beside me")
        time.sleep(0.05)
time.sleep(float(os.environ.get(f"REPRO_DELAY_{name}", "0")))
if os.environ.get("REPRO_FAIL") == name:
    sys.exit(3)
Path(out).write_text(name + ":" + "|".join(Path(i).read_text() for i in ins))
"""


def _stage(name: str, deps: list[str]) -> dict:
    return {
        "cmd": " ".join([sys.executable, "stage.py", name, f"{name}.txt", *deps]),
        "deps": ["stage.py", *deps],
        "outs": [f"{name}.txt"],
    }


DVC_YAML = {
    "stages": {
        "a": _stage("a", []),
        "b1": _stage("b1", ["a.txt"]),
        "b2": _stage("b2", ["a.txt"]),
        "c": _stage("c", ["b1.txt", "b2.txt"]),
        "d": _stage("d", []),
    }
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env())


def _make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "stage.py").write_text(STAGE_PY)
    (path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    _git(path, "init", "-q")
    subprocess.run([Path(sys.executable).with_name("dvc"), "init", "-q"], cwd=path, check=True, env=env())
    _git(path, "add", "-A")
    _git(path, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "toy pipeline")
    return path


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    monkeypatch.setenv("REPRO_MARKS", str(folder))
    for var in ("REPRO_RENDEZVOUS", "REPRO_FAIL", "REPRO_DELAY_b1", "REPRO_DELAY_b2"):
        monkeypatch.delenv(var, raising=False)
    return folder


def _quiet(lines: list[str]):
    return lines.append


def test_plan_is_dvcs_graph_in_a_serial_order(tmp_path: Path, marks: Path) -> None:
    repo = _make_repo(tmp_path / "r")
    plan = make_plan(repo)
    assert plan.order == ("a", "b1", "b2", "c", "d")
    assert plan.upstream["c"] == {"b1", "b2"} and plan.upstream["b1"] == {"a"} and plan.upstream["d"] == set()
    assert plan.downstream["a"] == {"b1", "b2", "c"} and plan.downstream["d"] == set()
    assert plan.ready(set(), set(), set()) == ["a", "d"]  # the most stages downstream first
    only_c = make_plan(repo, ["c"])
    assert set(only_c.order) == {"a", "b1", "b2", "c"}


def test_independent_stages_run_at_once_and_the_lock_is_the_same_bytes(
    tmp_path: Path, marks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPRO_RENDEZVOUS", "1")  # b1 and b2 fail unless they run side by side
    locks = []
    for first, repo_name in (("b1", "fast_b1"), ("b2", "fast_b2")):
        repo = _make_repo(tmp_path / repo_name)
        for f in marks.iterdir():
            f.unlink()
        slow = "b2" if first == "b1" else "b1"
        monkeypatch.setenv(f"REPRO_DELAY_{slow}", "1.5")  # the other finishes (and writes dvc.lock) first
        monkeypatch.delenv(f"REPRO_DELAY_{first}", raising=False)
        lines: list[str] = []
        res = reproduce(repo, jobs=2, echo=lines.append)
        assert not res.failed, summary(res)
        assert sorted(res.succeeded) == ["a", "b1", "b2", "c", "d"]
        assert set(res.outcomes.values()) == {"ran"}
        assert (repo / "c.txt").read_text() == "c:b1:a:|b2:a:"
        locks.append((repo / "dvc.lock").read_bytes())
        assert list(yaml.safe_load(locks[-1])["stages"]) == ["a", "b1", "b2", "c", "d"]
        assert any(line.startswith("[b1] ") for line in lines)  # each stage's own lines, prefixed
    assert locks[0] == locks[1]

    # The same files as DVC's own serial `dvc repro` (no rendezvous there: one stage at a time).
    monkeypatch.delenv("REPRO_RENDEZVOUS")
    serial = _make_repo(tmp_path / "serial")
    subprocess.run([Path(sys.executable).with_name("dvc"), "repro", "-q"], cwd=serial, check=True, env=dict(os.environ))
    assert yaml.safe_load((serial / "dvc.lock").read_text()) == yaml.safe_load(locks[0])
    assert (serial / "c.txt").read_text() == "c:b1:a:|b2:a:"

    # Nothing changed: DVC skips every stage.
    again = reproduce(tmp_path / "fast_b1", jobs=2, echo=_quiet([]))
    assert set(again.outcomes.values()) == {"unchanged"}


def test_a_failure_is_named_and_the_work_done_stays_committed(
    tmp_path: Path, marks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _make_repo(tmp_path / "r")
    monkeypatch.setenv("REPRO_FAIL", "b2")
    res = reproduce(repo, jobs=1, echo=_quiet([]))
    assert list(res.failed) == ["b2"] and res.failed["b2"] != 0
    assert res.succeeded == ["a", "b1"]
    assert res.skipped == ["c", "d"]  # nothing new starts after a failure
    text = summary(res)
    assert "stage 'b2' failed" in text and "exited with 3" in text  # DVC's own words, in the tail
    assert "not started after the failure: c, d" in text
    assert not (repo / "b2.txt").exists()
    committed = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(committed) == {"a", "b1"}

    monkeypatch.delenv("REPRO_FAIL")
    again = reproduce(repo, jobs=2, echo=_quiet([]))
    assert not again.failed
    assert again.outcomes["a"] == again.outcomes["b1"] == "unchanged"
    assert again.outcomes["b2"] == again.outcomes["c"] == "ran"


def test_keep_going_runs_what_does_not_depend_on_the_failure(
    tmp_path: Path, marks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _make_repo(tmp_path / "r")
    monkeypatch.setenv("REPRO_FAIL", "b2")
    res = reproduce(repo, jobs=1, keep_going=True, echo=_quiet([]))
    assert list(res.failed) == ["b2"]
    assert sorted(res.succeeded) == ["a", "b1", "d"]
    assert res.skipped == ["c"]


def test_cli_dry_run_and_a_bad_target(tmp_path: Path, marks: Path) -> None:
    repo = _make_repo(tmp_path / "r")
    tinyvmaf = shutil.which("tinyvmaf", path=str(Path(sys.executable).parent))
    assert tinyvmaf
    dry = subprocess.run(
        [tinyvmaf, "repro", "--dry", "--repo", str(repo), "c"], capture_output=True, text=True, env=env()
    )
    assert dry.returncode == 0, dry.stderr
    assert [line.split()[0] for line in dry.stdout.splitlines()] == ["a", "b1", "b2", "c"]
    assert not (repo / "a.txt").exists()  # a dry run runs nothing
    bad = subprocess.run([tinyvmaf, "repro", "--repo", str(repo), "nosuch"], capture_output=True, text=True, env=env())
    assert bad.returncode == 1
    assert "'nosuch': not a stage" in bad.stderr
    failing = subprocess.run(
        [tinyvmaf, "repro", "--repo", str(repo), "-j", "2"],
        capture_output=True,
        text=True,
        env=env({"REPRO_FAIL": "b1"}),
    )
    assert failing.returncode == 1
    assert "stage 'b1' failed" in failing.stdout and "exited with 3" in failing.stdout
