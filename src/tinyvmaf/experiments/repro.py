"""``dvc repro`` with independent stages at once: each stage still reproduced by DVC itself.

DVC 3.67 reproduces a pipeline one stage at a time (``dvc repro`` has no
``--jobs``), so on a two-core box the three students' ``train`` stages, each
one single-threaded process (``train.threads: 1``, the setting that gives the
same bits on any CPU), leave a core idle for minutes.  This scheduler keeps
DVC's semantics and only adds the ordering:

* every stage is reproduced by ``dvc --wait-for-lock repro --single-item
  STAGE``, so what happens to it (skipped as unchanged, restored from the
  run-cache, run) and what lands in ``dvc.lock`` and the cache is decided by
  DVC exactly as in ``dvc repro``;
* a stage starts once every stage upstream of it has succeeded, at most
  ``jobs`` at once, the stage with the most work downstream of it first (ties:
  the order of ``dvc.yaml``);
* DVC releases its repo lock while a stage's command runs
  (``dvc/stage/run.py``: ``unlocked_repo``) and takes it again for the checks
  and the commit; ``--wait-for-lock`` makes those waits queue instead of fail,
  and DVC's per-path rwlock still refuses two stages writing one path;
* on a failure nothing new starts (``--keep-going``: nothing downstream of
  it), the running stages finish and stay committed, and the exit code is
  non-zero with the failed stage named;
* stages new to ``dvc.lock`` are appended by whichever DVC process finishes
  first; at the end they are put in the serial order of the plan, so the file
  comes out the same bytes however the stages interleaved.

What a stage computes never depends on what runs beside it: stage commands are
deterministic per process (pinned threads, seeds from params).
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: what ``dvc repro`` says about a stage → the outcome reported for it
OUTCOMES: tuple[tuple[str, str], ...] = (
    ("is cached - skipping run", "restored"),
    ("didn't change, skipping", "unchanged"),
    ("Running stage", "ran"),
    ("Verifying data sources", "verified"),
)
LOCK_FILE = "dvc.lock"
TAIL = 20  # a failed stage's last lines, repeated in the summary


class ReproError(RuntimeError):
    """A stage failed (named, with its exit code and last lines), or the targets are unknown."""


@dataclass(frozen=True)
class Plan:
    """The stages to reproduce: their DVC addresses, what each waits for and what waits on it."""

    order: tuple[str, ...]  # a serial order (topological; ties in dvc.yaml order)
    upstream: dict[str, frozenset[str]]  # stage -> the stages it depends on (within the plan)
    downstream: dict[str, frozenset[str]]  # stage -> every plan stage that depends on it, directly or not

    def ready(self, done: set[str], started: set[str], blocked: set[str]) -> list[str]:
        """Stages whose upstream all succeeded and that have not started, most stages downstream first."""
        rank = {name: i for i, name in enumerate(self.order)}
        ready = [s for s in self.order if s not in started and s not in blocked and self.upstream[s] <= done]
        return sorted(ready, key=lambda s: (-len(self.downstream[s]), rank[s]))


def make_plan(root: Path, targets: Sequence[str] = ()) -> Plan:
    """The plan of ``dvc repro [TARGETS]`` in ``root``: the targets (default: every stage of its
    dvc.yaml) and every stage upstream of them, data sources (``data.dvc``) included."""
    import networkx as nx
    from dvc.repo import Repo

    # Stage addresses and targets are relative to the working directory, as for `dvc repro` run in root.
    with contextlib.chdir(root), Repo(".") as repo:
        graph = repo.index.graph  # edges: stage -> a stage it depends on
        defined = {stage: i for i, stage in enumerate(repo.index.stages)}
        if targets:
            chosen = []
            for target in targets:
                try:
                    chosen += repo.stage.collect(target)
                except Exception as exc:  # noqa: BLE001 - DVC raises several kinds for a bad target
                    raise ReproError(f"{target!r}: not a stage of {Path(root).resolve() / 'dvc.yaml'} ({exc})") from exc
        else:
            chosen = [s for s in repo.index.stages if s.dvcfile.path.endswith("dvc.yaml")]
        nodes = set(chosen)
        for stage in chosen:
            nodes |= nx.descendants(graph, stage)
        sub = graph.subgraph(nodes)
        name = {s: s.addressing for s in nodes}
        forward = sub.reverse(copy=True)  # edges: stage -> a stage that depends on it
        order = tuple(
            name[s] for s in nx.lexicographical_topological_sort(forward, key=lambda s: defined.get(s, len(defined)))
        )
        upstream = {name[s]: frozenset(name[d] for d in sub.successors(s)) for s in nodes}
        downstream = {name[s]: frozenset(name[a] for a in nx.ancestors(sub, s)) for s in nodes}
    return Plan(order=order, upstream=upstream, downstream=downstream)


@dataclass
class StageRun:
    """One stage's ``dvc repro --single-item`` process and what it said."""

    stage: str
    proc: subprocess.Popen
    started: float
    lines: list[str] = field(default_factory=list)
    outcome: str = "done"

    def note(self, line: str) -> None:
        self.lines.append(line)
        del self.lines[:-TAIL]
        for needle, outcome in OUTCOMES:
            if needle in line:
                self.outcome = outcome


@dataclass
class ReproResult:
    outcomes: dict[str, str] = field(default_factory=dict)  # succeeded stage -> ran/unchanged/..., in finishing order
    failed: dict[str, int] = field(default_factory=dict)  # stage -> exit code
    skipped: list[str] = field(default_factory=list)  # never started: after a failure (-k: downstream of one)
    seconds: dict[str, float] = field(default_factory=dict)
    tails: dict[str, list[str]] = field(default_factory=dict)  # a failed stage's last lines

    @property
    def succeeded(self) -> list[str]:
        """The stages that succeeded, in the order they finished."""
        return list(self.outcomes)


def dvc_executable() -> str:
    """The ``dvc`` beside this Python (the project's venv) when there is one, else the one on ``$PATH``."""
    beside = Path(sys.executable).with_name("dvc")
    return os.fspath(beside) if beside.exists() else "dvc"


def _dvc_command(stage: str, *, force: bool, pull: bool, allow_missing: bool) -> list[str]:
    cmd = [dvc_executable(), "--wait-for-lock", "repro", "--single-item"]
    cmd += ["--force"] if force else []
    cmd += ["--pull"] if pull else []
    cmd += ["--allow-missing"] if allow_missing else []
    return [*cmd, stage]


def reproduce(
    root: Path,
    targets: Sequence[str] = (),
    *,
    jobs: int,
    force: bool = False,
    pull: bool = False,
    allow_missing: bool = False,
    keep_going: bool = False,
    echo: Callable[[str], None] | None = None,
) -> ReproResult:
    """Reproduce ``targets`` (default: the whole pipeline) in ``root``, ``jobs`` stages at once."""
    if jobs < 1:
        raise ReproError(f"jobs must be at least 1, got {jobs}")
    echo = echo or echo_line
    root = Path(root)
    plan = make_plan(root, targets)
    before = _lock_keys(root)
    res = ReproResult()
    done: set[str] = set()
    started: set[str] = set()
    blocked: set[str] = set()
    running: dict[str, StageRun] = {}
    events: queue.Queue[tuple[str, int]] = queue.Queue()
    say = threading.Lock()
    stopping = False

    def pump(run: StageRun) -> None:
        assert run.proc.stdout is not None
        for raw in run.proc.stdout:
            line = raw.rstrip("\n")
            run.note(line)
            if line.strip():
                with say:
                    echo(f"[{run.stage}] {line}")
        events.put((run.stage, run.proc.wait()))

    def launch(stage: str) -> None:
        cmd = _dvc_command(stage, force=force, pull=pull, allow_missing=allow_missing)
        proc = subprocess.Popen(
            cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, errors="replace"
        )
        run = StageRun(stage, proc, time.monotonic())
        running[stage] = run
        started.add(stage)
        threading.Thread(target=pump, args=(run,), daemon=True).start()

    try:
        while True:
            if not stopping:
                for stage in plan.ready(done, started, blocked)[: max(0, jobs - len(running))]:
                    launch(stage)
            if not running:
                break
            stage, code = events.get()
            run = running.pop(stage)
            res.seconds[stage] = time.monotonic() - run.started
            if code == 0:
                done.add(stage)
                res.outcomes[stage] = run.outcome
                with say:
                    echo(f"[{stage}] {run.outcome} ({res.seconds[stage]:.0f} s)")
                continue
            res.failed[stage] = code
            res.tails[stage] = list(run.lines)
            with say:
                echo(f"[{stage}] FAILED (exit {code}, {res.seconds[stage]:.0f} s)")
            if keep_going:
                blocked |= plan.downstream[stage]
            else:
                stopping = True
    except BaseException:
        for run in running.values():  # an interrupt: stop what runs, DVC keeps what it committed
            run.proc.terminate()
        for run in running.values():
            try:
                run.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                run.proc.kill()
        raise
    res.skipped = [s for s in plan.order if s not in started]
    _settle_lock_order(root, before, plan.order)
    return res


def _lock_keys(root: Path) -> list[str] | None:
    """The stage entries of ``dvc.lock`` in file order (None: no lock file yet)."""
    from dvc.utils.serialize import load_yaml

    path = root / LOCK_FILE
    if not path.exists():
        return None
    return list((load_yaml(os.fspath(path)) or {}).get("stages", {}))


def _settle_lock_order(root: Path, before: list[str] | None, order: Iterable[str]) -> None:
    """Entries that existed keep their place; new ones follow in the plan's serial order.

    DVC appends a new stage's entry when that stage finishes, which with stages
    at once depends on timing; this makes the file's bytes independent of it.
    Written with DVC's own YAML round-trip under DVC's repo lock.
    """
    after = _lock_keys(root)
    if after is None:
        return
    known = before or []
    rank = {name: i for i, name in enumerate(order)}
    new = sorted((k for k in after if k not in known), key=lambda k: rank.get(k, len(rank)))
    wanted = [k for k in known if k in after] + new
    if wanted == after:
        return
    from dvc.repo import Repo
    from dvc.utils.serialize import modify_yaml

    with (
        Repo(os.fspath(root), _wait_for_lock=True) as repo,
        repo.lock,
        modify_yaml(os.fspath(root / LOCK_FILE)) as data,
    ):
        stages = data["stages"]
        entries = [(k, stages[k]) for k in wanted]
        for k in list(stages):
            del stages[k]
        for k, v in entries:
            stages[k] = v


def default_jobs() -> int:
    """One more than the cores this process may use (its affinity, not the machine's count).

    make's classic ``-j N+1``: a stage spends part of its time in DVC's hashing,
    locking and commits or in one-core phases, and one more stage keeps the cores
    busy then.  Measured on two cores (fresh clone, ``make run``): 3 stages at once
    finish the three students well before 2 do, which leave one training alone at
    the end on one core.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores) + 1


def summary(res: ReproResult) -> str:
    """What ran, what DVC skipped or restored, and what failed, in a few lines."""
    by: dict[str, list[str]] = {}
    for stage, outcome in res.outcomes.items():
        by.setdefault(outcome, []).append(stage)
    parts = [f"{k}: {', '.join(v)}" for k, v in sorted(by.items())]
    lines = [f"repro: {len(res.succeeded)} stage(s) ok ({'; '.join(parts) or 'none'})"]
    for stage, code in res.failed.items():
        lines.append(f"repro: stage {stage!r} failed (exit {code}); its last lines:")
        lines += [f"  | {line}" for line in res.tails.get(stage, [])]
    if res.skipped:
        lines.append(f"repro: not started after the failure: {', '.join(res.skipped)}")
    return "\n".join(lines)


def echo_line(line: str) -> None:
    """Print a line at once: the stages' lines interleave in real time."""
    print(line, flush=True)
