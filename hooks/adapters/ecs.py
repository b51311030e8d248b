"""Amazon ECS native blue/green lifecycle hooks: the second protocol adapter.

ECS (``deploymentConfiguration.strategy: BLUE_GREEN``) invokes one Lambda function at the
stages it is configured for, with::

    {"executionId": "...", "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
     "resourceArn": "<the service deployment>",
     "executionDetails": {"serviceArn": "...", "targetServiceRevisionArn": "...",
                          "testTrafficWeights": {...}, "productionTrafficWeights": {...}},
     "hookDetails": {...}}

(an older documentation revision shows the same fields flat at the top level: both are
accepted). The verdict is the return value: ``{"hookStatus": "SUCCEEDED" | "FAILED"}``, or
``{"hookStatus": "IN_PROGRESS", "callBackDelay": s, "hookDetails": {...}}`` to be called
again with those details. A missing status or a raised error rolls back, so nothing raises
here: a malformed event is ``FAILED`` with the reason in the log.

Each stage maps to the CodeDeploy lifecycle event that tests the same thing (the plan may
also name stages directly). A gate longer than one Lambda run continues: suites that
passed are carried in ``hookDetails`` and the rest run on the next call, until the gate's
own budget (``GREENLIGHT_ECS_BUDGET`` seconds from the first call) is spent — then it fails.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from hooks.aws.codedeploy import ReportOutcome, ReportState
from hooks.core.deadline import Deadline
from hooks.core.exceptions import InvalidEventError
from hooks.core.lifecycle import HookInvocation, LifecycleEvent
from hooks.core.verdict import VerdictStatus

if TYPE_CHECKING:
    from hooks.adapters.hook import RunSummary
    from hooks.core.settings import Settings

log = logging.getLogger(__name__)

#: hookDetails is sent back by ECS: kept well below any size limit.
MAX_DETAILS_BYTES = 8192
#: The key under which Greenlight keeps its progress in hookDetails.
STATE_KEY = "greenlight"


class EcsStage(StrEnum):
    """The stages an ECS blue/green deployment can call a hook at, in order."""

    RECONCILE_SERVICE = "RECONCILE_SERVICE"
    PRE_SCALE_UP = "PRE_SCALE_UP"
    POST_SCALE_UP = "POST_SCALE_UP"
    TEST_TRAFFIC_SHIFT = "TEST_TRAFFIC_SHIFT"
    POST_TEST_TRAFFIC_SHIFT = "POST_TEST_TRAFFIC_SHIFT"
    PRE_PRODUCTION_TRAFFIC_SHIFT = "PRE_PRODUCTION_TRAFFIC_SHIFT"
    PRODUCTION_TRAFFIC_SHIFT = "PRODUCTION_TRAFFIC_SHIFT"
    POST_PRODUCTION_TRAFFIC_SHIFT = "POST_PRODUCTION_TRAFFIC_SHIFT"

    @property
    def lifecycle_event(self) -> LifecycleEvent:
        """The CodeDeploy event that tests the same thing (what, and through which listener)."""
        return _EVENTS[self]

    @property
    def shifts_traffic(self) -> bool:
        """The stages ECS calls again, green weight 0, when it rolls back."""
        return self in (EcsStage.TEST_TRAFFIC_SHIFT, EcsStage.PRODUCTION_TRAFFIC_SHIFT)


_EVENTS = {
    # No green revision serves anything yet: production is what exists.
    EcsStage.RECONCILE_SERVICE: LifecycleEvent.BEFORE_INSTALL,
    EcsStage.PRE_SCALE_UP: LifecycleEvent.BEFORE_INSTALL,
    # Green runs, behind no listener: its tasks are tested directly.
    EcsStage.POST_SCALE_UP: LifecycleEvent.AFTER_INSTALL,
    # Green behind the test listener (rule).
    EcsStage.TEST_TRAFFIC_SHIFT: LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
    EcsStage.POST_TEST_TRAFFIC_SHIFT: LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
    EcsStage.PRE_PRODUCTION_TRAFFIC_SHIFT: LifecycleEvent.BEFORE_ALLOW_TRAFFIC,
    # Green takes (part of, then all) production traffic.
    EcsStage.PRODUCTION_TRAFFIC_SHIFT: LifecycleEvent.AFTER_ALLOW_TRAFFIC,
    EcsStage.POST_PRODUCTION_TRAFFIC_SHIFT: LifecycleEvent.AFTER_ALLOW_TRAFFIC,
}


@dataclass(frozen=True)
class EcsCall:
    """One ECS hook call, parsed."""

    execution_id: str
    stage: EcsStage
    deployment_arn: str | None
    service_arn: str | None
    target_revision_arn: str | None
    test_weights: Mapping[str, float] = field(default_factory=dict)
    production_weights: Mapping[str, float] = field(default_factory=dict)
    hook_details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cluster(self) -> str | None:
        """``arn:aws:ecs:r:a:service/<cluster>/<service>`` -> the cluster's name."""
        parts = (self.service_arn or "").split(":service/", 1)
        return parts[1].split("/")[0] if len(parts) == 2 and "/" in parts[1] else None

    @property
    def service(self) -> str | None:
        return (self.service_arn or "").rsplit("/", 1)[-1] or None

    @property
    def deployment_id(self) -> str:
        """The service deployment's id (the end of its ARN), for logs and the evidence."""
        return (self.deployment_arn or "").rsplit("/", 1)[-1] or self.execution_id

    def green_weight(self, weights: Mapping[str, float]) -> float | None:
        if self.target_revision_arn and self.target_revision_arn in weights:
            return float(weights[self.target_revision_arn])
        return None

    def traffic(self) -> dict[str, str]:
        """``${traffic.test_weight}`` and ``${traffic.production_weight}``: green's share, in
        percent, as this call reports it ("" when it does not)."""
        test = self.green_weight(self.test_weights)
        production = self.green_weight(self.production_weights)
        return {
            "traffic.test_weight": "" if test is None else f"{test:g}",
            "traffic.production_weight": "" if production is None else f"{production:g}",
        }

    def looks_like_rollback(self) -> bool:
        """ECS rolling back calls the traffic stages again with green at 0 and blue at 100."""
        if not self.stage.shifts_traffic:
            return False
        test = self.green_weight(self.test_weights)
        production = self.green_weight(self.production_weights)
        others = [
            w for arn, w in self.production_weights.items() if arn != self.target_revision_arn
        ]
        return test == 0 and production == 0 and any(w > 0 for w in others)

    def invocation(self) -> HookInvocation:
        return HookInvocation(
            deployment_id=self.deployment_id,
            execution_id=self.execution_id,
            lifecycle_event=self.stage.lifecycle_event,
            ecs=self,
        )


def parse_ecs_event(event: Any) -> EcsCall:
    """Validate an ECS hook event; raise :class:`InvalidEventError` naming what is wrong."""
    if not isinstance(event, Mapping):
        raise InvalidEventError(
            f"the ECS hook event must be a JSON object, got {type(event).__name__}"
        )
    details = event.get("executionDetails")
    if details is None:
        details = event  # the flat form of an older documentation revision
    if not isinstance(details, Mapping):
        raise InvalidEventError("'executionDetails' must be an object")
    execution_id = event.get("executionId")
    if not isinstance(execution_id, str) or not execution_id.strip():
        raise InvalidEventError(f"the event has no 'executionId'; got keys {sorted(event)}")
    stage = event.get("lifecycleStage")
    try:
        parsed_stage = EcsStage(str(stage))
    except ValueError:
        names = ", ".join(s.value for s in EcsStage)
        raise InvalidEventError(
            f"unknown lifecycleStage {stage!r}; expected one of: {names}"
        ) from None
    return EcsCall(
        execution_id=execution_id.strip(),
        stage=parsed_stage,
        deployment_arn=_text(event.get("resourceArn") or details.get("resourceArn")),
        service_arn=_text(details.get("serviceArn")),
        target_revision_arn=_text(details.get("targetServiceRevisionArn")),
        test_weights=_weights(details.get("testTrafficWeights"), "testTrafficWeights"),
        production_weights=_weights(
            details.get("productionTrafficWeights"), "productionTrafficWeights"
        ),
        hook_details=_details(event.get("hookDetails")),
    )


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _weights(value: Any, name: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(w, int | float) and not isinstance(w, bool) for w in value.values()
    ):
        raise InvalidEventError(f"{name!r} must map service revision ARNs to weights")
    return {str(arn): float(weight) for arn, weight in value.items()}


def _details(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):  # the template's HookDetails is a JSON string
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidEventError("'hookDetails' is not a JSON object") from None
    if not isinstance(value, Mapping):
        raise InvalidEventError("'hookDetails' must be an object")
    return dict(value)


# ---- progress carried between IN_PROGRESS calls ----


#: What a gate's sealed progress is for (nothing else opens with it).
PURPOSE = "greenlight ecs gate"
#: A ``started`` this far ahead of this call's clock is not believed (clock skew allowed).
MAX_CLOCK_SKEW = 60.0


@dataclass
class GateState:
    """What earlier calls of this gate did, carried in ``hookDetails``, sealed.

    The progress is signed with the stack's key and bound to the hook execution, the stage
    and the plan's digest. What does not open — unsigned, altered, another execution's or
    stage's, a plan changed since, a ``started`` that is not a time this call can believe —
    is discarded (``discarded`` says why): the gate starts again and runs every suite. It
    can only save work already done; it never skips a suite on anyone else's word.
    """

    started: float
    attempt: int = 1
    passed: list[str] = field(default_factory=list)
    discarded: str | None = None

    @classmethod
    def of(cls, call: EcsCall, now: float, key: bytes | None, plan: str) -> GateState:
        from hooks.aws.signing import open_sealed
        from hooks.core.exceptions import SealError

        sealed = call.hook_details.get(STATE_KEY)
        if sealed is None:
            return cls(started=now)
        try:
            if key is None:
                raise SealError("no signing key to verify it with")
            state = open_sealed(key, PURPOSE, _binding(call, plan), sealed)
            started = float(state["started"])
            if not math.isfinite(started) or started > now + MAX_CLOCK_SKEW:
                raise SealError(f"its start {state['started']!r} is not a time of this gate")
            attempt = int(state["attempt"]) + 1
            passed = [str(name) for name in state["passed"]]
        except (SealError, KeyError, TypeError, ValueError) as exc:
            why = f"the progress in hookDetails was discarded: {exc}"
            log.warning("%s; the gate starts again and runs every suite", why)
            return cls(started=now, discarded=why)
        return cls(started=started, attempt=attempt, passed=passed)

    def details(self, call: EcsCall, key: bytes, plan: str) -> dict[str, Any]:
        """The hookDetails to return: the user's own keys, and this gate's sealed progress."""
        from hooks.aws.signing import seal

        state = {"started": round(self.started, 3), "attempt": self.attempt, "passed": self.passed}
        details = {**call.hook_details, STATE_KEY: seal(key, PURPOSE, _binding(call, plan), state)}
        if len(json.dumps(details)) > MAX_DETAILS_BYTES:
            raise ValueError("the progress no longer fits in hookDetails")
        return details


def _binding(call: EcsCall, plan: str) -> dict[str, Any]:
    return {"execution": call.execution_id, "stage": call.stage.value, "plan": plan}


def plan_digest(plan: Any) -> str:
    """The digest a gate's progress is bound to: a plan changed between calls starts it
    again (``""`` when there is no plan: nothing can be carried)."""
    from hooks.aws.signing import digest

    return digest(plan.describe()) if plan is not None else ""


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


def now() -> float:
    return time.time()


def settle(summary: RunSummary, call: EcsCall, settings: Settings, key: bytes | None) -> None:
    """The verdict, or another call (:func:`hooks.gate.decision.decide_gate`), with this gate's
    progress sealed into the ``hookDetails`` of an ``IN_PROGRESS`` answer — until the gate's
    own budget is spent, which fails it."""
    from hooks.core.verdict import Verdict
    from hooks.gate.decision import decide_gate

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
    from hooks.adapters.hook import handle_invocation
    from hooks.core.log import get_logger

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
        result = handle_invocation(call.invocation(), context, runtime, started)
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
