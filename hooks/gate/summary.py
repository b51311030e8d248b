"""A run's state and collaborators: what the gate fills in, and what it is given.

:class:`RunSummary` is one invocation's outcome as every reporter reads it; :class:`Runtime`
holds the clients and reporters a run uses (built once per container); :class:`Progress`
says what the work is doing now; :class:`Crash` is what the fail-safe knows of a hook that
ended without reporting.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from hooks.core.lifecycle import HookInvocation
from hooks.core.results import CheckResult, Status
from hooks.core.settings import Settings
from hooks.core.verdict import Verdict

if TYPE_CHECKING:
    from hooks.aws.codedeploy import ReportOutcome, StatusProtocol
    from hooks.aws.discovery import Discovery
    from hooks.core.target import Target
    from hooks.gate.plan import Plan
    from hooks.process.runner import RunResult

__all__ = [
    "WATCH_CAUSE",
    "Clients",
    "Crash",
    "Progress",
    "Reporter",
    "RunSummary",
    "Runtime",
]

log = logging.getLogger(__name__)

#: Failed checks the summary log line lists in full (the evidence bundle has them all).
LOGGED_FAILURES = 50


class Reporter(Protocol):
    """Publishes a finished run (logs, files, console). Its failure never changes anything."""

    def publish(self, summary: RunSummary) -> None: ...


@dataclass
class Progress:
    """What the work is doing now, so a deadline message can name it."""

    stage: str = "starting"
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: The run's supervisor, once started: ended at the deadline with its workers.
    supervisor: Any = None
    #: Keys every line of this invocation carries (request id, cold start), workers' too.
    log_keys: dict[str, Any] = field(default_factory=dict)

    def set(self, stage: str) -> None:
        with self.lock:
            self.stage = stage
        log.debug("stage: %s", stage)


@dataclass
class Clients:
    """What :attr:`Runtime.connect` builds: the report's protocol and discovery."""

    protocol: StatusProtocol
    discovery: Discovery | None
    region: str


@dataclass
class Runtime:
    """A run's collaborators, built once per container (or per command on a laptop).

    Given ``connect`` instead of ``protocol``, the AWS clients are built on first use, or
    ahead of it by :meth:`warm_up` in a background thread: importing boto3 then overlaps
    the suite worker's start instead of preceding it.
    """

    protocol: StatusProtocol | None = None
    discovery: Discovery | None = None
    #: Amazon ECS discovery (:class:`hooks.aws.ecs_discovery.EcsDiscovery`), for ECS hooks.
    ecs_discovery: Any = None
    region: str = "us-east-1"
    env: Mapping[str, str] | None = None
    reporters: Sequence[Reporter] = ()
    on_check: Callable[[Any, CheckResult], None] | None = None
    connect: Callable[[], Clients] | None = None
    #: ``runner: stepfunctions``: builds the Step Functions client (hand-off) and the S3
    #: client (shard results), on first use.
    stepfunctions: Callable[[], Any] | None = None
    s3: Callable[[], Any] | None = None
    #: Builds the EventBridge Scheduler client of the deadline watch (:mod:`hooks.aws.watch`).
    scheduler: Callable[[], Any] | None = None
    _connecting: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _error: BaseException | None = field(default=None, repr=False)
    _warming: bool = field(default=False, repr=False)

    def warm_up(self) -> None:
        """Start building the clients in the background (no-op when built, given or under
        way)."""
        if self.connect is not None and self.protocol is None and not self._warming:
            self._warming = True
            threading.Thread(
                target=self._connect_quietly, name="greenlight-clients", daemon=True
            ).start()

    def _connect_quietly(self) -> None:
        # An error is kept and raised again by ensure(), where the clients are needed.
        with contextlib.suppress(BaseException):
            self.ensure()

    def ensure(self) -> None:
        """Build the clients now if they are not yet (waits for a warm-up under way)."""
        with self._connecting:
            if self.protocol is not None or self.connect is None:
                return
            if self._error is not None:
                raise self._error
            try:
                clients = self.connect()
            except BaseException as exc:
                self._error = exc
                raise
            self.protocol, self.discovery, self.region = (
                clients.protocol,
                clients.discovery,
                clients.region,
            )


@dataclass
class RunSummary:
    invocation: HookInvocation
    verdict: Verdict
    run: RunResult | None = None  # when suites ran
    plan: Plan | None = None  # when it was resolved
    target: Target | None = None  # when it was found
    report: ReportOutcome | None = None
    duration: float = 0.0
    #: The verdict is Failed because of the configuration (settings, plan, suite files).
    configuration_error: bool = False
    #: The deployment's application and group, when known (discovery or settings).
    application: str | None = None
    deployment_group: str | None = None
    #: Seconds from the invocation's start to the report's answer.
    reported_after: float | None = None
    #: Where the evidence bundle was written (``s3://bucket/prefix/``), once it was.
    evidence: str | None = None
    #: The run's settings (None when they could not be read): where reporters publish.
    settings: Settings | None = None
    #: The green targets were not healthy in time (an ECS gate may wait at its next call).
    not_ready: bool = False
    #: ECS only: ``callBackDelay`` and ``hookDetails`` of an ``IN_PROGRESS`` answer.
    continuation: dict[str, Any] | None = None
    #: ``runner: stepfunctions``: the execution that runs the suites and reports (this
    #: invocation does not report).
    handed_off: str | None = None

    def to_dict(self) -> dict[str, Any]:
        suites = self.run.suites if self.run is not None else ()
        counts = {status.value: sum(s.counts[status.value] for s in suites) for status in Status}
        return {
            "verdict": self.verdict.status.value,
            "reason": self.verdict.reason,
            "lifecycle_event": self.invocation.lifecycle_event.value,
            "deployment_id": self.invocation.deployment_id,
            "lifecycle_event_hook_execution_id": self.invocation.execution_id,
            "target": self.target.url if self.target is not None else None,
            "suites": len(suites),
            "checks": sum(counts.values()),
            "counts": counts,
            "failed": list(self.verdict.failed),
            "configuration_error": self.configuration_error,
            "report": self.report.state.value if self.report else None,
            "duration": round(self.duration, 3),
            "application": self.application,
            "deployment_group": self.deployment_group,
            "evidence": self.evidence,
        }

    def failure_details(self, limit: int = LOGGED_FAILURES) -> list[dict[str, Any]]:
        """The first ``limit`` failed checks (or suites that did not load): what failed, its
        first mismatch with the value seen, and the request that saw it."""
        found: list[dict[str, Any]] = []
        for suite in self.run.suites if self.run is not None else ():
            if suite.error is not None:
                found.append({"check": suite.name, "status": "error", "message": suite.error})
            for check in suite.failed_checks:
                if len(found) >= limit:
                    return found
                detail: dict[str, Any] = {
                    "check": f"{suite.name} / {check.name}",
                    "status": check.status.value,
                    "message": (check.failures[0] if check.failures else check.message)[:500],
                }
                if check.evidence is not None and check.evidence.request:
                    seen = check.evidence.status
                    detail["request"] = check.evidence.request + (
                        f" -> HTTP {seen}" if seen is not None else " -> no response"
                    )
                if suite.policy.report_only:
                    detail["report_only"] = True
                found.append(detail)
        return found[:limit]


#: The cause of a crash the deadline watch found (no record of how the hook ended).
WATCH_CAUSE = "was silent past its deadline"


@dataclass(frozen=True)
class Crash:
    """What a destination record says about the hook run that failed."""

    invocation: HookInvocation | None
    function: str
    request_id: str
    cause: str
    detail: str
    #: Why the original event cannot be reported, when it cannot.
    invalid: str = ""

    @property
    def reason(self) -> str:
        if self.cause == WATCH_CAUSE:
            return f"the hook had not reported when its deadline watch fired ({self.detail})"
        subject = "the" if self.cause.startswith("state machine") else "the hook"
        return f"{subject} {self.cause} before it reported ({self.detail})"
