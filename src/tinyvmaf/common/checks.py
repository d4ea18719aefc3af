"""Pass/fail records shared by the golden stage and the gate: a criterion, a check, a report.

A *criterion* is one measured value against one threshold; a *check* is a
named group of criteria (or the error that stopped it from measuring); a
*report* is the checks of one run.  Both ``metrics/golden.json`` and
``metrics/gate.json`` are a report's :meth:`Report.as_dict`, so DVC
metrics, the markdown reports and the exit codes all read one structure.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

OPS = (">=", "<=", "==")


@dataclass
class Criterion:
    """One comparison of a measured value with its threshold."""

    name: str
    value: float | int | None
    threshold: float | int
    op: str  # ">=", "<=", "=="
    info: str = ""

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"criterion {self.name}: op must be one of {OPS}, got {self.op!r}")

    @property
    def passed(self) -> bool:
        """Fails closed: a value or threshold that is None, NaN or infinite fails whatever the comparison.

        (NaN compares False both ways, so ``nan > tol`` would pass a "fail if above" test, and an
        infinite bound would pass anything.)  NumPy scalars count as the numbers they hold.
        """
        v, t = self.value, self.threshold
        if not (finite(v) and finite(t)):
            return False
        return {">=": v >= t, "<=": v <= t, "==": v == t}[self.op]  # type: ignore[operator]

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"value": json_number(self.value), "threshold": self.threshold, "op": self.op}
        d["pass"] = self.passed
        if self.info:
            d["info"] = self.info
        return d

    def describe(self) -> str:
        return f"{self.name} = {fmt(self.value)} (needs {self.op} {fmt(self.threshold)})"


@dataclass
class CheckResult:
    """The outcome of one check: its criteria, free-form details, or the error that stopped it."""

    name: str
    criteria: list[Criterion] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def passed(self) -> bool:
        # A check that measured nothing cannot vouch for anything.
        return self.error is None and bool(self.criteria) and all(c.passed for c in self.criteria)

    def failures(self) -> list[str]:
        if self.error is not None:
            return [f"error: {self.error}"]
        if not self.criteria:
            return ["no criterion was evaluated"]
        return [c.describe() for c in self.criteria if not c.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pass": self.passed,
            "criteria": {c.name: c.as_dict() for c in self.criteria},
            "details": self.details,
            "error": self.error,
        }


@dataclass
class Report:
    """The checks of one run (the gate's, or the golden stage's) and what they were run on."""

    subject: dict[str, Any]
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pass": self.passed,
            "failed": self.failed,
            **self.subject,
            "checks": {c.name: c.as_dict() for c in self.checks},
        }

    def table(self) -> list[str]:
        """The markdown table of every criterion (errors as rows of their own)."""
        lines = ["| check | criterion | value | threshold | pass |", "|---|---|---|---|---|"]
        for c in self.checks:
            if c.error is not None:
                lines.append(f"| {c.name} | (error) | {c.error.replace('|', '/')} | | FAIL |")
            for cr in c.criteria:
                ok = "pass" if cr.passed else "**FAIL**"
                lines.append(f"| {c.name} | {cr.name} | {fmt(cr.value)} | {cr.op} {fmt(cr.threshold)} | {ok} |")
        return lines

    def print_summary(self, stream: Any) -> None:
        for check in self.checks:
            print(f"{check.name:<9} {'pass' if check.passed else 'FAIL'}", file=stream)
            for line in check.failures() if not check.passed else []:
                print(f"          {line}", file=stream)

    def verdict(self, stage: str, outputs: list[Any], note: str = "") -> int:
        """Print each check, then one line (stdout when passed, stderr naming the failed checks); the exit code."""
        import sys

        self.print_summary(sys.stdout)
        files = " and ".join(str(o) for o in outputs)
        if self.passed:
            print(f"{stage} passed{note}; wrote {files}")
            return 0
        print(f"{stage} failed: {', '.join(self.failed)} (see {files})", file=sys.stderr)
        return 1


def guarded(name: str, fn: Callable[[], CheckResult]) -> CheckResult:
    """Run a check; one that cannot run fails (named) instead of stopping the others."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - any failure to measure is a failed check
        log.debug("check %s raised:\n%s", name, traceback.format_exc())
        return CheckResult(name, error=f"{type(exc).__name__}: {exc}")


def finite(v: Any) -> bool:
    """A real, finite number (``bool`` is not one: a criterion compares measurements, not flags)."""
    if v is None or isinstance(v, bool):
        return False
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def json_number(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN/inf; None reads as "not measured" and fails its criterion
    return v


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
