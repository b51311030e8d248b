"""The verdict: a pure function of suite results and their policies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from hooks.results import SuiteResult


class VerdictStatus(StrEnum):
    """The only two statuses CodeDeploy accepts from a hook."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


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


def decide(suites: Sequence[SuiteResult], *, deadline_reached: bool = False) -> Verdict:
    """Succeeded only when every planned suite passed, within its ``failure_limit``.

    ``report_only`` suites are described but never fail the gate. An empty plan fails:
    a gate that tested nothing must not let a release through. Reaching the deadline fails
    whatever else happened, because the checks still running proved nothing.
    """
    if not suites:
        return Verdict.failure("no suites ran: nothing was tested")
    failed: list[str] = []
    blocking: list[str] = []
    for suite in suites:
        failed.extend(describe_failures(suite))
        if not suite.passed and not suite.policy.report_only:
            blocking.append(suite.name)
    if deadline_reached:
        return Verdict.failure("deadline reached before all checks finished", failed)
    if blocking:
        return Verdict.failure(f"suites failed: {', '.join(blocking)}", failed)
    total = sum(len(s.checks) for s in suites)
    note = f" ({len(failed)} failures tolerated by policy)" if failed else ""
    return Verdict(
        VerdictStatus.SUCCEEDED, f"{len(suites)} suites, {total} checks passed{note}", tuple(failed)
    )
