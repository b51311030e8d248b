"""Results as plain data: suite -> checks -> status, duration, message, evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "EVIDENCE_BODY_LIMIT",
    "CheckResult",
    "Evidence",
    "Policy",
    "Status",
    "SuiteResult",
    "cut",
]

#: Response bodies kept as evidence are cut to this many characters.
EVIDENCE_BODY_LIMIT = 500


class Status(StrEnum):
    """Outcome of one check. Only ``passed`` counts as passed.

    ``timed_out``: the check could not be judged within this run's deadline — cut by it, or
    known ahead not to fit (a metrics window that closes after it). An ECS gate calls again.
    """

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"

    @property
    def is_failure(self) -> bool:
        return self in (Status.FAILED, Status.ERROR, Status.TIMED_OUT)


def cut(text: str, limit: int = EVIDENCE_BODY_LIMIT) -> str:
    """Shorten ``text`` to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


@dataclass(frozen=True)
class Evidence:
    """What a check saw: the request line, the response status and the start of the body."""

    request: str | None = None
    status: int | None = None
    body: str | None = None
    attempts: int = 1


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome. ``failures`` lists every failed assertion with the actual value."""

    name: str
    status: Status
    duration: float = 0.0
    message: str = ""
    failures: tuple[str, ...] = ()
    evidence: Evidence | None = None
    #: Where the check is written, ``file:line`` (a YAML check, a pytest test).
    location: str | None = None
    #: Machine-readable figures for a later step (a load part's histogram, merged with the
    #: other parts' before its thresholds are judged); not part of the report.
    data: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        # Written out (not dataclasses.asdict, which deep-copies): once per check result.
        evidence = self.evidence
        return {
            "name": self.name,
            "status": self.status.value,
            "duration": round(self.duration, 4),
            "message": self.message,
            "failures": list(self.failures),
            "evidence": None
            if evidence is None
            else {
                "request": evidence.request,
                "status": evidence.status,
                "body": evidence.body,
                "attempts": evidence.attempts,
            },
            "location": self.location,
            **({"data": dict(self.data)} if self.data is not None else {}),
        }


@dataclass(frozen=True)
class Policy:
    """How a suite's failures count toward the verdict."""

    report_only: bool = False
    failure_limit: int = 0


@dataclass(frozen=True)
class SuiteResult:
    """One suite's outcome. ``error`` is set when the suite could not be loaded or run."""

    name: str
    kind: str
    checks: tuple[CheckResult, ...] = ()
    error: str | None = None
    policy: Policy = field(default_factory=Policy)
    duration: float = 0.0
    source: str | None = None
    #: False when the suite could not be loaded (its file, plugin or plan entry is wrong):
    #: a configuration error, not a failed test.
    loaded: bool = True

    @property
    def failed_checks(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status.is_failure)

    @property
    def passed(self) -> bool:
        """True when the suite does not, by itself, fail the gate (ignoring ``report_only``):
        at least one check passed, and its failures are within ``failure_limit``.

        Nothing passed, nothing earned: an empty, all-skipped or all-failed suite fails
        whatever its ``failure_limit``, which tolerates failures among checks that ran.
        """
        if self.error is not None:
            return False
        if not any(c.status is Status.PASSED for c in self.checks):
            return False
        return len(self.failed_checks) <= self.policy.failure_limit

    @property
    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in Status}
        for check in self.checks:
            counts[check.status.value] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "passed": self.passed,
            "loaded": self.loaded,
            "error": self.error,
            "policy": asdict(self.policy),
            "duration": round(self.duration, 4),
            "checks": [c.to_dict() for c in self.checks],
        }
