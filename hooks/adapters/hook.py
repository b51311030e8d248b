"""The hook: parse, plan, find the target, run the suites, decide, report — exactly once.

Everything after the event is parsed runs inside a guard: an exception becomes a
``Failed`` verdict with its reason, and the work runs in a daemon thread that the hook
stops waiting for at the deadline, so the report always goes out in time. Suites run in
worker processes (:mod:`hooks.process.supervisor`): this process never runs suite code.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from hooks.aws.codedeploy import ReportOutcome, ReportState, StatusProtocol
from hooks.aws.discovery import Discovery
from hooks.core import redact
from hooks.core.deadline import DEFAULT_SAFETY_MARGIN, Deadline, HasRemainingTime, remaining_seconds
from hooks.core.exceptions import GreenlightError
from hooks.core.lifecycle import HookInvocation, LifecycleEvent, parse_event
from hooks.core.log import get_logger
from hooks.core.results import CheckResult, Status
from hooks.core.settings import Settings
from hooks.core.verdict import Verdict, VerdictStatus

if TYPE_CHECKING:
    from hooks.core.target import Target
    from hooks.gate.plan import Plan
    from hooks.process.runner import RunResult

log = logging.getLogger(__name__)

#: Time kept after the runner's deadline to decide and hand over to the report.
_HANDOVER = 0.5
#: Time kept at the very end of the Lambda run, after the report's last retry.
_REPORT_RESERVE = 0.3
#: Failed checks the summary log line lists in full (the evidence bundle has them all).
LOGGED_FAILURES = 50
#: Marks the summary line (searchable in the logs; the command line prints its own).
SUMMARY_KEY = "greenlight_summary"
#: Whether the next invocation in this process is its first (Lambda's cold start).
_cold_start = True


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


def handle(
    event: Any, context: HasRemainingTime, lifecycle_event: LifecycleEvent, runtime: Runtime
) -> dict[str, Any]:
    """Run one hook invocation and report its verdict to CodeDeploy exactly once."""
    started = time.monotonic()
    try:
        invocation = parse_event(event, lifecycle_event)
    except Exception as exc:
        get_logger().error(f"invalid hook event: {exc} (nothing can be reported without both ids)")
        raise
    return handle_invocation(invocation, context, runtime, started)


def handle_invocation(
    invocation: HookInvocation, context: HasRemainingTime, runtime: Runtime, started: float
) -> dict[str, Any]:
    """Everything after the event is parsed, whichever protocol sent it: plan, target,
    suites, the verdict, its report (or, for ECS, return value), then the reporters."""
    redact.reset()  # a warm container: the last invocation's secrets are not this one's
    global _cold_start
    context_keys = {
        "function_request_id": getattr(context, "aws_request_id", None) or "local",
        "cold_start": _cold_start,
    }
    _cold_start = False
    settings: Settings | None = None
    settings_error = ""
    try:
        settings = Settings.from_env(runtime.env)
    except Exception as exc:  # whatever reading settings raises, the hook still reports
        settings_error = str(exc) if isinstance(exc, GreenlightError) else repr(exc)
    progress = Progress(log_keys=context_keys)
    if settings is not None:
        # First of all, the suite worker (its imports and suites load while this process
        # sets up logging, plans and discovers), and the AWS clients beside it if discovery
        # needs them; else they are built while the suites run, off the path to the first
        # request (only the report needs them).
        progress.supervisor = _start_worker(settings, invocation, runtime, context_keys)
        if settings.target_url is None:
            runtime.warm_up()
    watch = _arm_watch(invocation, context, runtime)
    logger = get_logger()
    logger.append_keys(**invocation.log_keys(), **context_keys)
    margin = settings.safety_margin if settings else DEFAULT_SAFETY_MARGIN
    deadline = Deadline.from_context(context, margin)

    summary = RunSummary(invocation, Verdict.failure("not run"))
    if settings is None:
        summary.verdict = Verdict.failure(f"configuration error: {settings_error}")
        summary.configuration_error = True
        logger.error(summary.verdict.reason)
    else:
        summary = _guarded(invocation, settings, deadline, runtime, progress)
        summary.settings = settings
        if invocation.ecs is not None:
            from hooks.adapters.ecs import settle
            from hooks.gate.evaluate import signing_key

            settle(summary, invocation.ecs, settings, signing_key(runtime))

    return finish(summary, runtime, context, started, context_keys, watch)


def _arm_watch(invocation: HookInvocation, context: Any, runtime: Runtime) -> Any:
    """The deadline watch of a CodeDeploy hook, arming beside the work (None where the stack
    sets none up, or for an Amazon ECS hook, whose answer is its return value)."""
    if invocation.ecs is not None or runtime.scheduler is None:
        return None
    import os

    from hooks.aws.watch import Watch

    watch = Watch.from_env(
        runtime.env if runtime.env is not None else os.environ, runtime.scheduler
    )
    if watch is not None:
        function = getattr(context, "function_name", None) or os.environ.get(
            "AWS_LAMBDA_FUNCTION_NAME", "the hook"
        )
        watch.arm(invocation, str(function), remaining_seconds(context))
    return watch


def finish(
    summary: RunSummary,
    runtime: Runtime,
    context: HasRemainingTime,
    started: float,
    context_keys: Mapping[str, Any],
    watch: Any = None,
) -> dict[str, Any]:
    """Report the verdict (once), run the reporters, log the summary line; the result.

    A run handed to the state machine reports nothing here: the execution does."""
    invocation = summary.invocation
    logger = get_logger()
    budget = Deadline.in_seconds(remaining_seconds(context) - _REPORT_RESERVE)
    if summary.handed_off is None:
        try:
            runtime.ensure()
            assert runtime.protocol is not None, "a Runtime needs a protocol or connect"
            summary.report = runtime.protocol.report(invocation, summary.verdict.status, budget)
        except Exception as exc:
            logger.exception("the status report raised")
            summary.report = ReportOutcome(ReportState.FAILED, 1, f"{type(exc).__name__}: {exc}")
        summary.reported_after = summary.duration = time.monotonic() - started
    reported = summary.report is not None and summary.report.state is not ReportState.FAILED
    if watch is not None and (reported or summary.handed_off is not None):
        # Its work is done (the state machine reports a handed-off plan). A report that
        # failed keeps the watch armed: the fail-safe tries again when it fires.
        seconds = min(remaining_seconds(context) - _REPORT_RESERVE, 2.0)
        _bounded(partial(watch.disarm, invocation, seconds), seconds, "watch")
    if summary.handed_off is None:
        _publish(runtime.reporters, summary, context)
    summary.duration = time.monotonic() - started
    result: dict[str, Any] = redact.redact_data(summary.to_dict())
    if summary.handed_off is not None:
        result["execution"] = summary.handed_off
    line = f"greenlight {result['verdict']}: {result['reason']}"
    if summary.verdict.succeeded or summary.verdict.status is VerdictStatus.IN_PROGRESS:
        logger.info(line, extra={**result, SUMMARY_KEY: True})
    else:
        failures = redact.redact_data(summary.failure_details())
        omitted = len(summary.verdict.failed) - len(failures)
        extra = {**result, "failures": failures, "failures_not_listed": max(omitted, 0)}
        logger.error(line, extra={**extra, SUMMARY_KEY: True})
    logger.remove_keys([*invocation.log_keys(), *context_keys])
    if summary.continuation is not None:  # ECS: what the IN_PROGRESS answer carries
        result["continuation"] = summary.continuation
    return result


def _publish(reporters: Sequence[Reporter], summary: RunSummary, context: Any) -> None:
    """Each reporter in turn, after the report: one that fails or hangs changes nothing, and
    none runs past the function's own end (what it did not finish is logged)."""
    for reporter in reporters:
        name = type(reporter).__name__
        budget = remaining_seconds(context) - _REPORT_RESERVE
        if budget <= 0:
            log.warning("no time left for reporter %s (the verdict stands)", name)
            continue
        finished, error = _bounded(partial(reporter.publish, summary), budget, name)
        if not finished:
            log.error("reporter %s did not finish in %.1fs (the verdict stands)", name, budget)
        elif error is not None:
            log.error(
                "reporter %s failed (the verdict stands): %s: %s",
                name,
                type(error).__name__,
                error,
            )


def _bounded(
    call: Callable[[], None], seconds: float, name: str
) -> tuple[bool, BaseException | None]:
    """Run ``call`` in a daemon thread for at most ``seconds``: (finished, what it raised)."""
    errors: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name=f"greenlight-{name}", daemon=True).start()
    finished = done.wait(seconds)
    return finished, errors[0] if errors else None


def _start_worker(
    settings: Settings, invocation: HookInvocation, runtime: Runtime, log_keys: dict[str, Any]
) -> Any:
    """The run's supervisor with its catalog worker started, or None if it cannot start
    (evaluation then starts it again, and fails with the reason)."""
    from hooks.gate.evaluate import start_supervisor

    try:
        return start_supervisor(settings, invocation, runtime, log_keys)
    except Exception:
        log.debug("the suite worker could not start early", exc_info=True)
        return None


def _guarded(
    invocation: HookInvocation,
    settings: Settings,
    deadline: Deadline,
    runtime: Runtime,
    progress: Progress,
) -> RunSummary:
    """Evaluate in a daemon thread; at the deadline, stop waiting and fail naming the stage."""
    summary = RunSummary(invocation, Verdict.failure("not run"))
    done = threading.Event()

    def work() -> None:
        from hooks.core.exceptions import ConfigError, TargetNotReadyError
        from hooks.gate.evaluate import evaluate

        try:
            evaluate(summary, settings, deadline.earlier(_HANDOVER), runtime, progress)
        except ConfigError as exc:
            log.error("configuration error while %s: %s", progress.stage, exc)
            summary.verdict = Verdict.failure(f"configuration error: {exc}")
            summary.configuration_error = True
        except Exception as exc:
            summary.not_ready = isinstance(exc, TargetNotReadyError)
            log.error("the hook failed while %s: %s: %s", progress.stage, type(exc).__name__, exc)
            log.debug("traceback\n%s", traceback.format_exc())
            summary.verdict = Verdict.failure(f"{type(exc).__name__} while {progress.stage}: {exc}")
        finally:
            done.set()

    threading.Thread(target=work, name="greenlight-hook", daemon=True).start()
    if not done.wait(timeout=deadline.remaining()):
        reason = f"deadline reached while {progress.stage}"
        log.error(reason)
        if progress.supervisor is not None:
            progress.supervisor.close()  # no worker outlives the invocation
        return RunSummary(
            invocation,
            Verdict.failure(reason),
            plan=summary.plan,
            target=summary.target,
            application=summary.application,
            deployment_group=summary.deployment_group,
        )
    return summary
