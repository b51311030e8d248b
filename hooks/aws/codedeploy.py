"""Reporting the verdict to CodeDeploy: exactly one status, retried within the budget.

The protocol is a seam: :class:`CodeDeployCallback` is the adapter for CodeDeploy's
lifecycle hooks. Nothing below the hook layer knows which protocol is in use.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from hooks.core.deadline import Deadline
from hooks.core.lifecycle import HookInvocation
from hooks.core.verdict import VerdictStatus

__all__ = [
    "ALREADY_COMPLETED",
    "RECORDED_HEADER",
    "RETRYABLE_CODES",
    "CodeDeployCallback",
    "ReportOutcome",
    "ReportState",
    "StatusProtocol",
    "report_client_config",
]

log = logging.getLogger(__name__)

RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
ALREADY_COMPLETED = "LifecycleEventAlreadyCompletedException"


def report_client_config() -> Any:
    """botocore settings for the reporting client: short attempts, no retries of its own.

    ``total_max_attempts`` counts the first request (botocore's ``max_attempts`` counts
    retries: 1 would mean two requests). :class:`CodeDeployCallback` retries, and waits for
    each attempt no longer than the budget allows, so no endpoint can outlast the function.
    """
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=2,
        read_timeout=4,
        user_agent_extra="greenlight",
    )


#: The header a local recorder answers with (:mod:`hooks.cli.local`); CodeDeploy sends none.
RECORDED_HEADER = "x-greenlight-recorded"


class ReportState(StrEnum):
    REPORTED = "reported"
    #: Taken by a local recorder, never sent (``greenlight run``, ``invoke``, ``rehearse``).
    RECORDED = "recorded"
    ALREADY_COMPLETED = "already_completed"
    FAILED = "failed"


@dataclass(frozen=True)
class ReportOutcome:
    state: ReportState
    attempts: int
    detail: str = ""


class StatusProtocol(Protocol):
    """How a verdict gets back to the deployment engine."""

    def report(
        self, invocation: HookInvocation, status: VerdictStatus, budget: Deadline
    ) -> ReportOutcome: ...


class CodeDeployCallback:
    """``PutLifecycleEventHookExecutionStatus``, once, retried on throttling and 5xx."""

    def __init__(self, client: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self._sleep = sleep
        config = getattr(getattr(client, "meta", None), "config", None)
        #: The longest one attempt can take: another starts only if it can finish in time.
        self.attempt_time = float(getattr(config, "connect_timeout", 2) or 2) + float(
            getattr(config, "read_timeout", 4) or 4
        )

    def report(
        self, invocation: HookInvocation, status: VerdictStatus, budget: Deadline
    ) -> ReportOutcome:
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        if status not in (VerdictStatus.SUCCEEDED, VerdictStatus.FAILED):
            raise ValueError(f"CodeDeploy accepts only Succeeded or Failed, not {status!r}")
        ids = invocation.log_keys()
        attempt = 0
        while True:
            attempt += 1
            try:
                return _delivered(self._attempt(invocation, status, budget), status, attempt)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                message = exc.response.get("Error", {}).get("Message", "")
                if code == ALREADY_COMPLETED:
                    log.warning(
                        "CodeDeploy already has a status for this hook execution (a "
                        "duplicate run, or a report after CodeDeploy's timeout); not "
                        "reporting %s",
                        status.value,
                        extra={**ids, "error": message},
                    )
                    return ReportOutcome(ReportState.ALREADY_COMPLETED, attempt, message)
                detail = f"{code}: {message}"
                retryable = (
                    code in RETRYABLE_CODES
                    or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
                )
            except (
                EndpointConnectionError,
                ConnectTimeoutError,
                ReadTimeoutError,
                ConnectionError,
                _AttemptTimeoutError,
            ) as exc:
                detail = (
                    f"{type(exc).__name__}: {exc} (a function in a VPC needs a route to "
                    f"the CodeDeploy API: a NAT gateway or an interface endpoint)"
                )
                retryable = True
            pause = min(0.2 * 2 ** (attempt - 1), 2.0) * (0.5 + random.random() / 2)
            if not retryable or budget.remaining() <= pause + self.attempt_time:
                log.error(
                    "could not report %s to CodeDeploy: %s",
                    status.value,
                    detail,
                    extra={**ids, "attempts": attempt},
                )
                return ReportOutcome(ReportState.FAILED, attempt, detail)
            log.warning(
                "reporting to CodeDeploy failed, retrying: %s", detail, extra={"attempt": attempt}
            )
            self._sleep(pause)

    def _attempt(
        self, invocation: HookInvocation, status: VerdictStatus, budget: Deadline
    ) -> dict[str, Any]:
        """One request, waited for no longer than the budget (it may finish unseen later)."""
        outcome: list[BaseException | None] = []
        answers: list[dict[str, Any]] = []
        done = threading.Event()

        def call() -> None:
            try:
                answers.append(
                    self.client.put_lifecycle_event_hook_execution_status(
                        deploymentId=invocation.deployment_id,
                        lifecycleEventHookExecutionId=invocation.execution_id,
                        status=status.value,
                    )
                    or {}
                )
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)
            finally:
                done.set()

        threading.Thread(target=call, name="greenlight-report", daemon=True).start()
        if not done.wait(min(self.attempt_time, budget.remaining())):
            raise _AttemptTimeoutError(
                f"no answer within {min(self.attempt_time, budget.remaining()):.1f}s"
            )
        if outcome[0] is not None:
            raise outcome[0]
        return answers[0] if answers and isinstance(answers[0], dict) else {}


def _delivered(answer: dict[str, Any], status: VerdictStatus, attempt: int) -> ReportOutcome:
    """A report that was answered: sent to CodeDeploy, or taken by a local recorder."""
    headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    if headers.get(RECORDED_HEADER):
        log.info("recorded %s; not sent to CodeDeploy", status.value)
        return ReportOutcome(ReportState.RECORDED, attempt, "a local run: not sent")
    log.info("reported %s to CodeDeploy", status.value, extra={"attempts": attempt})
    return ReportOutcome(ReportState.REPORTED, attempt)


class _AttemptTimeoutError(Exception):
    """A report attempt did not answer within the time it was given."""
