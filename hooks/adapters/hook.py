"""The hook: parse, plan, find the target, run the suites, decide, report — exactly once.

Everything after the event is parsed runs inside a guard: an exception becomes a
``Failed`` verdict with its reason, and the work runs in a daemon thread that the hook
stops waiting for at the deadline, so the report always goes out in time. Suites run in
worker processes (:mod:`hooks.process.supervisor`): this process never runs suite code.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from hooks.adapters.stepfunctions import hand_off
from hooks.aws.codedeploy import ReportOutcome, ReportState
from hooks.aws.watch import Watch
from hooks.core import redact
from hooks.core.deadline import DEFAULT_SAFETY_MARGIN, Deadline, HasRemainingTime, remaining_seconds
from hooks.core.exceptions import ConfigError, GreenlightError, TargetNotReadyError
from hooks.core.lifecycle import HookInvocation, LifecycleEvent, parse_event
from hooks.core.log import get_logger
from hooks.core.settings import Settings
from hooks.core.verdict import Verdict, VerdictStatus
from hooks.gate.evaluate import evaluate, start_supervisor
from hooks.gate.summary import Progress, Reporter, RunSummary, Runtime

if TYPE_CHECKING:
    pass

__all__ = ["SUMMARY_KEY", "finish", "handle", "handle_invocation"]

log = logging.getLogger(__name__)

#: Time kept after the runner's deadline to decide and hand over to the report.
_HANDOVER = 0.5
#: Time kept at the very end of the Lambda run, after the report's last retry.
_REPORT_RESERVE = 0.3
#: Marks the summary line (searchable in the logs; the command line prints its own).
SUMMARY_KEY = "greenlight_summary"
#: Whether the next invocation in this process is its first (Lambda's cold start).
_cold_start = True


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
    invocation: HookInvocation,
    context: HasRemainingTime,
    runtime: Runtime,
    started: float,
    settle: Callable[[RunSummary, Settings], None] | None = None,
) -> dict[str, Any]:
    """Everything after the event is parsed, whichever protocol sent it: plan, target,
    suites, the verdict, its report (or, for ECS, return value), then the reporters.

    ``settle`` is the protocol's last word on the verdict before it is reported (an Amazon
    ECS gate may continue at a next call instead)."""
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
        if settle is not None:  # the protocol's last word on the verdict (ECS: continue?)
            settle(summary, settings)

    return finish(summary, runtime, context, started, context_keys, watch)


def _arm_watch(invocation: HookInvocation, context: Any, runtime: Runtime) -> Any:
    """The deadline watch of a CodeDeploy hook, arming beside the work (None where the stack
    sets none up, or for an Amazon ECS hook, whose answer is its return value)."""
    if invocation.ecs is not None or runtime.scheduler is None:
        return None
    import os

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
        try:
            evaluate(summary, settings, deadline.earlier(_HANDOVER), runtime, progress, hand_off)
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
