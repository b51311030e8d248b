"""The handler the template names, in a fresh process, reporting to a recording endpoint.

A loopback server plays the CodeDeploy endpoint (``AWS_ENDPOINT_URL_CODEDEPLOY``) and
records every request, so a test sees exactly what would reach AWS. The handler runs in
a process of its own with a Lambda-like context, as often as asked (a warm container),
and prints, per invocation, its return value, the time left on the context, and the peak
memory of the handler's process and of its workers (the largest: ``RUSAGE_CHILDREN``
counts from each fork, so it is an upper bound).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from hooks.cli.template import Template
from tests.helpers import ROOT, reply

SCRIPT = """
import json, resource, sys, time, importlib
module, function = sys.argv[1].rsplit(".", 1)
handler = getattr(importlib.import_module(module), function)
class Context:
    memory_limit_in_mb = 512
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds
    def get_remaining_time_in_millis(self):
        return int((self.end - time.monotonic()) * 1000)
def peak_mb():  # VmHWM: ru_maxrss would carry the forking parent's peak across exec
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
event = json.load(open(sys.argv[2]))
for _ in range(int(sys.argv[4])):
    context = Context(float(sys.argv[3]))
    result = handler(event, context)
    print("RESULT " + json.dumps({
        "result": result,
        "left_ms": context.get_remaining_time_in_millis(),
        "peak_mb": peak_mb(),
        "workers_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }), flush=True)
"""


def deployment_target(event: str, status: str) -> dict[str, Any]:
    """GetDeploymentTarget's answer for an ECS deployment whose ``event`` is at ``status``."""
    return {
        "deploymentTarget": {
            "deploymentTargetType": "ECSTarget",
            "ecsTarget": {
                "targetId": "shop-cluster:shop",
                "lifecycleEvents": [{"lifecycleEventName": event, "status": status}],
            },
        }
    }


def template_handler(logical_id: str) -> str:
    """The handler the template names for the function (the template is the source)."""
    return Template(ROOT / "template.yaml").function(logical_id).handler


REPORT = ".PutLifecycleEventHookExecutionStatus"


class FakeCodeDeploy:
    """Answers PutLifecycleEventHookExecutionStatus; records every request."""

    def __init__(
        self,
        error: str | None = None,
        server_errors: int = 0,
        delay: float = 0,
        event_status: str | None = None,
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.error = error
        self.server_errors = server_errors  # answer this many reports with a 500 first
        self.delay = delay  # seconds before each answer to a report
        self.event_status = event_status  # the lifecycle event's status (None: no target)

    @property
    def statuses(self) -> list[str]:
        return [r["body"]["status"] for r in self.reports]

    def _read(self, target: str, body: dict[str, Any]) -> dict[str, Any]:
        """ListDeploymentTargets and GetDeploymentTarget, for the fail-safe's status check."""
        if target.endswith(".ListDeploymentTargets"):
            return {"targetIds": [] if self.event_status is None else ["shop-cluster:shop"]}
        return deployment_target("AfterAllowTestTraffic", self.event_status or "Unknown")

    @property
    def reports(self) -> list[dict[str, Any]]:
        """The PutLifecycleEventHookExecutionStatus requests (the only writes)."""
        return [r for r in self.requests if r["target"].endswith(REPORT)]

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        target = handler.headers["X-Amz-Target"]
        self.requests.append({"target": target, "body": body})
        if not target.endswith(REPORT):
            reply(handler, 200, self._read(target, body))
            return
        time.sleep(self.delay)
        if len(self.reports) <= self.server_errors:
            reply(handler, 500, {"__type": "InternalFailure", "message": "try again"})
        elif self.error:
            reply(handler, 400, {"__type": self.error, "message": "already completed"})
        else:
            reply(
                handler,
                200,
                {"lifecycleEventHookExecutionId": body.get("lifecycleEventHookExecutionId")},
            )


@dataclass
class Invocation:
    result: dict[str, Any]
    left_ms: int
    peak_mb: float
    workers_peak_mb: float


@dataclass
class HookRun:
    """What one process's invocations returned, printed and cost."""

    invocations: list[Invocation]
    output: str
    elapsed: float
    env: dict[str, str] = field(default_factory=dict)

    @property
    def result(self) -> dict[str, Any]:
        return self.invocations[-1].result


def invoke(
    endpoint: str,
    env: dict[str, str],
    *,
    seconds: float = 10,
    invocations: int = 1,
    logical_id: str = "AfterAllowTestTrafficHook",
    event_file: Path | None = None,
    pythonpath: Path | None = None,
) -> HookRun:
    """Run the template's handler in a fresh process, ``invocations`` times in a row."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GREENLIGHT_", "AWS_"))}
    base.update(
        AWS_ENDPOINT_URL_CODEDEPLOY=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
        # As in Lambda: a spare worker starts as the module loads and as each run ends.
        AWS_LAMBDA_FUNCTION_NAME="greenlight-test-hook",
    )
    base.update(env)
    if pythonpath is not None:
        base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), str(ROOT)]))
    event = event_file or ROOT / "events" / "after_allow_test_traffic.json"
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            template_handler(logical_id),
            str(event),
            str(seconds),
            str(invocations),
        ],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60 + seconds * invocations,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    runs = [
        Invocation(**json.loads(line.removeprefix("RESULT ")))
        for line in done.stdout.splitlines()
        if line.startswith("RESULT ")
    ]
    assert len(runs) == invocations, done.stdout + done.stderr
    return HookRun(runs, done.stdout + done.stderr, elapsed, base)
