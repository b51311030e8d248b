"""The verdict: a pure function of suite results and their policies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from hooks.results import Status, SuiteResult


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
    if not lines and not suite.passed:
        lines.append(f"{suite.name}: no check passed ({len(suite.checks)} ran, none passed)")
    return lines


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def tally(suites: Sequence[SuiteResult]) -> str:
    """``N suites, M checks: P passed, F failed, S skipped`` — the parts add up to M."""
    checks = [c for s in suites for c in s.checks]
    passed = sum(c.status is Status.PASSED for c in checks)
    skipped = sum(c.status is Status.SKIPPED for c in checks)
    failed = len(checks) - passed - skipped
    tolerated = sum(len(s.failed_checks) for s in suites if s.passed or s.policy.report_only)
    parts = [f"{passed} passed"]
    if failed:
        note = f" ({tolerated} tolerated by policy)" if tolerated else ""
        parts.append(f"{failed} failed{note}")
    if skipped:
        parts.append(f"{skipped} skipped")
    return f"{plural(len(suites), 'suite')}, {plural(len(checks), 'check')}: {', '.join(parts)}"


def decide(suites: Sequence[SuiteResult], *, deadline_reached: bool = False) -> Verdict:
    """Succeeded only when every planned suite passed, within its ``failure_limit``.

    ``report_only`` suites are described but never fail the gate, and never pass it on
    their own: a gate whose every suite is report-only tested nothing it may block on.
    An empty plan fails: a gate that tested nothing must not let a release through.
    Reaching the deadline fails whatever else happened, because the checks still running
    proved nothing.
    """
    if not suites:
        return Verdict.failure("no suites ran: nothing was tested")
    failed: list[str] = []
    blocking: list[str] = []
    for suite in suites:
        failed.extend(describe_failures(suite))
        if not suite.passed and not suite.policy.report_only:
            blocking.append(suite.name)
    counts = tally(suites)
    if deadline_reached:
        return Verdict.failure(f"deadline reached before all checks finished ({counts})", failed)
    if blocking:
        return Verdict.failure(f"suites failed: {', '.join(blocking)} ({counts})", failed)
    if all(s.policy.report_only for s in suites):
        return Verdict.failure(
            f"every planned suite is report-only: nothing blocking was tested ({counts})", failed
        )
    return Verdict(VerdictStatus.SUCCEEDED, counts, tuple(failed))
