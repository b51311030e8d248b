"""Amazon ECS native blue/green lifecycle hooks: the second protocol adapter.

ECS invokes one Lambda function at the stages it is configured for
(:mod:`hooks.core.ecs_event` parses the call). The verdict is the return value:
``{"hookStatus": "SUCCEEDED" | "FAILED"}``, or ``{"hookStatus": "IN_PROGRESS",
"callBackDelay": s, "hookDetails": {...}}`` to be called again with those details. A
missing status or a raised error rolls back, so nothing raises here: a malformed event is
``FAILED`` with the reason in the log.

Each stage maps to the CodeDeploy lifecycle event that tests the same thing (the plan may
also name stages directly). A gate longer than one Lambda run continues: suites that
passed are carried in ``hookDetails`` (:mod:`hooks.gate.carried`) and the rest run on the
next call, until the gate's own budget (``GREENLIGHT_ECS_BUDGET`` seconds from the first
call) is spent — then it fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hooks.adapters.hook import handle_invocation
from hooks.aws.codedeploy import ReportOutcome, ReportState
from hooks.core.deadline import Deadline
from hooks.core.ecs_event import EcsCall, EcsStage, parse_ecs_event
from hooks.core.lifecycle import HookInvocation, LifecycleEvent
from hooks.core.log import get_logger
from hooks.core.verdict import Verdict, VerdictStatus
from hooks.gate.carried import GateState, now, plan_digest
from hooks.gate.decision import decide_gate
from hooks.gate.evaluate import signing_key

if TYPE_CHECKING:
    from hooks.core.settings import Settings
    from hooks.gate.summary import RunSummary

__all__ = ["PREFERRED_STAGES", "EcsReturn", "answer", "handle_ecs", "lifecycle_hooks", "settle"]

log = logging.getLogger(__name__)


class EcsReturn:
    """The ECS protocol's "report": the verdict is the handler's return value, so reporting
    only records it (there is no callback to lose)."""

    def __init__(self) -> None:
        self.status: VerdictStatus | None = None

    def report(
        self, invocation: HookInvocation, status: VerdictStatus, budget: Deadline
    ) -> ReportOutcome:
        self.status = status
        return ReportOutcome(ReportState.REPORTED, 1, "returned to Amazon ECS")


def settle(summary: RunSummary, call: EcsCall, settings: Settings, key: bytes | None) -> None:
    """The verdict, or another call (:func:`hooks.gate.decision.decide_gate`), with this gate's
    progress sealed into the ``hookDetails`` of an ``IN_PROGRESS`` answer — until the gate's
    own budget is spent, which fails it."""

    digest = plan_digest(summary.plan)
    state = GateState.of(call, now(), key, digest)
    elapsed = now() - state.started
    limit = settings.ecs_budget
    step = decide_gate(
        summary.verdict,
        summary.run.suites if summary.run is not None else None,
        earlier=state.passed,
        not_ready=summary.not_ready,
        attempt=state.attempt,
    )
    summary.verdict = step.verdict
    if not step.unfinished:
        return
    unfinished = ", ".join(step.unfinished)
    if key is None or not digest:
        summary.verdict = Verdict.failure(
            f"the gate cannot go on at a next call: its progress cannot be signed "
            f"({step.verdict.reason}); still unfinished: {unfinished}",
            step.verdict.failed,
        )
        return
    if elapsed >= limit:
        summary.verdict = Verdict.failure(
            f"the gate's budget of {limit:g}s is spent after {state.attempt} calls "
            f"({step.verdict.reason}); still unfinished: {unfinished}",
            step.verdict.failed,
        )
        return
    state.passed = list(step.passed)
    try:
        details = state.details(call, key, digest)
    except ValueError as exc:
        summary.verdict = Verdict.failure(f"{exc} ({step.verdict.reason})")
        return
    summary.continuation = {"callBackDelay": settings.ecs_callback_delay, "hookDetails": details}
    summary.verdict = Verdict(
        VerdictStatus.IN_PROGRESS,
        f"continuing at ECS's next call (attempt {state.attempt}, {elapsed:.0f}s of "
        f"{limit:g}s): unfinished {unfinished}; passed {', '.join(step.passed) or 'none yet'}",
    )


def answer(result: Mapping[str, Any], continuation: Mapping[str, Any] | None) -> dict[str, Any]:
    """The return value ECS reads."""
    if result.get("verdict") == VerdictStatus.SUCCEEDED.value:
        return {"hookStatus": "SUCCEEDED"}
    if result.get("verdict") == VerdictStatus.IN_PROGRESS.value and continuation:
        return {"hookStatus": "IN_PROGRESS", **continuation}
    return {"hookStatus": "FAILED"}


def handle_ecs(event: Any, context: Any, runtime: Any) -> dict[str, Any]:
    """One ECS hook call: its answer, whatever happens — never an exception, which ECS would
    take as a rollback with no reason given."""

    started = time.monotonic()
    logger = get_logger()
    try:
        call = parse_ecs_event(event)
    except Exception as exc:
        logger.error(f"greenlight FAILED: invalid Amazon ECS hook event: {exc}")
        return {"hookStatus": "FAILED"}
    try:
        if call.looks_like_rollback() and _confirmed_rollback(call, runtime):
            logger.info(
                f"greenlight SUCCEEDED without testing: Amazon ECS is rolling back "
                f"({call.stage.value} with green at 0% of test and production traffic); "
                f"a rollback is not gated",
                extra={"ecs_stage": call.stage.value, "execution_id": call.execution_id},
            )
            return {"hookStatus": "SUCCEEDED"}
        result = handle_invocation(
            call.invocation(),
            context,
            runtime,
            started,
            lambda summary, settings: settle(summary, call, settings, signing_key(runtime)),
        )
        return answer(result, result.get("continuation"))
    except Exception as exc:  # the pipeline never raises; this is the last guard
        logger.exception(f"greenlight FAILED: {type(exc).__name__}: {exc}")
        return {"hookStatus": "FAILED"}


def _confirmed_rollback(call: EcsCall, runtime: Any) -> bool:
    """The weights are ECS's rollback signature, and only a signature: the call goes
    untested only when the service deployment itself says it is rolling back. If it cannot
    be read, the call is tested as any other (a rollback is confirmed, never inferred)."""
    discovery = getattr(runtime, "ecs_discovery", None)
    if discovery is None or call.deployment_arn is None:
        log.warning(
            "the call has a rollback's traffic weights, and no service deployment can be "
            "read to confirm it: testing as usual"
        )
        return False
    try:
        return bool(discovery.rolling_back(call.deployment_arn))
    except Exception as exc:
        log.warning(
            "the call has a rollback's traffic weights, and the service deployment could not "
            "be read to confirm it (%s): testing as usual",
            exc,
        )
        return False


#: The stage that gates each lifecycle event's tests in an ECS deployment (the printer's
#: default: PRODUCTION_TRAFFIC_SHIFT is called at every canary or linear step).
PREFERRED_STAGES = {
    LifecycleEvent.BEFORE_INSTALL: EcsStage.PRE_SCALE_UP,
    LifecycleEvent.AFTER_INSTALL: EcsStage.POST_SCALE_UP,
    LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC: EcsStage.POST_TEST_TRAFFIC_SHIFT,
    LifecycleEvent.BEFORE_ALLOW_TRAFFIC: EcsStage.PRE_PRODUCTION_TRAFFIC_SHIFT,
    LifecycleEvent.AFTER_ALLOW_TRAFFIC: EcsStage.PRODUCTION_TRAFFIC_SHIFT,
}


def lifecycle_hooks(
    hook_arn: str, role_arn: str, stages: list[EcsStage], details: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ``lifecycleHooks`` block of a service's ``deploymentConfiguration``."""
    hook: dict[str, Any] = {
        "hookTargetArn": hook_arn,
        "roleArn": role_arn,
        "lifecycleStages": [s.value for s in sorted(set(stages), key=list(EcsStage).index)],
    }
    if details:
        hook["hookDetails"] = dict(details)
    return {"lifecycleHooks": [hook]}
