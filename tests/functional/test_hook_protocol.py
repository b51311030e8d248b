"""The protocol guarantees of the hook, one test (or more) each.

CodeDeploy is a real botocore client under a Stubber (parameters are validated against
the service model; any unexpected call fails the test). Targets are real loopback servers.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from hooks.adapters.hook import handle
from hooks.aws.codedeploy import CodeDeployCallback
from hooks.cli.local import LocalContext
from hooks.core.exceptions import InvalidEventError
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.log import get_logger
from hooks.gate.summary import Runtime
from tests.helpers import (
    closed_port_url,
    http_server,
    load_event,
    reply,
    silent_server,
)

EVENT = load_event("after_allow_test_traffic")
AATT = LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC


def expect_report(stubber: Stubber, status: str, event: dict[str, Any] = EVENT) -> None:
    stubber.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": event["LifecycleEventHookExecutionId"]},
        {
            "deploymentId": event["DeploymentId"],
            "lifecycleEventHookExecutionId": event["LifecycleEventHookExecutionId"],
            "status": status,
        },
    )


def run(
    callback: CodeDeployCallback,
    env: dict[str, str],
    *,
    seconds: float = 30,
    event: Any = EVENT,
    lifecycle_event: LifecycleEvent = AATT,
    **runtime: Any,
) -> dict[str, Any]:
    return handle(
        event,
        LocalContext(seconds),
        lifecycle_event,
        Runtime(protocol=callback, env=env, **runtime),
    )


@pytest.fixture
def reachability_env(tmp_path: Path) -> dict[str, str]:
    """No suite files: only the built-in reachability suite runs."""
    return {"GREENLIGHT_SUITES_DIR": str(tmp_path)}


def ok_server() -> Any:
    return http_server(lambda h: reply(h, 200, {"ok": True}))


# 1. The event is validated before anything else.
@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "no 'DeploymentId'"),
        ({"DeploymentId": "d-1"}, "no 'LifecycleEventHookExecutionId'"),
        ({"DeploymentId": "", "LifecycleEventHookExecutionId": "x"}, "'DeploymentId' is empty"),
        ({"DeploymentId": 7, "LifecycleEventHookExecutionId": "x"}, "must be a string"),
        (["DeploymentId"], "must be a JSON object"),
        (None, "must be a JSON object"),
    ],
)
def test_malformed_event_raises_a_typed_error_and_reports_nothing(
    callback: CodeDeployCallback, reachability_env: dict[str, str], event: Any, message: str
) -> None:
    # GIVEN an event without usable ids WHEN the hook runs THEN it raises, naming the key,
    # and makes no call (the Stubber has no responses queued, so any call would fail).
    with pytest.raises(InvalidEventError, match=message):
        run(callback, reachability_env, event=event)


# 2. Exactly one report, Succeeded or Failed.
def test_reachable_target_reports_succeeded_once(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, reachability_env: dict[str, str]
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    with ok_server() as url:
        result = run(callback, {**reachability_env, "GREENLIGHT_TARGET_URL": url})
    assert result["verdict"] == "Succeeded"
    assert result["report"] == "reported"
    assert result["counts"]["passed"] == 1


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_reports_failed(
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
    reachability_env: dict[str, str],
    status: int,
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    with http_server(lambda h: reply(h, status, {"error": "down"})) as url:
        result = run(callback, {**reachability_env, "GREENLIGHT_TARGET_URL": url})
    assert result["verdict"] == "Failed"
    assert f"answered {status}" in result["failed"][0]


def test_closed_port_reports_failed_naming_the_refusal(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, reachability_env: dict[str, str]
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    result = run(callback, {**reachability_env, "GREENLIGHT_TARGET_URL": closed_port_url()})
    assert result["verdict"] == "Failed"
    assert "connection refused" in result["failed"][0]


@pytest.mark.parametrize("lifecycle_event", list(LifecycleEvent))
def test_every_lifecycle_event_reports_through_the_same_path(
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
    reachability_env: dict[str, str],
    lifecycle_event: LifecycleEvent,
) -> None:
    event = load_event(lifecycle_event.snake_name)
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded", event)
    with ok_server() as url:
        result = run(
            callback,
            {**reachability_env, "GREENLIGHT_TARGET_URL": url},
            event=event,
            lifecycle_event=lifecycle_event,
        )
    assert result["lifecycle_event"] == lifecycle_event.value
    assert result["verdict"] == "Succeeded"


# 3. Any exception after parsing becomes a reported Failed with the reason.
def test_invalid_plan_file_becomes_failed_with_file_and_line(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, tmp_path: Path
) -> None:
    (tmp_path / "greenlight.yaml").write_text("version: 1\ndefaults:\n  concurency: 3\n")
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    with ok_server() as url:
        result = run(
            callback, {"GREENLIGHT_SUITES_DIR": str(tmp_path), "GREENLIGHT_TARGET_URL": url}
        )
    assert "greenlight.yaml:3" in result["reason"]
    assert "concurency" in result["reason"]


def test_invalid_environment_setting_becomes_failed(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, reachability_env: dict[str, str]
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    result = run(callback, {**reachability_env, "GREENLIGHT_CONCURRENCY": "many"})
    assert "GREENLIGHT_CONCURRENCY='many' is not a number" in result["reason"]


def test_a_reporter_that_raises_changes_nothing(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, reachability_env: dict[str, str]
) -> None:
    class Broken:
        def publish(self, summary: Any) -> None:
            raise OSError("disk full")

    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    with ok_server() as url:
        result = run(
            callback, {**reachability_env, "GREENLIGHT_TARGET_URL": url}, reporters=[Broken()]
        )
    assert result["verdict"] == "Succeeded"


def test_discovery_failure_becomes_failed(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, reachability_env: dict[str, str]
) -> None:
    class Exploding:
        def deployment(self, deployment_id: str) -> Any:
            raise RuntimeError("boom in discovery")

    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    result = run(callback, reachability_env, discovery=Exploding())
    assert result["verdict"] == "Failed"
    assert "RuntimeError while looking up the deployment" in result["reason"]
    assert "boom in discovery" in result["reason"]


# 4. The deadline: a hung target cannot keep the hook from reporting in time.
@pytest.mark.timing
def test_target_that_never_answers_reports_failed_before_the_deadline(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, reachability_env: dict[str, str]
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    context_seconds = 4.0
    with silent_server() as url:
        started = time.monotonic()
        result = run(
            callback,
            {**reachability_env, "GREENLIGHT_TARGET_URL": url, "GREENLIGHT_REQUEST_TIMEOUT": "60"},
            seconds=context_seconds,
        )
        elapsed = time.monotonic() - started
    assert result["verdict"] == "Failed"
    assert result["report"] == "reported"
    assert elapsed < context_seconds  # reported before the function's end
    assert result["counts"]["timed_out"] == 1
    assert "deadline" in result["reason"]


@pytest.mark.timing
def test_hung_work_outside_the_runner_is_named_at_the_deadline(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, reachability_env: dict[str, str]
) -> None:
    class Hanging:
        def deployment(self, deployment_id: str) -> Any:
            time.sleep(30)

    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    started = time.monotonic()
    result = run(callback, reachability_env, seconds=3, discovery=Hanging())
    assert time.monotonic() - started < 3
    assert result["reason"] == (
        "deadline reached while looking up the deployment (codedeploy:GetDeployment)"
    )


# 5. A duplicate run: CodeDeploy already has a status.
def test_already_completed_is_a_warning_and_a_normal_return(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, reachability_env: dict[str, str]
) -> None:
    _, stubber = codedeploy
    stubber.add_client_error(
        "put_lifecycle_event_hook_execution_status",
        service_error_code="LifecycleEventAlreadyCompletedException",
        service_message="The lifecycle event is already completed",
        http_status_code=400,
    )
    with ok_server() as url:
        result = run(callback, {**reachability_env, "GREENLIGHT_TARGET_URL": url})
    assert result["report"] == "already_completed"
    assert result["verdict"] == "Succeeded"


# 6. Throttling is retried; other errors are logged with the ids.
def test_throttling_is_retried_until_the_report_succeeds(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, reachability_env: dict[str, str]
) -> None:
    _, stubber = codedeploy
    for _ in range(2):
        stubber.add_client_error(
            "put_lifecycle_event_hook_execution_status",
            service_error_code="ThrottlingException",
            service_message="Rate exceeded",
            http_status_code=400,
        )
    expect_report(stubber, "Succeeded")
    with ok_server() as url:
        result = run(callback, {**reachability_env, "GREENLIGHT_TARGET_URL": url})
    assert result["report"] == "reported"


def test_invalid_execution_id_is_not_retried_and_is_logged_with_the_ids(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, reachability_env: dict[str, str]
) -> None:
    stream = io.StringIO()
    get_logger(stream=stream)
    _, stubber = codedeploy
    stubber.add_client_error(
        "put_lifecycle_event_hook_execution_status",
        service_error_code="InvalidLifecycleEventHookExecutionIdException",
        service_message="bad id",
        http_status_code=400,
    )
    with ok_server() as url:
        result = run(callback, {**reachability_env, "GREENLIGHT_TARGET_URL": url})
    assert result["report"] == "failed"
    errors = [json.loads(line) for line in stream.getvalue().splitlines()]
    failure = next(e for e in errors if "could not report" in e["message"])
    assert failure["deployment_id"] == EVENT["DeploymentId"]
    assert failure["lifecycle_event_hook_execution_id"] == EVENT["LifecycleEventHookExecutionId"]


# 7 and 8. A JSON summary is returned; every log line is JSON with the ids and the event.
def test_summary_is_json_and_every_log_line_carries_the_ids(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, reachability_env: dict[str, str]
) -> None:
    stream = io.StringIO()
    get_logger(stream=stream, level="DEBUG")
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    with ok_server() as url:
        result = run(callback, {**reachability_env, "GREENLIGHT_TARGET_URL": url})
    assert json.loads(json.dumps(result)) == result
    assert set(result) >= {"verdict", "counts", "duration", "failed"}
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) >= 3
    for line in lines:
        assert line["deployment_id"] == EVENT["DeploymentId"]
        assert line["lifecycle_event_hook_execution_id"] == EVENT["LifecycleEventHookExecutionId"]
        assert line["lifecycle_event"] == "AfterAllowTestTraffic"
    summary = lines[-1]
    assert summary["message"].startswith("greenlight Succeeded")
    assert summary["verdict"] == "Succeeded"


def test_a_planned_suite_that_does_not_exist_fails_listing_those_that_do(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, tmp_path: Path
) -> None:
    (tmp_path / "smoke.yaml").write_text(
        "name: smoke\nchecks:\n  - {name: a, request: {path: /}}\n"
    )
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    with ok_server() as url:
        result = run(
            callback,
            {
                "GREENLIGHT_SUITES_DIR": str(tmp_path),
                "GREENLIGHT_TARGET_URL": url,
                "GREENLIGHT_SUITES": "smoke,smoek",
            },
        )
    assert result["reason"] == "suites failed: smoek (2 suites, 1 check: 1 passed)"
    assert result["configuration_error"] is True
    (line,) = result["failed"]
    assert "planned suite 'smoek' does not exist (source: env GREENLIGHT_SUITES)" in line
    assert "suites found in" in line
    assert line.endswith("reachability, smoke")
    assert result["counts"]["passed"] == 1  # smoke itself ran and passed


def test_a_caller_without_a_lambda_context_still_gets_a_report(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, reachability_env: dict[str, str]
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    with ok_server() as url:
        result = handle(
            EVENT,
            None,
            AATT,
            Runtime(protocol=callback, env={**reachability_env, "GREENLIGHT_TARGET_URL": url}),
        )
    assert result["report"] == "reported"


def test_suites_can_be_planned_by_tag(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, tmp_path: Path
) -> None:
    for name, tags in (("a", "[smoke]"), ("b", "[smoke, api]"), ("c", "[api]")):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: {name}\ntags: {tags}\nchecks:\n  - {{name: x, request: {{path: /}}}}\n"
        )
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    expect_report(stubber, "Failed")
    env = {"GREENLIGHT_SUITES_DIR": str(tmp_path)}
    with ok_server() as url:
        env["GREENLIGHT_TARGET_URL"] = url
        tagged = run(callback, {**env, "GREENLIGHT_SUITES": "tag:smoke"})
        missing = run(callback, {**env, "GREENLIGHT_SUITES": "tag:nightly"})
    assert tagged["suites"] == 2
    assert tagged["checks"] == 2
    assert "planned suite 'tag:nightly' does not exist" in missing["failed"][0]
