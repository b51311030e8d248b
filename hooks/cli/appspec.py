"""An ECS AppSpec with this stack's hooks, for the lifecycle events that have suites."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hooks.cli.common import (
    EXIT_OK,
    given,
    pair,
)
from hooks.cli.local import patched_env
from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.settings import Settings
from hooks.gate.evaluate import planned_events
from hooks.gate.plan import PlanFile
from hooks.suites.registry import discover

__all__ = [
    "PLACEHOLDER_ARN",
    "appspec_command",
    "build_appspec",
    "hook_arns_from_stack",
    "register",
    "render",
]

PLACEHOLDER_ARN = "arn:aws:lambda:REGION:ACCOUNT_ID:function:CodeDeployHook_STACK-{event}"


def hook_arns_from_stack(stack_name: str, client: Any = None) -> dict[LifecycleEvent, str]:
    """The hook ARNs from the stack's outputs (``<LogicalId>Arn``)."""

    if client is None:
        import boto3

        client = boto3.client("cloudformation")
    try:
        stacks = client.describe_stacks(StackName=stack_name)["Stacks"]
    except Exception as exc:
        raise ConfigError(
            f"cloudformation:DescribeStacks failed for {stack_name!r}: {exc}"
        ) from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    arns = {
        e: outputs[f"{e.logical_id}Arn"] for e in LifecycleEvent if f"{e.logical_id}Arn" in outputs
    }
    if not arns:
        raise ConfigError(f"stack {stack_name!r} has no Greenlight hook outputs (<Event>HookArn)")
    return arns


def build_appspec(
    events: Sequence[LifecycleEvent],
    arns: Mapping[LifecycleEvent, str],
    *,
    task_definition: str = "TASK_DEFINITION_ARN",
    container_name: str = "CONTAINER_NAME",
    container_port: int | str = "CONTAINER_PORT",
) -> dict[str, Any]:
    port: int | str = int(container_port) if str(container_port).isdigit() else container_port
    return {
        "version": 0.0,
        "Resources": [
            {
                "TargetService": {
                    "Type": "AWS::ECS::Service",
                    "Properties": {
                        "TaskDefinition": task_definition,
                        "LoadBalancerInfo": {
                            "ContainerName": container_name,
                            "ContainerPort": port,
                        },
                    },
                }
            }
        ],
        "Hooks": [
            {event.value: arns.get(event, PLACEHOLDER_ARN.format(event=event.value))}
            for event in LifecycleEvent
            if event in events
        ],
    }


def render(appspec: Mapping[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(appspec, indent=2)
    import yaml

    return yaml.safe_dump(dict(appspec), sort_keys=False, default_flow_style=False)


def register(sub: Any) -> None:
    """The ``appspec`` command's arguments."""
    appspec = sub.add_parser("appspec", help="print an ECS AppSpec wired to the hooks")
    appspec.add_argument("--stack-name", help="read hook ARNs from this stack's outputs")
    appspec.add_argument(
        "--hook",
        action="append",
        type=pair,
        default=[],
        metavar="EVENT=ARN",
        help="a hook ARN given explicitly (repeatable)",
    )
    appspec.add_argument("--task-definition", default="TASK_DEFINITION_ARN")
    appspec.add_argument("--container-name", default="CONTAINER_NAME")
    appspec.add_argument("--container-port", default="CONTAINER_PORT")
    appspec.add_argument("--suites-dir", type=Path)
    appspec.add_argument(
        "--all-events",
        action="store_true",
        help="include every hookable event, not only those with suites",
    )
    appspec.add_argument("--json", action="store_true", help="JSON instead of YAML")
    appspec.set_defaults(run=appspec_command)


def appspec_command(args: argparse.Namespace) -> int:

    arns = hook_arns_from_stack(args.stack_name) if args.stack_name else {}
    for key, arn in args.hook:
        arns[LifecycleEvent.parse(key)] = arn
    with patched_env(given({"GREENLIGHT_SUITES_DIR": args.suites_dir})):
        settings = Settings.from_env()
        if args.all_events:
            events = list(LifecycleEvent)
        else:
            catalog = discover(settings.suites_dir)
            events = planned_events(catalog, PlanFile.load(settings.plan_file), settings)
    events = sorted(set(events) | set(arns), key=list(LifecycleEvent).index)
    if not events:
        raise ConfigError(
            f"no lifecycle event has suites planned in {settings.suites_dir}: add suites or "
            f"a plan, or pass --all-events"
        )
    appspec = build_appspec(
        events,
        arns,
        task_definition=args.task_definition,
        container_name=args.container_name,
        container_port=args.container_port,
    )
    print(render(appspec, args.json), end="" if not args.json else "\n")
    missing = [e.value for e in events if e not in arns]
    if missing:
        print(
            f"# placeholders for {', '.join(missing)}: pass --stack-name or --hook EVENT=ARN",
            file=sys.stderr,
        )
    return EXIT_OK
