"""The fail-safe: reports ``Failed`` for a hook that was killed before it could report.

Each hook function's asynchronous ``OnFailure`` destination is this function. When a hook
crashes, times out or runs out of memory, Lambda sends it an invocation record::

    {"version": "1.0", "timestamp": "...",
     "requestContext": {"requestId": "...", "functionArn": "...:function:CodeDeployHook_x-...",
                        "condition": "RetriesExhausted", "approximateInvokeCount": 1},
     "requestPayload": {"DeploymentId": "d-...", "LifecycleEventHookExecutionId": "..."},
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                         "functionError": "Unhandled"},
     "responsePayload": {"errorType": "...", "errorMessage": "... Task timed out after ..."}}

and it reports ``Failed`` at once with a reason read from the record, so the deployment rolls
back in seconds instead of waiting for CodeDeploy's hour — but only while the hook's lifecycle
event still waits for a verdict (``codedeploy:GetDeploymentTarget``): a hook that reported
before it died (or a verdict CodeDeploy already has) is left as it is, logged as "already
reported", and counts as no failure. A record it can never report (no
ids, an unknown deployment) goes to the dead-letter queue, without retries; a report that
fails for a passing reason (throttling, the network) raises, so Lambda retries it and then
keeps the record in the same queue. If the hook did report before it died, CodeDeploy
answers that the hook is already complete, and that is the end of it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from hooks.aws.codedeploy import (
    CodeDeployCallback,
    ReportOutcome,
    ReportState,
    report_client_config,
)
from hooks.core.deadline import Deadline
from hooks.core.lifecycle import HookInvocation, LifecycleEvent, parse_event
from hooks.core.log import get_logger
from hooks.core.verdict import VerdictStatus
from hooks.evidence.metrics import emit_crash
from hooks.evidence.notify import notify_crash
from hooks.gate.decision import fail_safe_reports
from hooks.gate.summary import WATCH_CAUSE, Crash

__all__ = ["ALREADY_REPORTED", "FailSafe", "event_status", "handler", "read_record"]

log = logging.getLogger(__name__)

#: Time kept at the end of the fail-safe's own run.
_RESERVE = 1.0


#: What a Step Functions execution that ended without reporting did, by its status.
_EXECUTION_ENDS = {
    "FAILED": "failed",
    "TIMED_OUT": "timed out",
    "ABORTED": "was stopped",
}


def read_record(record: Any) -> Crash:
    """The crash a destination record describes; ``invalid`` says what makes it unusable."""
    if not isinstance(record, dict):
        return Crash(None, "", "", "failed", "", f"not a destination record: {record!r:.200}")
    if record.get("source") == "aws.states":
        return _read_execution(record)
    if record.get("source") == "greenlight.watch":
        return _read_watch(record)
    context = record.get("requestContext") or {}
    response = record.get("responsePayload")
    arn = str(context.get("functionArn", ""))
    function = arn.split(":function:", 1)[-1].split(":", 1)[0] if ":function:" in arn else arn
    error_type = error_message = ""
    if isinstance(response, dict):
        error_type = str(response.get("errorType", ""))
        error_message = str(response.get("errorMessage", ""))
    elif response is not None:
        error_message = str(response)
    condition = str(context.get("condition", ""))
    cause = _cause(condition, error_type, error_message)
    detail = "; ".join(
        part
        for part in (
            f"{function}" if function else "",
            f"{error_type}: {error_message}".strip(": ") if error_type or error_message else "",
            f"condition {condition}" if condition else "",
            f"{context.get('approximateInvokeCount')} attempt(s)"
            if context.get("approximateInvokeCount")
            else "",
        )
        if part
    )[:900]
    event = _lifecycle_event(function)
    try:
        invocation: HookInvocation | None = parse_event(record.get("requestPayload"), event)
        invalid = ""
    except Exception as exc:
        invocation, invalid = None, f"the hook's event cannot be reported: {exc}"
    return Crash(
        invocation, function, str(context.get("requestId", "")), cause, detail, invalid=invalid
    )


def _read_execution(record: dict[str, Any]) -> Crash:
    """An EventBridge "Step Functions Execution Status Change" of the state machine that
    runs handed-off plans: it ended without reaching its report (every path that reports
    ends the execution in success)."""
    detail = record.get("detail") or {}
    status = str(detail.get("status", ""))
    name = str(detail.get("name", ""))
    cause = f"state machine execution {_EXECUTION_ENDS.get(status, status.lower() or 'ended')}"
    what = "; ".join(
        part
        for part in (
            name,
            f"{detail.get('error')}: {detail.get('cause')}" if detail.get("error") else "",
        )
        if part
    )[:900]
    try:
        ids = json.loads(detail.get("input") or "{}")["invocation"]
        invocation: HookInvocation | None = HookInvocation.from_ids(ids)
        invalid = ""
    except Exception as exc:
        invocation = None
        invalid = f"the execution's input names no hook to report: {type(exc).__name__}: {exc}"
    arn = str(detail.get("executionArn", ""))
    return Crash(invocation, name or arn, arn, cause, what or arn, invalid=invalid)


def _read_watch(record: dict[str, Any]) -> Crash:
    """The deadline watch's schedule fired: the hook neither reported nor disarmed it by its
    own end plus a margin (:mod:`hooks.aws.watch`)."""
    function = str(record.get("function", ""))
    detail = f"{function}; the deadline watch fired at {record.get('due', 'its time')}"
    try:
        invocation: HookInvocation | None = HookInvocation.from_ids(record.get("invocation"))
        invalid = ""
    except ValueError as exc:
        invocation = None
        invalid = f"the watch names no hook to report: {type(exc).__name__}: {exc}"
    return Crash(invocation, function, "", WATCH_CAUSE, detail, invalid=invalid)


def _cause(condition: str, error_type: str, message: str) -> str:
    text = f"{error_type} {message}".lower()
    if "timed out" in text:
        return "timed out"
    if "outofmemory" in text or "out of memory" in text or "signal: killed" in text:
        return "ran out of memory"
    if condition == "EventAgeExceeded":
        return "was not run in time (the event expired in Lambda's queue)"
    return "crashed"


def _lifecycle_event(function: str) -> LifecycleEvent:
    """The lifecycle event named by a hook function's name (``...-AfterAllowTestTraffic``)."""
    suffix = function.rsplit("-", 1)[-1]
    for event in LifecycleEvent:
        if event.value == suffix:
            return event
    return LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC  # the report does not depend on it


def event_status(client: Any, invocation: HookInvocation) -> str | None:
    """The status of the hook's lifecycle event on its deployment's target
    (``codedeploy:ListDeploymentTargets``, ``GetDeploymentTarget``), or None when it cannot
    be read."""
    try:
        found = client.list_deployment_targets(deploymentId=invocation.deployment_id)
        for target_id in found.get("targetIds") or ():
            target = client.get_deployment_target(
                deploymentId=invocation.deployment_id, targetId=target_id
            )["deploymentTarget"]
            body = target.get("ecsTarget") or target.get("lambdaTarget") or {}
            for event in body.get("lifecycleEvents") or ():
                if event.get("lifecycleEventName") == invocation.lifecycle_event.value:
                    return str(event.get("status"))
    except Exception as exc:
        log.warning("the lifecycle event's status could not be read (%s): reporting", exc)
    return None


ALREADY_REPORTED = "already reported"


class FailSafe:
    """Reports ``Failed`` for a hook that ended without reporting — only while its lifecycle
    event still waits for a verdict; keeps the unreportable records in a queue."""

    def __init__(
        self,
        callback: CodeDeployCallback,
        sqs: Any = None,
        queue_url: str | None = None,
        status: Callable[[HookInvocation], str | None] | None = None,
    ) -> None:
        self.callback = callback
        self.sqs = sqs
        self.queue_url = queue_url
        self.status = status

    def handle(self, record: Any, budget: Deadline) -> dict[str, Any]:

        crash = read_record(record)
        logger = get_logger()
        if crash.invocation is None:
            logger.error(f"fail-safe: {crash.invalid}; the record is kept in the queue")
            self._keep(record, crash.invalid)
            return {"verdict": "Failed", "reported": False, "reason": crash.invalid}
        keys = crash.invocation.log_keys()
        logger.append_keys(**keys, hook_function=crash.function, hook_request_id=crash.request_id)
        try:
            status = self.status(crash.invocation) if self.status is not None else None
            if not fail_safe_reports(status):
                return self._left_alone(crash, f"its lifecycle event is {status}", keys)
            outcome = self.callback.report(crash.invocation, VerdictStatus.FAILED, budget)
            if outcome.state is ReportState.ALREADY_COMPLETED:
                return self._left_alone(crash, "CodeDeploy has its verdict already", keys)
            logger.error(f"greenlight Failed: {crash.reason}")
            _emit_metrics(crash, outcome)
            _notify(crash, outcome)
            if outcome.state is ReportState.FAILED:
                if _transient(outcome):
                    # Lambda retries the fail-safe, then keeps the record in the queue.
                    raise RuntimeError(f"could not report Failed: {outcome.detail}")
                self._keep(record, f"could not report Failed: {outcome.detail}")
            return {
                "verdict": "Failed",
                "reported": outcome.state is ReportState.REPORTED,
                "report": outcome.state.value,
                "reason": crash.reason,
                **keys,
            }
        finally:
            logger.remove_keys([*keys, "hook_function", "hook_request_id"])

    def _left_alone(self, crash: Crash, why: str, keys: dict[str, str]) -> dict[str, Any]:
        """The hook reported before it ended (or the event moved on): nothing to say, and
        no failure counted."""
        reason = f"{crash.function or 'the hook'} ended ({crash.cause}) after its verdict: {why}"
        get_logger().info(f"fail-safe: {ALREADY_REPORTED}: {reason}")
        return {
            "verdict": ALREADY_REPORTED,
            "reported": False,
            "report": ReportState.ALREADY_COMPLETED.value,
            "reason": reason,
            **keys,
        }

    def _keep(self, record: Any, why: str) -> None:
        if self.sqs is None or not self.queue_url:
            log.error("no dead-letter queue is configured: the record is only in this log")
            log.error("record: %s", json.dumps(record, default=str)[:10000])
            return
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps({"reason": why, "record": record}, default=str)[:250_000],
        )


def _transient(outcome: ReportOutcome) -> bool:
    """Whether another attempt later could report (not an unknown deployment or id)."""
    permanent = (
        "InvalidLifecycleEventHookExecutionId",
        "DeploymentDoesNotExist",
        "InvalidDeployment",
    )
    return not any(code in outcome.detail for code in permanent)


def _emit_metrics(crash: Crash, outcome: ReportOutcome) -> None:

    try:
        emit_crash(crash, outcome)
    except Exception:
        log.exception("the fail-safe's metrics could not be written")


def _notify(crash: Crash, outcome: ReportOutcome) -> None:

    try:
        notify_crash(crash, outcome)
    except Exception:
        log.exception("the fail-safe's notification could not be sent")


def handler(event: Any, context: Any) -> dict[str, Any]:
    """The ``OnFailure`` destination of every hook function (``template.yaml``)."""
    import boto3

    started = time.monotonic()
    remaining = context.get_remaining_time_in_millis() / 1000 if context else 30.0
    budget = Deadline.in_seconds(max(remaining - _RESERVE, 1.0))
    queue = os.environ.get("GREENLIGHT_DEAD_LETTER_QUEUE")
    client = boto3.client("codedeploy", config=report_client_config())
    safe = FailSafe(
        CodeDeployCallback(client),
        boto3.client("sqs") if queue else None,
        queue,
        status=lambda invocation: event_status(client, invocation),
    )
    result = safe.handle(event, budget)
    log.debug("fail-safe done in %.3fs", time.monotonic() - started)
    return result
