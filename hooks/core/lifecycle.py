"""CodeDeploy lifecycle events of an ECS deployment and the hook invocation event."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hooks.core.exceptions import InvalidEventError

__all__ = ["HookInvocation", "LifecycleEvent", "parse_event"]


class LifecycleEvent(StrEnum):
    """The ECS lifecycle events that can take a hook, in the order CodeDeploy runs them."""

    BEFORE_INSTALL = "BeforeInstall"
    AFTER_INSTALL = "AfterInstall"
    AFTER_ALLOW_TEST_TRAFFIC = "AfterAllowTestTraffic"
    BEFORE_ALLOW_TRAFFIC = "BeforeAllowTraffic"
    AFTER_ALLOW_TRAFFIC = "AfterAllowTraffic"

    @property
    def can_roll_back(self) -> bool:
        """A failed BeforeInstall hook fails the deployment but cannot roll it back."""
        return self is not LifecycleEvent.BEFORE_INSTALL

    @property
    def snake_name(self) -> str:
        """``AfterAllowTestTraffic`` -> ``after_allow_test_traffic`` (handler and event file)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.value).lower()

    @property
    def logical_id(self) -> str:
        """The template's logical ID of the function for this event."""
        return f"{self.value}Hook"

    @property
    def green_on_prod_listener(self) -> bool:
        """From AfterAllowTraffic on, the production listener serves the green tasks."""
        return self is LifecycleEvent.AFTER_ALLOW_TRAFFIC

    @classmethod
    def parse(cls, value: str) -> LifecycleEvent:
        """Accept ``AfterAllowTestTraffic`` or ``after_allow_test_traffic``; explain otherwise."""
        for event in cls:
            if value in (event.value, event.snake_name, event.logical_id):
                return event
        names = ", ".join(e.value for e in cls)
        raise ValueError(f"unknown lifecycle event {value!r}; expected one of: {names}")


@dataclass(frozen=True)
class HookInvocation:
    """One call of a hook: the ids CodeDeploy sent and the event this function serves.

    ``ecs`` is the Amazon ECS hook call (:class:`hooks.core.ecs_event.EcsCall`) when the
    gate is an ECS native blue/green deployment's; ``lifecycle_event`` is then its stage's
    counterpart.
    """

    deployment_id: str
    execution_id: str
    lifecycle_event: LifecycleEvent
    ecs: Any = None

    @classmethod
    def from_ids(cls, ids: Any) -> HookInvocation:
        """The invocation that ``ids`` names — ``{"deployment_id", "execution_id",
        "lifecycle_event"}``, as the state machine's input and the deadline watch carry it
        (data: it says whom to report to, nothing else); ``ValueError`` if it names none."""
        try:
            return cls(
                str(ids["deployment_id"]),
                str(ids["execution_id"]),
                LifecycleEvent(str(ids["lifecycle_event"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"no hook invocation in {ids!r:.200}: {exc}") from None

    def ids(self) -> dict[str, str]:
        """What :meth:`from_ids` reads."""
        return {
            "deployment_id": self.deployment_id,
            "execution_id": self.execution_id,
            "lifecycle_event": self.lifecycle_event.value,
        }

    def log_keys(self) -> dict[str, str]:
        keys = {
            "deployment_id": self.deployment_id,
            "lifecycle_event_hook_execution_id": self.execution_id,
            "lifecycle_event": self.lifecycle_event.value,
        }
        if self.ecs is not None:
            keys["ecs_stage"] = self.ecs.stage.value
        return keys


_REQUIRED = ("DeploymentId", "LifecycleEventHookExecutionId")


def parse_event(event: Any, lifecycle_event: LifecycleEvent) -> HookInvocation:
    """Validate a CodeDeploy hook event; raise :class:`InvalidEventError` naming what is wrong."""
    if not isinstance(event, Mapping):
        raise InvalidEventError(
            f"the event must be a JSON object with {' and '.join(_REQUIRED)}, "
            f"got {type(event).__name__}"
        )
    values: dict[str, str] = {}
    for key in _REQUIRED:
        if key not in event:
            keys = sorted(repr(k) if not isinstance(k, str) else k for k in event)
            raise InvalidEventError(f"the event has no {key!r}; got keys {keys}")
        value = event[key]
        if not isinstance(value, str):
            raise InvalidEventError(f"{key!r} must be a string, got {type(value).__name__}")
        if not value.strip():
            raise InvalidEventError(f"{key!r} is empty")
        values[key] = value.strip()
    return HookInvocation(
        deployment_id=values["DeploymentId"],
        execution_id=values["LifecycleEventHookExecutionId"],
        lifecycle_event=lifecycle_event,
    )
