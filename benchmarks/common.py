"""What every benchmark row shares: side-by-side rounds, medians, peak memory, the results file.

The machine is shared and noisy, so no row reports an absolute time as its
verdict: each alternates its subject (A) and its baseline (B) over several
rounds, A B A B ..., and reports the median of the per-round ratios, with
the times beside it for context.  A row's ``target`` is a ratio.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results.json"
BIN = Path(sys.executable).parent


@dataclass
class Row:
    """One line of the Performance table."""

    name: str
    measure: str  # what the ratio is, in words
    value: float  # the median ratio (or the figure, for rows that report one)
    target: str  # e.g. ">= 0.95", or "report"
    met: bool | None  # None: nothing to meet
    details: dict[str, Any] = field(default_factory=dict)


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    out = dict(os.environ)
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    out.pop("MLFLOW_TRACKING_URI", None)
    out.update(extra or {})
    return out


def timed_run(cmd: list[str], *, cwd: Path | None = None, extra_env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS in KiB of a command (the largest of it and every descendant it waited for).

    ``os.wait4`` reports the rusage of exactly this child tree, unlike
    ``RUSAGE_CHILDREN``, which accumulates over the whole benchmark process.
    """
    import tempfile

    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env(extra_env), stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code
        if code != 0:
            log.seek(0)
            raise RuntimeError(f"{cmd} failed ({code}):\n{log.read().decode(errors='replace')[-3000:]}")
    return seconds, int(usage.ru_maxrss)


def side_by_side(a: Callable[[], float], b: Callable[[], float], rounds: int, *, warmup: bool = True) -> dict:
    """Alternate A and B ``rounds`` times (after one unmeasured round of each); median of B/A and the times.

    Each callable returns its own seconds.  The ratio is B's time over A's:
    above 1 means A is faster (throughput of A relative to B).
    """
    if warmup:
        a()
        b()
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(a())
        tb.append(b())
    ratios = [y / x for x, y in zip(ta, tb, strict=True)]
    return {
        "ratio": statistics.median(ratios),
        "ratios": [round(r, 4) for r in ratios],
        "a_seconds": [round(t, 3) for t in ta],
        "b_seconds": [round(t, 3) for t in tb],
    }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_results(rows: list[Row], *, full: bool, seconds: float) -> Path:
    doc = {
        "date": time.strftime("%Y-%m-%d"),
        "mode": "full" if full else "quick",
        "seconds": round(seconds, 1),
        "machine": machine(),
        "rows": [asdict(r) for r in rows],
    }
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    return RESULTS


def table(rows: list[Row]) -> str:
    lines = ["| benchmark | measure | value | target | met |", "|---|---|---|---|---|"]
    for r in rows:
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.name} | {r.measure} | {r.value:.3g} | {r.target} | {met} |")
    return "\n".join(lines)
