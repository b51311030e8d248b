"""Terminal output (colour only when asked) and AppSpec generation from stack outputs."""

from __future__ import annotations

import io

import boto3
from botocore.stub import Stubber

from hooks.cli.appspec import build_appspec, hook_arns_from_stack
from hooks.cli.console import Console
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import CheckResult, Status


class _Suite:
    name = "smoke"


def test_plain_output_has_words_and_no_escape_codes() -> None:
    stream = io.StringIO()
    console = Console(stream, color=False)
    console.on_check(_Suite(), CheckResult("health", Status.FAILED, 0.012, "status: got 500"))
    console.on_check(_Suite(), CheckResult("version", Status.PASSED, 0.003))
    out = stream.getvalue()
    assert out == (
        "  FAIL    smoke / health (12 ms)\n      status: got 500\n"
        "  PASS    smoke / version (3 ms)\n"
    )
    assert "\033[" not in out


def test_colour_output_uses_marks_and_escape_codes() -> None:
    stream = io.StringIO()
    Console(stream, color=True).on_check(_Suite(), CheckResult("health", Status.PASSED, 0.001))
    assert "\033[32m✓\033[0m smoke / health" in stream.getvalue()


def test_colour_is_off_when_not_a_terminal() -> None:
    assert Console(io.StringIO()).color is False


def test_hook_arns_come_from_the_stack_outputs() -> None:
    client = boto3.client("cloudformation", region_name="us-east-1")
    arn = "arn:aws:lambda:us-east-1:123456789012:function:CodeDeployHook_gl-BeforeAllowTraffic"
    with Stubber(client) as stub:
        stub.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "gl",
                        "CreationTime": "2026-01-01T00:00:00Z",
                        "StackStatus": "CREATE_COMPLETE",
                        "Outputs": [
                            {"OutputKey": "BeforeAllowTrafficHookArn", "OutputValue": arn},
                            {"OutputKey": "AppSpecHooks", "OutputValue": "Hooks: ..."},
                        ],
                    }
                ]
            },
            {"StackName": "gl"},
        )
        arns = hook_arns_from_stack("gl", client)
    assert arns == {LifecycleEvent.BEFORE_ALLOW_TRAFFIC: arn}
    spec = build_appspec([LifecycleEvent.BEFORE_ALLOW_TRAFFIC], arns, container_port="8080")
    assert spec["Hooks"] == [{"BeforeAllowTraffic": arn}]
    props = spec["Resources"][0]["TargetService"]["Properties"]
    assert props["LoadBalancerInfo"]["ContainerPort"] == 8080
