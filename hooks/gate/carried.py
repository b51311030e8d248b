"""What an ECS gate carries between its ``IN_PROGRESS`` calls: its progress, sealed.

A gate longer than one Lambda run continues: suites that passed are carried in
``hookDetails`` and the rest run on the next call, until the gate's own budget is spent.
The progress is data that crossed a boundary (it comes back from ECS): it opens only with
the stack's key, for this execution, stage and plan — else the gate starts again.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from hooks.aws.signing import digest, open_sealed, seal
from hooks.core.ecs_event import EcsCall
from hooks.core.exceptions import SealError

__all__ = ["PURPOSE", "STATE_KEY", "GateState", "now", "plan_digest"]

log = logging.getLogger(__name__)

#: hookDetails is sent back by ECS: kept well below any size limit.
MAX_DETAILS_BYTES = 8192
#: The key under which Greenlight keeps its progress in hookDetails.
STATE_KEY = "greenlight"
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
    return digest(plan.describe()) if plan is not None else ""


def now() -> float:
    return time.time()
