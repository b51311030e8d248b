"""The deadline watch: a schedule each CodeDeploy hook arms as it starts and deletes once it
has reported, so a hook killed however it was invoked is still reported by the fail-safe.

EventBridge Scheduler is moto's; CodeDeploy is a Stubber-checked client (moto lacks the
report) or the recording endpoint of tests.wire.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from hooks.adapters.failsafe import FailSafe, event_status
from hooks.adapters.hook import handle
from hooks.aws.codedeploy import CodeDeployCallback
from hooks.aws.watch import MARGIN, SOURCE, Watch, schedule_name
from hooks.cli.local import LocalContext
from hooks.core.deadline import Deadline
from hooks.core.lifecycle import HookInvocation, LifecycleEvent
from hooks.gate.summary import Runtime
from tests.functional.test_hook_protocol import EVENT, expect_report
from tests.helpers import SUITES, http_server, reply
from tests.wire import deployment_target

GROUP = "greenlight-test"
FAILSAFE = "arn:aws:lambda:us-east-1:123456789012:function:Greenlight_test-FailSafe"
ROLE = "arn:aws:iam::123456789012:role/greenlight-watch"
INVOCATION = HookInvocation(
    EVENT["DeploymentId"],
    EVENT["LifecycleEventHookExecutionId"],
    LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
)
WATCH_ENV = {
    "GREENLIGHT_WATCH_GROUP": GROUP,
    "GREENLIGHT_FAILSAFE_ARN": FAILSAFE,
    "GREENLIGHT_WATCH_ROLE_ARN": ROLE,
}


@pytest.fixture
def scheduler() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("scheduler", region_name="us-east-1")
        client.create_schedule_group(Name=GROUP)
        yield client


def schedules(client: Any) -> list[dict[str, Any]]:
    listed = client.list_schedules(GroupName=GROUP)["Schedules"]
    return [client.get_schedule(Name=s["Name"], GroupName=GROUP) for s in listed]


def test_a_watch_is_armed_for_the_hooks_end_plus_a_margin_and_disarmed(scheduler: Any) -> None:
    watch = Watch(lambda: scheduler, GROUP, FAILSAFE, ROLE)
    before = datetime.datetime.now(datetime.UTC)
    watch.arm(INVOCATION, "CodeDeployHook_test-AfterAllowTestTraffic", 600)
    watch.arm(INVOCATION, "CodeDeployHook_test-AfterAllowTestTraffic", 600)  # a duplicate
    assert watch._arming is not None
    watch._arming.join(10)
    (armed,) = schedules(scheduler)
    assert armed["Name"] == schedule_name(INVOCATION)
    at = datetime.datetime.strptime(armed["ScheduleExpression"], "at(%Y-%m-%dT%H:%M:%S)")
    due = at.replace(tzinfo=datetime.UTC) - before
    assert 600 + MARGIN - 5 <= due.total_seconds() <= 600 + MARGIN + 5
    assert armed["Target"]["Arn"] == FAILSAFE
    assert armed["Target"]["RoleArn"] == ROLE
    record = json.loads(armed["Target"]["Input"])
    assert record["source"] == SOURCE
    assert record["invocation"] == {
        "deployment_id": INVOCATION.deployment_id,
        "execution_id": INVOCATION.execution_id,
        "lifecycle_event": "AfterAllowTestTraffic",
    }
    watch.disarm(INVOCATION, 5)
    assert schedules(scheduler) == []
    watch.disarm(INVOCATION, 5)  # already gone: quiet


def test_without_its_three_settings_no_watch_is_armed() -> None:
    assert Watch.from_env({}, lambda: None) is None
    assert Watch.from_env({**WATCH_ENV, "GREENLIGHT_WATCH_ROLE_ARN": ""}, lambda: None) is None
    assert Watch.from_env(WATCH_ENV, lambda: None) is not None


def _run_hook(scheduler: Any, callback: CodeDeployCallback, url: str) -> dict[str, Any]:
    env = {
        **WATCH_ENV,
        "GREENLIGHT_SUITES_DIR": str(SUITES),
        "GREENLIGHT_TARGET_URL": url,
    }
    runtime = Runtime(protocol=callback, env=env, scheduler=lambda: scheduler)
    return handle(EVENT, LocalContext(30), LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC, runtime)


def test_a_hook_that_reported_leaves_no_watch(
    scheduler: Any, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    with http_server(lambda h: reply(h, 200, {})) as url:
        result = _run_hook(scheduler, callback, url)
    assert result["report"] == "reported"
    assert schedules(scheduler) == []


def test_a_report_that_failed_leaves_the_watch_armed(
    scheduler: Any, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    """CodeDeploy could not be told: the watch stays, and the fail-safe tries when it fires."""
    _, stubber = codedeploy
    stubber.add_client_error(
        "put_lifecycle_event_hook_execution_status", "DeploymentDoesNotExistException", "gone"
    )
    with http_server(lambda h: reply(h, 200, {})) as url:
        result = _run_hook(scheduler, callback, url)
    assert result["report"] == "failed"
    (armed,) = schedules(scheduler)
    assert armed["Name"] == schedule_name(INVOCATION)


def _watch_record(scheduler: Any) -> dict[str, Any]:
    watch = Watch(lambda: scheduler, GROUP, FAILSAFE, ROLE)
    watch.arm(INVOCATION, "CodeDeployHook_test-AfterAllowTestTraffic", 0)
    assert watch._arming is not None
    watch._arming.join(10)
    (armed,) = schedules(scheduler)
    record: dict[str, Any] = json.loads(armed["Target"]["Input"])
    return record


@pytest.mark.parametrize(("status", "reports"), [("InProgress", True), ("Succeeded", False)])
def test_a_fired_watch_reports_failed_only_while_the_event_waits(
    scheduler: Any, codedeploy: tuple[Any, Stubber], status: str, reports: bool
) -> None:
    """GIVEN the input a fired watch hands the fail-safe
    WHEN the lifecycle event still waits (the hook was killed) or has its verdict
    THEN the fail-safe reports Failed once, or leaves the verdict as it is."""
    record = _watch_record(scheduler)
    client, stubber = codedeploy
    stubber.add_response(
        "list_deployment_targets",
        {"targetIds": ["shop-cluster:shop"]},
        {"deploymentId": INVOCATION.deployment_id},
    )
    stubber.add_response(
        "get_deployment_target",
        deployment_target("AfterAllowTestTraffic", status),
        {"deploymentId": INVOCATION.deployment_id, "targetId": "shop-cluster:shop"},
    )
    if reports:
        expect_report(stubber, "Failed")
    safe = FailSafe(
        CodeDeployCallback(client, sleep=lambda s: None),
        status=lambda invocation: event_status(client, invocation),
    )
    result = safe.handle(record, Deadline.in_seconds(30))
    stubber.assert_no_pending_responses()
    if reports:
        assert result["verdict"] == "Failed"
        assert result["reason"].startswith("the hook had not reported when its deadline watch")
    else:
        assert result["verdict"] == "already reported"
