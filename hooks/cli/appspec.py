"""An ECS AppSpec with this stack's hooks, for the lifecycle events that have suites."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from hooks.core.lifecycle import LifecycleEvent

PLACEHOLDER_ARN = "arn:aws:lambda:REGION:ACCOUNT_ID:function:CodeDeployHook_STACK-{event}"


def hook_arns_from_stack(stack_name: str, client: Any = None) -> dict[LifecycleEvent, str]:
    """The hook ARNs from the stack's outputs (``<LogicalId>Arn``)."""
    from hooks.core.exceptions import ConfigError

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
