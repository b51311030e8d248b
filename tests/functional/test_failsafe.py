"""The fail-safe: a hook killed before it reports costs seconds, not CodeDeploy's hour.

A real hook process is killed mid-run (SIGKILL, as Lambda ends a function out of memory or
out of time); Lambda's destination record for it (the documented shape) goes to the
fail-safe, which reports Failed exactly once. CodeDeploy is a Stubber-checked client or a
recording loopback endpoint; the dead-letter queue is moto's SQS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from hooks.adapters.failsafe import FailSafe, event_status, handler, read_record
from hooks.aws.codedeploy import CodeDeployCallback
from hooks.core.deadline import Deadline
from tests.functional.test_hook_protocol import EVENT, expect_report
from tests.helpers import ROOT, http_server, silent_server
from tests.wire import SCRIPT, FakeCodeDeploy

ARN = "arn:aws:lambda:us-east-1:123456789012:function:CodeDeployHook_greenlight-{event}:$LATEST"
RESPONSES = {
    "out of memory": {
        "errorType": "Runtime.OutOfMemory",
        "errorMessage": "RequestId: 7c1 Error: Runtime exited with error: signal: killed",
    },
    "timeout": {"errorMessage": "2026-11-26T10:00:00.000Z 7c1 Task timed out after 600.00 seconds"},
    "crash": {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: 7c1 Error: Runtime exited with error: exit status 134",
    },
}


def record(
    payload: Any,
    response: dict[str, Any],
    event: str = "AfterAllowTestTraffic",
    condition: str = "RetriesExhausted",
) -> dict[str, Any]:
    """An asynchronous invocation's OnFailure record, as Lambda sends it to a destination."""
    return {
        "version": "1.0",
        "timestamp": "2026-11-26T10:00:01.568Z",
        "requestContext": {
            "requestId": "7c1e4b46-b738-4a1f-8880-a18cdf61200e",
            "functionArn": ARN.format(event=event),
            "condition": condition,
            "approximateInvokeCount": 1,
        },
        "requestPayload": payload,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": response,
    }


@pytest.fixture
def queue() -> Iterator[tuple[Any, str]]:
    with mock_aws():
        sqs = boto3.client("sqs")
        yield sqs, sqs.create_queue(QueueName="greenlight-failsafe-dlq")["QueueUrl"]


def kept(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


@pytest.mark.timing
def test_a_hook_killed_mid_run_is_reported_failed_once_by_the_fail_safe(
    codedeploy: tuple[Any, Stubber], queue: tuple[Any, str]
) -> None:
    """The whole path: the hook dies without a word to CodeDeploy; the fail-safe speaks."""
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, silent_server() as hanging:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GREENLIGHT_", "AWS_"))} | {
            "AWS_ENDPOINT_URL_CODEDEPLOY": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "GREENLIGHT_TARGET_URL": hanging,  # the suites wait: the hook is mid-run
            "GREENLIGHT_SUITES_DIR": str(ROOT / "test_suites" / "examples"),
        }
        hook = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SCRIPT,
                "hooks.adapters.handlers.after_allow_test_traffic",
                str(ROOT / "events" / "after_allow_test_traffic.json"),
                "60",
                "1",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        time.sleep(2.0)
        os.killpg(hook.pid, signal.SIGKILL)  # what Lambda does at its limit
        hook.wait(10)
    assert fake.requests == []  # killed: nothing reached CodeDeploy

    client, stubber = codedeploy
    expect_report(stubber, "Failed")
    sqs, url = queue
    safe = FailSafe(CodeDeployCallback(client, sleep=lambda s: None), sqs, url)
    started = time.monotonic()
    result = safe.handle(record(EVENT, RESPONSES["out of memory"]), Deadline.in_seconds(30))
    assert time.monotonic() - started < 5
    assert result["reported"] is True
    assert result["reason"].startswith("the hook ran out of memory before it reported")
    assert "CodeDeployHook_greenlight-AfterAllowTestTraffic" in result["reason"]
    stubber.assert_no_pending_responses()  # exactly one report
    assert kept(sqs, url) == []


@pytest.mark.parametrize(
    ("kind", "cause"),
    [("out of memory", "ran out of memory"), ("timeout", "timed out"), ("crash", "crashed")],
)
def test_the_reason_names_how_the_hook_ended(kind: str, cause: str) -> None:
    crash = read_record(record(EVENT, RESPONSES[kind], event="BeforeAllowTraffic"))
    assert crash.cause == cause
    assert crash.invocation is not None
    assert crash.invocation.deployment_id == EVENT["DeploymentId"]
    assert crash.invocation.lifecycle_event.value == "BeforeAllowTraffic"
    assert RESPONSES[kind]["errorMessage"] in crash.reason


def test_an_expired_event_is_reported_too() -> None:
    crash = read_record(record(EVENT, {}, condition="EventAgeExceeded"))
    assert "expired" in crash.reason


@pytest.mark.timing
def test_a_hook_that_reported_before_it_died_is_left_alone(
    codedeploy: tuple[Any, Stubber], queue: tuple[Any, str]
) -> None:
    client, stubber = codedeploy
    stubber.add_client_error(
        "put_lifecycle_event_hook_execution_status",
        "LifecycleEventAlreadyCompletedException",
        "already completed",
    )
    sqs, url = queue
    safe = FailSafe(CodeDeployCallback(client, sleep=lambda s: None), sqs, url)
    result = safe.handle(record(EVENT, RESPONSES["timeout"]), Deadline.in_seconds(30))
    assert result["report"] == "already_completed"
    assert result["verdict"] == "already reported"  # never a Failed over its verdict
    assert result["reported"] is False
    assert kept(sqs, url) == []


@pytest.mark.timing
@pytest.mark.parametrize(
    "payload",
    [{}, {"DeploymentId": "d-1"}, "not an event", None],
    ids=["empty", "no execution id", "text", "none"],
)
def test_a_record_that_cannot_be_reported_goes_to_the_queue_without_a_retry(
    payload: Any, codedeploy: tuple[Any, Stubber], queue: tuple[Any, str]
) -> None:
    client, _ = codedeploy  # no response queued: any call to CodeDeploy fails the test
    sqs, url = queue
    safe = FailSafe(CodeDeployCallback(client, sleep=lambda s: None), sqs, url)
    result = safe.handle(record(payload, RESPONSES["crash"]), Deadline.in_seconds(30))
    assert result["reported"] is False
    (message,) = kept(sqs, url)
    assert message["reason"].startswith("the hook's event cannot be reported")
    assert message["record"]["requestPayload"] == payload


@pytest.mark.timing
def test_an_unknown_deployment_goes_to_the_queue_and_throttling_is_retried(
    codedeploy: tuple[Any, Stubber], queue: tuple[Any, str]
) -> None:
    client, stubber = codedeploy
    sqs, url = queue
    safe = FailSafe(CodeDeployCallback(client, sleep=lambda s: None), sqs, url)
    stubber.add_client_error(
        "put_lifecycle_event_hook_execution_status", "DeploymentDoesNotExistException", "gone"
    )
    result = safe.handle(record(EVENT, RESPONSES["crash"]), Deadline.in_seconds(30))
    assert result["reported"] is False
    (message,) = kept(sqs, url)
    assert "DeploymentDoesNotExistException" in message["reason"]

    # A passing failure raises: Lambda retries the fail-safe, then queues the record. (One
    # attempt fits in 3 s: another would not finish before the budget ends.)
    stubber.add_client_error(
        "put_lifecycle_event_hook_execution_status", "ThrottlingException", "slow down"
    )
    with pytest.raises(RuntimeError, match="could not report Failed: ThrottlingException"):
        safe.handle(record(EVENT, RESPONSES["crash"]), Deadline.in_seconds(3))


def test_the_deployed_handler_reports_over_the_wire(
    queue: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hooks.adapters.failsafe.handler``, as the template names it, with its own clients."""
    _sqs, url = queue
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CODEDEPLOY", endpoint)
        monkeypatch.setenv("GREENLIGHT_DEAD_LETTER_QUEUE", url)

        class Context:
            def get_remaining_time_in_millis(self) -> int:
                return 30_000

        result = handler(record(EVENT, RESPONSES["timeout"]), Context())
    assert result["reported"] is True
    assert fake.statuses == ["Failed"]
    assert fake.requests[0]["body"]["deploymentId"] == EVENT["DeploymentId"]


def test_the_sample_record_drives_greenlight_invoke_of_the_fail_safe() -> None:
    """events/failsafe_record.json feeds `sam local invoke FailSafeFunction -e` and this."""
    from tests.functional.test_cli import greenlight

    sample = json.loads((ROOT / "events" / "failsafe_record.json").read_text())
    assert read_record(sample).invocation is not None
    done = greenlight(
        "invoke", "FailSafeFunction", "--event", str(ROOT / "events" / "failsafe_record.json")
    )
    assert done.returncode == 1, done.stdout + done.stderr  # it reports Failed, by design
    recorded = done.stdout.split("(recorded, not sent):", 1)[1]
    assert '"status": "Failed"' in recorded
    assert sample["requestPayload"]["DeploymentId"] in recorded
    assert "the hook ran out of memory before it reported" in done.stdout


def _emf(out: str) -> list[dict[str, Any]]:
    """The EMF metric lines the fail-safe wrote on stdout."""
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


@pytest.mark.parametrize(
    ("status", "reports"),
    [("InProgress", True), ("Pending", True), ("Succeeded", False), ("Failed", False)],
)
def test_the_fail_safe_reports_only_while_the_event_waits_for_a_verdict(
    status: str,
    reports: bool,
    queue: tuple[Any, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """GIVEN a hook that ended badly (its destination record) after — or before — its report
    WHEN the fail-safe reads the lifecycle event's status, as the deployed handler does
    THEN it reports Failed only while the event waits; otherwise it contradicts nothing,
    says "already reported" and counts no failure."""
    _sqs, url = queue
    fake = FakeCodeDeploy(event_status=status)
    with http_server(fake) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CODEDEPLOY", endpoint)
        monkeypatch.setenv("GREENLIGHT_DEAD_LETTER_QUEUE", url)
        monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Greenlight")

        class Context:
            def get_remaining_time_in_millis(self) -> int:
                return 30_000

        result = handler(record(EVENT, RESPONSES["out of memory"]), Context())
    metrics = _emf(capsys.readouterr().out)
    assert [r["target"].rsplit(".", 1)[1] for r in fake.requests][:2] == [
        "ListDeploymentTargets",
        "GetDeploymentTarget",
    ]
    if reports:
        assert fake.statuses == ["Failed"]
        assert result["verdict"] == "Failed"
        assert [m.get("Failed") for m in metrics] == [[1.0]]  # one EMF line, Failed = 1
    else:
        assert fake.statuses == []
        assert result["verdict"] == "already reported"
        assert f"its lifecycle event is {status}" in result["reason"]
        assert metrics == []  # no Failed, no FailedOrUnreportedHooks


def test_a_status_that_cannot_be_read_still_reports(
    codedeploy: tuple[Any, Stubber], queue: tuple[Any, str]
) -> None:
    client, stubber = codedeploy
    stubber.add_client_error("list_deployment_targets", "AccessDeniedException", "not allowed")
    expect_report(stubber, "Failed")
    sqs, url = queue
    safe = FailSafe(
        CodeDeployCallback(client, sleep=lambda s: None),
        sqs,
        url,
        status=lambda invocation: event_status(client, invocation),
    )
    result = safe.handle(record(EVENT, RESPONSES["crash"]), Deadline.in_seconds(30))
    assert result["reported"] is True
    assert result["verdict"] == "Failed"
