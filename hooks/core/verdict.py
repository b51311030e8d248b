"""The verdict's types and wording; :mod:`hooks.gate.decision` decides it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from hooks.core.results import Status, SuiteResult

__all__ = ["Verdict", "VerdictStatus", "describe_failures", "plural", "tally"]


class VerdictStatus(StrEnum):
    """The two statuses CodeDeploy accepts from a hook, and, for Amazon ECS hooks only, a
    gate that goes on at ECS's next call (``IN_PROGRESS``)."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    IN_PROGRESS = "InProgress"


@dataclass(frozen=True)
class Verdict:
    status: VerdictStatus
    reason: str
    failed: tuple[str, ...] = ()  # "suite / check: message", one per failed check or suite

    @property
    def succeeded(self) -> bool:
        return self.status is VerdictStatus.SUCCEEDED

    @classmethod
    def failure(cls, reason: str, failed: Sequence[str] = ()) -> Verdict:
        return cls(VerdictStatus.FAILED, reason, tuple(failed))


def describe_failures(suite: SuiteResult) -> list[str]:
    """One line per failed check (or the suite's own error)."""
    if suite.error is not None:
        return [f"{suite.name}: {suite.error}"]
    lines = [f"{suite.name} / {c.name}: {c.message or c.status.value}" for c in suite.failed_checks]
    nothing_passed = not any(c.status is Status.PASSED for c in suite.checks)
    if nothing_passed and (not lines or len(lines) <= suite.policy.failure_limit):
        # the reason it failed, where the failures alone (if any) were tolerated
        ran = plural(len(suite.checks), "check")
        lines.append(f"{suite.name}: no check passed ({ran}, none passed)")
    return lines


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def tally(suites: Sequence[SuiteResult]) -> str:
    """``N suites, M checks: P passed, F failed, E errors, T timed out, S skipped`` — the
    statuses of the JSON report's ``counts``, each named when there is one; they add up to M.
    Failures a policy tolerates are said after them: ``(T tolerated by policy)``."""
    checks = [c for s in suites for c in s.checks]
    counts = {status: sum(c.status is status for c in checks) for status in Status}
    tolerated = sum(len(s.failed_checks) for s in suites if s.passed or s.policy.report_only)
    parts = [f"{counts[Status.PASSED]} passed"]
    for status, (one, many) in _NOT_PASSED.items():
        if counts[status]:
            parts.append(f"{counts[status]} {one if counts[status] == 1 else many}")
    if tolerated:
        parts[-1] += f" ({tolerated} tolerated by policy)"
    if counts[Status.SKIPPED]:
        parts.append(f"{counts[Status.SKIPPED]} skipped")
    return f"{plural(len(suites), 'suite')}, {plural(len(checks), 'check')}: {', '.join(parts)}"


#: How each status that is neither passed nor skipped is counted in words (one, many).
_NOT_PASSED = {
    Status.FAILED: ("failed", "failed"),
    Status.ERROR: ("error", "errors"),
    Status.TIMED_OUT: ("timed out", "timed out"),
}
