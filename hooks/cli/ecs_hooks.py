"""``greenlight ecs-hooks``: the ``lifecycleHooks`` block of an ECS service's deployment
configuration."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hooks.adapters.ecs import PREFERRED_STAGES, lifecycle_hooks
from hooks.cli.common import (
    EXIT_OK,
    UsageError,
    given,
)
from hooks.cli.local import patched_env
from hooks.core.ecs_event import EcsStage
from hooks.core.settings import Settings
from hooks.gate.evaluate import planned_events
from hooks.gate.plan import PlanFile
from hooks.suites.registry import discover

__all__ = ["ecs_hooks_command", "register"]


def register(sub: Any) -> None:
    """The ``ecs-hooks`` command's arguments."""
    ecs_hooks = sub.add_parser(
        "ecs-hooks",
        help="print the lifecycleHooks block of an ECS service's deploymentConfiguration",
    )
    ecs_hooks.add_argument("--stack-name", help="read the ARNs from this stack's outputs")
    ecs_hooks.add_argument("--hook-arn", default="ECS_HOOK_FUNCTION_ARN")
    ecs_hooks.add_argument("--role-arn", default="ECS_HOOK_INVOKE_ROLE_ARN")
    ecs_hooks.add_argument(
        "--stage",
        action="append",
        default=[],
        help="a lifecycle stage (repeat); default: "
        "one stage per lifecycle event with suites planned",
    )
    ecs_hooks.add_argument("--suites-dir", type=Path)
    ecs_hooks.set_defaults(run=ecs_hooks_command)


def ecs_hooks_command(args: argparse.Namespace) -> int:

    hook_arn, role_arn = args.hook_arn, args.role_arn
    if args.stack_name:
        import boto3

        stacks = boto3.client("cloudformation").describe_stacks(StackName=args.stack_name)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks["Stacks"][0]["Outputs"]}
        hook_arn = outputs.get("EcsHookArn", hook_arn)
        role_arn = outputs.get("EcsHookInvokeRoleArn", role_arn)
    try:
        stages = [EcsStage(s.upper()) for s in args.stage]
    except ValueError as exc:
        raise UsageError(f"{exc}; stages: {', '.join(s.value for s in EcsStage)}") from None
    if not stages:
        with patched_env(given({"GREENLIGHT_SUITES_DIR": args.suites_dir})):
            settings = Settings.from_env()
            events = planned_events(
                discover(settings.suites_dir), PlanFile.load(settings.plan_file), settings
            )
        stages = [PREFERRED_STAGES[e] for e in events]
    if not stages:
        raise UsageError("no lifecycle event has suites planned: pass --stage STAGE")
    print(json.dumps(lifecycle_hooks(hook_arn, role_arn, stages, None), indent=2))
    return EXIT_OK
