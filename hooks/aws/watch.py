"""The deadline watch: a fail-safe that does not depend on how a hook was invoked.

Lambda applies a function's ``OnFailure`` destination to asynchronous invocations only, and
AWS does not document how CodeDeploy invokes a hook. So a CodeDeploy hook, as it starts,
arms a one-time EventBridge Scheduler schedule for its own end plus a margin, which invokes
the fail-safe with the hook's ids; once it has reported (or handed its plan to the state
machine, which reports) it disarms it. A hook killed before either leaves the schedule
armed, and when it fires the fail-safe reads the lifecycle event: if it still waits for a
verdict, it reports ``Failed``. ``OnFailure`` stays the fast path; this is the sure one.

Arming runs beside the hook's work (a thread), never in its way: a watch that cannot be
armed is logged and the hook goes on. The schedule deletes itself after it fires.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from hooks.core.lifecycle import HookInvocation

__all__ = ["MARGIN", "SOURCE", "Watch", "schedule_name"]

log = logging.getLogger(__name__)

#: What a schedule's record says it is (the fail-safe reads records of several sources).
SOURCE = "greenlight.watch"
#: Seconds after the hook's own end at which the watch fires.
MARGIN = 60.0
_VARIABLES = ("GREENLIGHT_WATCH_GROUP", "GREENLIGHT_FAILSAFE_ARN", "GREENLIGHT_WATCH_ROLE_ARN")


def schedule_name(invocation: HookInvocation) -> str:
    """One schedule per hook execution (a duplicate invocation finds it armed)."""
    ids = f"{invocation.deployment_id}/{invocation.execution_id}"
    return f"greenlight-{hashlib.sha256(ids.encode()).hexdigest()[:40]}"


class Watch:
    """Arms and disarms one hook execution's schedule; every call is bounded and quiet."""

    def __init__(self, client: Callable[[], Any], group: str, target: str, role: str) -> None:
        self._client = client
        self.group, self.target, self.role = group, target, role
        self._arming: threading.Thread | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], client: Callable[[], Any]) -> Watch | None:
        """The stack's watch (its three variables set), else None: no watch to arm."""
        values = [(env.get(name) or "").strip() for name in _VARIABLES]
        return cls(client, *values) if all(values) else None

    def arm(self, invocation: HookInvocation, function: str, seconds: float) -> None:
        """Start arming, in the background, a schedule ``seconds`` + the margin from now."""
        at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds + MARGIN)
        self._arming = threading.Thread(
            target=self._arm, args=(invocation, function, at), name="greenlight-watch", daemon=True
        )
        self._arming.start()

    def _arm(self, invocation: HookInvocation, function: str, at: datetime.datetime) -> None:
        record = {
            "source": SOURCE,
            "function": function,
            "due": at.isoformat(timespec="seconds"),
            "invocation": invocation.ids(),
        }
        try:
            self._client().create_schedule(
                Name=schedule_name(invocation),
                GroupName=self.group,
                ScheduleExpression=f"at({at:%Y-%m-%dT%H:%M:%S})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={"Arn": self.target, "RoleArn": self.role, "Input": json.dumps(record)},
                Description=f"Greenlight: report Failed if {function} has not reported",
            )
        except Exception as exc:
            if _code(exc) == "ConflictException":
                return  # an earlier invocation of the same hook armed it
            log.warning("the deadline watch could not be armed (the hook goes on): %s", exc)

    def disarm(self, invocation: HookInvocation, seconds: float) -> None:
        """Delete the schedule: the hook has reported or handed off. Waits for the arming at
        most ``seconds``; what it cannot do in time is logged (the fail-safe then finds the
        event complete, and says so)."""
        if self._arming is not None:
            self._arming.join(max(seconds, 0.0))
            if self._arming.is_alive():
                log.warning("the deadline watch was still being armed: it is left to expire")
                return
        try:
            self._client().delete_schedule(Name=schedule_name(invocation), GroupName=self.group)
        except Exception as exc:
            if _code(exc) != "ResourceNotFoundException":
                log.warning("the deadline watch could not be disarmed: %s", exc)


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
