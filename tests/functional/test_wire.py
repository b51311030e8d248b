"""The handler the template names, in a fresh process, reporting over the wire.

A loopback server plays the CodeDeploy endpoint (``AWS_ENDPOINT_URL_CODEDEPLOY``) and
records every request, so the test sees exactly what would reach AWS.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests import wire
from tests.helpers import closed_port_url, http_server, reply, silent_server
from tests.wire import FakeCodeDeploy


def invoke(endpoint: str, target_url: str, seconds: float = 10) -> tuple[dict[str, Any], float]:
    run = wire.invoke(endpoint, {"GREENLIGHT_TARGET_URL": target_url}, seconds=seconds)
    # what the Lambda context had left when the handler returned: the function's own clock
    return run.result, run.invocations[-1].left_ms / 1000


@pytest.mark.timing
def test_closed_port_sends_one_failed_report_well_before_the_deadline() -> None:
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint:
        result, left = invoke(endpoint, closed_port_url(), seconds=10)
    assert [r["target"] for r in fake.requests] == [
        "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus"
    ]
    assert fake.requests[0]["body"]["status"] == "Failed"
    assert fake.requests[0]["body"]["deploymentId"] == "d-EXAMPLE11"
    assert result["verdict"] == "Failed"
    assert left > 0  # returned before the function's end


def test_healthy_target_sends_one_succeeded_report() -> None:
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(lambda h: reply(h, 200, {})) as target:
        result, _ = invoke(endpoint, target)
    assert [r["body"]["status"] for r in fake.requests] == ["Succeeded"]
    assert result["report"] == "reported"


def test_already_completed_on_the_wire_returns_normally() -> None:
    fake = FakeCodeDeploy(error="LifecycleEventAlreadyCompletedException")
    with http_server(fake) as endpoint, http_server(lambda h: reply(h, 200, {})) as target:
        result, _ = invoke(endpoint, target)
    assert len(fake.requests) == 1
    assert result["report"] == "already_completed"


def test_server_errors_on_the_report_are_retried_on_the_wire() -> None:
    fake = FakeCodeDeploy(server_errors=2)
    with http_server(fake) as endpoint, http_server(lambda h: reply(h, 200, {})) as target:
        result, _ = invoke(endpoint, target)
    assert [r["body"]["status"] for r in fake.requests] == ["Succeeded"] * 3
    assert result["report"] == "reported"


@pytest.mark.timing
def test_a_codedeploy_endpoint_that_never_answers_cannot_outlast_the_function() -> None:
    with silent_server() as endpoint, http_server(lambda h: reply(h, 200, {})) as target:
        result, left = invoke(endpoint, target, seconds=12)
    assert result["report"] == "failed"
    assert left > 0
