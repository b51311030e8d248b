"""The handler the template names, in a fresh process, reporting over the wire.

A loopback server plays the CodeDeploy endpoint (``AWS_ENDPOINT_URL_CODEDEPLOY``) and
records every request, so the test sees exactly what would reach AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from hooks.cli.template import Template
from tests.helpers import ROOT, closed_port_url, http_server, reply, silent_server

SCRIPT = """
import json, sys, time, importlib
module, function = sys.argv[1].rsplit(".", 1)
handler = getattr(importlib.import_module(module), function)
class Context:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds
    def get_remaining_time_in_millis(self):
        return int((self.end - time.monotonic()) * 1000)
event = json.load(open(sys.argv[2]))
print("RESULT " + json.dumps(handler(event, Context(float(sys.argv[3])))))
"""


def template_handler(logical_id: str) -> str:
    """The handler the template names for the function (the template is the source)."""
    return Template(ROOT / "template.yaml").function(logical_id).handler


class FakeCodeDeploy:
    """Answers PutLifecycleEventHookExecutionStatus; records every request."""

    def __init__(self, error: str | None = None, server_errors: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.error = error
        self.server_errors = server_errors  # answer this many requests with a 500 first

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        self.requests.append({"target": handler.headers["X-Amz-Target"], "body": body})
        if len(self.requests) <= self.server_errors:
            reply(handler, 500, {"__type": "InternalFailure", "message": "try again"})
        elif self.error:
            reply(handler, 400, {"__type": self.error, "message": "already completed"})
        else:
            reply(
                handler,
                200,
                {"lifecycleEventHookExecutionId": body.get("lifecycleEventHookExecutionId")},
            )


def invoke(endpoint: str, target_url: str, seconds: float = 10) -> tuple[dict[str, Any], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GREENLIGHT_", "AWS_"))}
    env.update(
        AWS_ENDPOINT_URL_CODEDEPLOY=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        GREENLIGHT_TARGET_URL=target_url,
    )
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            template_handler("AfterAllowTestTrafficHook"),
            str(ROOT / "events" / "after_allow_test_traffic.json"),
            str(seconds),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT ")), elapsed


def test_closed_port_sends_one_failed_report_well_before_the_deadline() -> None:
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint:
        result, elapsed = invoke(endpoint, closed_port_url(), seconds=10)
    assert [r["target"] for r in fake.requests] == [
        "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus"
    ]
    assert fake.requests[0]["body"]["status"] == "Failed"
    assert fake.requests[0]["body"]["deploymentId"] == "d-EXAMPLE11"
    assert result["verdict"] == "Failed"
    assert elapsed < 10


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


def test_a_codedeploy_endpoint_that_never_answers_cannot_outlast_the_function() -> None:
    with silent_server() as endpoint, http_server(lambda h: reply(h, 200, {})) as target:
        result, elapsed = invoke(endpoint, target, seconds=12)
    assert result["report"] == "failed"
    assert elapsed < 12
