"""Rehearse an Amazon ECS native blue/green deployment's hook calls against local builds.

ECS's stage order, through the real ECS handler: the stages a hook is configured for (one
per lifecycle event with suites planned, as ``greenlight ecs-hooks`` prints them), each
canary step's ``PRE_PRODUCTION_TRAFFIC_SHIFT`` and ``PRODUCTION_TRAFFIC_SHIFT`` with its
weights, ``IN_PROGRESS`` answers called again with their ``hookDetails`` (at once: a
rehearsal does not wait ``callBackDelay``), and on ``FAILED`` the rollback's calls, which
the hook answers without testing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hooks.adapters.ecs import PREFERRED_STAGES, handle_ecs
from hooks.adapters.handlers import ecs_hook, ecs_runtime
from hooks.cli.console import Console
from hooks.cli.local import LocalContext, attach, patched_env, prepare_aws, urls_env
from hooks.core.ecs_event import EcsStage
from hooks.core.settings import Settings
from hooks.evidence.reports import CaptureReport
from hooks.gate.evaluate import planned_events
from hooks.gate.plan import PlanFile
from hooks.suites.registry import discover

__all__ = [
    "ACCOUNT",
    "BLUE",
    "DEPLOYMENT",
    "GREEN",
    "MAX_CALLS",
    "SERVICE",
    "Call",
    "EcsRehearsal",
    "RollingBack",
    "event",
    "plan_of_calls",
    "rehearse_ecs",
]

ACCOUNT = "arn:aws:ecs:us-east-1:123456789012"
SERVICE = f"{ACCOUNT}:service/rehearsal/service"
BLUE = f"{ACCOUNT}:service-revision/rehearsal/service/1"
GREEN = f"{ACCOUNT}:service-revision/rehearsal/service/2"
DEPLOYMENT = f"{ACCOUNT}:service-deployment/rehearsal/service/rehearsal"
#: Calls of one stage at most (a rehearsal stops where ECS would go on to its budget).
MAX_CALLS = 20


@dataclass
class Call:
    stage: EcsStage
    production_weight: float
    answer: dict[str, Any]
    calls: int = 1


@dataclass
class EcsRehearsal:
    calls: list[Call] = field(default_factory=list)

    @property
    def shifted(self) -> bool:
        return all(c.answer.get("hookStatus") == "SUCCEEDED" for c in self.calls)


def event(stage: EcsStage, test: float, production: float, details: Any = None) -> dict[str, Any]:
    """An ECS hook call as ECS sends it (the green revision at these weights)."""
    return {
        "executionId": f"rehearsal-{stage.value.lower()}-{production:g}",
        "lifecycleStage": stage.value,
        "resourceArn": DEPLOYMENT,
        "executionDetails": {
            "serviceArn": SERVICE,
            "targetServiceRevisionArn": GREEN,
            "testTrafficWeights": {GREEN: test, BLUE: 100 - test},
            "productionTrafficWeights": {GREEN: production, BLUE: 100 - production},
        },
        "hookDetails": details or {},
    }


def plan_of_calls(
    stages: set[EcsStage], canary: Sequence[float]
) -> list[tuple[EcsStage, float, float]]:
    """(stage, test weight, production weight) in ECS's order, canary steps included."""
    order: list[tuple[EcsStage, float, float]] = [
        (EcsStage.PRE_SCALE_UP, 0, 0),
        (EcsStage.POST_SCALE_UP, 0, 0),
        (EcsStage.TEST_TRAFFIC_SHIFT, 100, 0),
        (EcsStage.POST_TEST_TRAFFIC_SHIFT, 100, 0),
    ]
    before = 0.0
    for step in canary:
        order += [
            (EcsStage.PRE_PRODUCTION_TRAFFIC_SHIFT, 100, before),
            (EcsStage.PRODUCTION_TRAFFIC_SHIFT, 100, step),
        ]
        before = step
    order.append((EcsStage.POST_PRODUCTION_TRAFFIC_SHIFT, 100, 100))
    return [item for item in order if item[0] in stages]


def rehearse_ecs(
    prod_url: str,
    test_url: str,
    *,
    console: Console,
    timeout: float = 300.0,
    suites_dir: Path | None = None,
    canary: Sequence[float] = (10, 50, 100),
) -> EcsRehearsal:

    # Long: the rehearsal reads as the deployment it plays: one stage after another.
    overrides = {"GREENLIGHT_SUITES_DIR": str(suites_dir)} if suites_dir else {}
    with patched_env(overrides):
        settings = Settings.from_env()
        events = planned_events(
            discover(settings.suites_dir), PlanFile.load(settings.plan_file), settings
        )
        stages = {PREFERRED_STAGES[e] for e in events}
        prepare_aws("local")
        rehearsal = EcsRehearsal()
        console.line(
            console.bold(f"ECS rehearsal: blue (production) {prod_url}, green (test) {test_url}")
        )
        hooked = ", ".join(s.value for s in EcsStage if s in stages)
        console.line(
            f"hooked stages: {hooked}"
            if hooked
            else "no stage has suites planned: ECS would shift traffic with no gate"
        )
        for stage, test, production in plan_of_calls(stages, canary):
            capture = CaptureReport()
            attach(console.on_check, [capture])
            green_on_prod = stage in (
                EcsStage.PRODUCTION_TRAFFIC_SHIFT,
                EcsStage.POST_PRODUCTION_TRAFFIC_SHIFT,
            )
            label = f"{stage.value} (production {production:g}% green)"
            details: Any = None
            with patched_env(urls_env(test_url, prod_url, green_on_prod)):
                for number in range(1, MAX_CALLS + 1):
                    console.line(console.bold(label) + f" call {number}...")
                    answer = ecs_hook(
                        event(stage, test, production, details), LocalContext(timeout)
                    )
                    if answer.get("hookStatus") != "IN_PROGRESS":
                        break
                    details = answer["hookDetails"]
                    console.line(
                        f"  IN_PROGRESS: ECS calls again in {answer['callBackDelay']}s "
                        f"(the rehearsal calls at once) with {json.dumps(details)}"
                    )
            call = Call(stage, production, answer, number)
            rehearsal.calls.append(call)
            console.line(f"{label}: {console.verdict(_word(answer))}")
            if answer.get("hookStatus") != "SUCCEEDED":
                if capture.summary is not None:
                    console.failures(capture.summary)
                console.line(console.bold("ECS rolls back:") + " traffic returns to blue")
                for back in (EcsStage.TEST_TRAFFIC_SHIFT, EcsStage.PRODUCTION_TRAFFIC_SHIFT):
                    if back in stages:
                        # ECS says so itself: its service deployment reads ROLLBACK_IN_PROGRESS
                        answer = handle_ecs(
                            event(back, 0, 0),
                            LocalContext(timeout),
                            replace(ecs_runtime(), ecs_discovery=RollingBack()),
                        )
                        console.line(
                            f"{back.value} (rollback): {answer['hookStatus']} (not tested)"
                        )
                break
        outcome = (
            "traffic shifted to green: the deployment succeeds"
            if rehearsal.shifted
            else f"rolled back at {rehearsal.calls[-1].stage.value}"
        )
        console.line(console.bold("Outcome: ") + outcome)
        return rehearsal


class RollingBack:
    """The rehearsal's Amazon ECS while it rolls back: its service deployment says so."""

    def rolling_back(self, deployment_arn: str) -> bool:
        return True


def _word(answer: dict[str, Any]) -> str:
    return {"SUCCEEDED": "Succeeded", "FAILED": "Failed"}.get(
        str(answer.get("hookStatus")), str(answer.get("hookStatus"))
    )
