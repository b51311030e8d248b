"""Rehearse a deployment's hooks in CodeDeploy's order against local blue and green builds."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hooks.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
)
from hooks.cli.console import Console
from hooks.cli.evidence_store import DirectoryBucket, evidence_dir
from hooks.cli.local import (
    LOCAL_BUCKET,
    LOCAL_ENV,
    LocalContext,
    add_evidence_argument,
    attach,
    concluded,
    import_handler,
    local_deployment_id,
    patched_env,
    prepare_aws,
    run_state_machine_here,
    urls_env,
)
from hooks.cli.rehearse_ecs import rehearse_ecs
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.settings import Settings
from hooks.core.target import Target
from hooks.core.verdict import plural
from hooks.evidence.reports import CaptureReport, EvidenceBundle
from hooks.gate.evaluate import planned_events
from hooks.gate.plan import PlanFile
from hooks.suites.registry import discover

__all__ = [
    "REHEARSAL_DEPLOYMENT",
    "Rehearsal",
    "Step",
    "register",
    "rehearse",
    "rehearse_command",
]

REHEARSAL_DEPLOYMENT = "d-REHEARSAL"


@dataclass
class Step:
    event: LifecycleEvent
    result: dict[str, Any] | None = None  # None: no suites planned

    @property
    def failed(self) -> bool:
        return self.result is not None and self.result["verdict"] != "Succeeded"


@dataclass
class Rehearsal:
    steps: list[Step] = field(default_factory=list)

    @property
    def failed_step(self) -> Step | None:
        return next((s for s in self.steps if s.failed), None)

    @property
    def shifted(self) -> bool:
        return self.failed_step is None

    def outcome(self) -> str:
        step = self.failed_step
        if step is None:
            return "traffic shifted to green: the deployment succeeds"
        assert step.result is not None
        reason = step.result["reason"]
        if not step.event.can_roll_back:
            return (
                f"deployment failed at {step.event}: {reason} (a BeforeInstall failure does "
                f"not roll back: no green tasks exist yet, blue keeps serving)"
            )
        return f"rolled back at {step.event}: {reason}"


def rehearse(
    prod_url: str,
    test_url: str,
    *,
    console: Console,
    timeout: float = 300.0,
    suites_dir: Path | None = None,
    evidence: Path | None = None,
) -> Rehearsal:
    """Run every planned hook in order through the real handlers; stop at the first failure.
    Each hook's evidence goes to the laptop's evidence folder (``evidence``)."""
    # Long: the rehearsal reads as the deployment it plays: one event after another.
    store = DirectoryBucket(evidence_dir(evidence))
    deployment = REHEARSAL_DEPLOYMENT + local_deployment_id().removeprefix("d-LOCAL")
    overrides: dict[str, str | None] = dict(LOCAL_ENV)
    if suites_dir:
        overrides["GREENLIGHT_SUITES_DIR"] = str(suites_dir)
    with patched_env(overrides):
        settings = Settings.from_env()
        catalog = discover(settings.suites_dir)
        events = planned_events(catalog, PlanFile.load(settings.plan_file), settings)
        prepare_aws("local")
        rehearsal = Rehearsal()
        console.line(
            console.bold(f"Rehearsal: blue (production) {prod_url}, green (test) {test_url}")
        )
        for event in LifecycleEvent:
            step = Step(event)
            rehearsal.steps.append(step)
            if event not in events:
                console.line(
                    f"{event.value:<22} no suite planned: not in the AppSpec, CodeDeploy goes on"
                )
                continue
            green_on_prod = event.green_on_prod_listener
            capture = CaptureReport()
            reporters = [capture, EvidenceBundle(store, LOCAL_BUCKET)]
            machine = run_state_machine_here(
                attach(console.on_check, reporters), timeout, console.line, store
            )
            console.line(console.bold(f"{event.value:<22}") + " running hook...")
            event_data = {
                "DeploymentId": deployment,
                "LifecycleEventHookExecutionId": f"rehearsal-{event.snake_name}",
            }
            with patched_env(urls_env(test_url, prod_url, green_on_prod)):
                handler = import_handler(f"hooks.adapters.handlers.{event.snake_name}")
                step.result = concluded(machine, handler(event_data, LocalContext(timeout)))
            result = step.result
            suites = (
                ", ".join(sorted({s.name for s in capture.summary.run.suites}))
                if (capture.summary is not None and capture.summary.run is not None)
                else ""
            )
            console.line(
                f"{event.value:<22} {console.verdict(result['verdict'])} "
                f"({plural(result['checks'], 'check')} in {result['duration']:.2f}s; "
                f"suites: {suites or '-'})"
            )
            if step.failed:
                if capture.summary is not None:
                    console.failures(capture.summary)
                order = list(LifecycleEvent)
                remaining = [e.value for e in order[order.index(event) + 1 :]]
                if remaining:
                    console.line(f"{'':<22} not run: {', '.join(remaining)} (deployment stopped)")
                break
        console.line(console.bold("Outcome: ") + rehearsal.outcome())
        return rehearsal


def register(sub: Any) -> None:
    """The ``rehearse`` command's arguments."""
    rehearse = sub.add_parser("rehearse", help="rehearse a deployment's hooks in order")
    rehearse.add_argument("--prod-url", required=True, help="the blue (production) build")
    rehearse.add_argument("--test-url", required=True, help="the green (new) build")
    rehearse.add_argument("--suites-dir", type=Path)
    rehearse.add_argument("--timeout", type=float, default=300.0, help="seconds per hook")
    rehearse.add_argument(
        "--protocol",
        choices=["codedeploy", "ecs"],
        default="codedeploy",
        help="CodeDeploy's lifecycle events, or Amazon ECS native blue/green stages",
    )
    rehearse.add_argument(
        "--canary",
        default="10,50,100",
        help="ECS: production traffic steps in percent (default 10,50,100)",
    )
    add_evidence_argument(rehearse)
    rehearse.set_defaults(run=rehearse_command)


def rehearse_command(args: argparse.Namespace) -> int:

    for url in (args.prod_url, args.test_url):
        Target(url=url)  # a malformed URL is a usage error
    if args.protocol == "ecs":
        try:
            steps = [float(s) for s in args.canary.split(",") if s.strip()]
        except ValueError:
            raise UsageError(f"--canary {args.canary!r}: percentages, e.g. 10,50,100") from None
        if not steps or steps[-1] != 100 or any(not 0 < s <= 100 for s in steps):
            raise UsageError(f"--canary {args.canary!r}: rising percentages ending at 100")
        ecs = rehearse_ecs(
            args.prod_url,
            args.test_url,
            console=Console(),
            timeout=args.timeout,
            suites_dir=args.suites_dir,
            canary=steps,
        )
        return EXIT_OK if ecs.shifted else EXIT_FAILED
    result = rehearse(
        args.prod_url,
        args.test_url,
        console=Console(),
        timeout=args.timeout,
        suites_dir=args.suites_dir,
        evidence=args.evidence,
    )
    return EXIT_OK if result.shifted else EXIT_FAILED
