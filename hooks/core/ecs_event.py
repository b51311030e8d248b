"""The Amazon ECS native blue/green hook call: its stages, and the event parsed.

ECS (``deploymentConfiguration.strategy: BLUE_GREEN``) invokes one Lambda function at the
stages it is configured for, with::

    {"executionId": "...", "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
     "resourceArn": "<the service deployment>",
     "executionDetails": {"serviceArn": "...", "targetServiceRevisionArn": "...",
                          "testTrafficWeights": {...}, "productionTrafficWeights": {...}},
     "hookDetails": {...}}

(an older documentation revision shows the same fields flat at the top level: both are
accepted). Each stage maps to the CodeDeploy lifecycle event that tests the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hooks.core.exceptions import InvalidEventError
from hooks.core.lifecycle import HookInvocation, LifecycleEvent

__all__ = ["EcsCall", "EcsStage", "parse_ecs_event"]


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
