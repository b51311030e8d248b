"""Invoke the real handlers on a laptop: a Lambda context, the template's environment,
and the CodeDeploy report recorded instead of sent.

The report is intercepted on boto3's default session: botocore validates the call's
parameters against the service model first, exactly as for a real call, then a
``before-call`` handler records it and answers as CodeDeploy would. Every other AWS call
(discovery, when no target URL is given) goes to AWS with the user's credentials.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hooks.adapters.conclusion import conclude_execution
from hooks.adapters.handlers import ecs_runtime, runtime
from hooks.adapters.stepfunctions import LocalBucket, LocalExecutions, run_shard
from hooks.aws.codedeploy import RECORDED_HEADER
from hooks.cli.common import given_by
from hooks.core.exceptions import ConfigError

__all__ = [
    "LOCAL_BUCKET",
    "LOCAL_ENV",
    "LOCAL_STATE_MACHINE",
    "RECORDER",
    "REPORT_OPERATION",
    "LocalContext",
    "ReportRecorder",
    "add_evidence_argument",
    "attach",
    "concluded",
    "import_handler",
    "local_deployment_id",
    "patched_env",
    "prepare_aws",
    "run_state_machine_here",
    "urls_env",
]

REPORT_OPERATION = "PutLifecycleEventHookExecutionStatus"


class LocalContext:
    """A Lambda context whose remaining time follows the function's timeout."""

    def __init__(self, timeout: float, function_name: str = "CodeDeployHook_local") -> None:
        self._end = time.monotonic() + timeout
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self.memory_limit_in_mb = 512
        self.aws_request_id = f"local-{int(time.time() * 1000)}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._end - time.monotonic()) * 1000), 0)


@dataclass
class ReportRecorder:
    """Records CodeDeploy status reports (validated by botocore) instead of sending them."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    installed: bool = False

    def install(self) -> None:
        if self.installed:
            return
        import boto3

        session = boto3._get_default_session()
        events = session.events
        events.register(f"provide-client-params.codedeploy.{REPORT_OPERATION}", self._params)
        # botocore takes the first non-None answer to before-call as the response.
        events.register(f"before-call.codedeploy.{REPORT_OPERATION}", self._answer)  # type: ignore[arg-type]
        self.installed = True

    def _params(self, params: dict[str, Any], **kwargs: Any) -> None:
        self.calls.append(dict(params))

    def _answer(self, params: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        from botocore.awsrequest import AWSResponse, HTTPHeaders

        execution_id = self.calls[-1].get("lifecycleEventHookExecutionId") if self.calls else ""
        headers = {RECORDED_HEADER: "true"}
        response = AWSResponse("https://codedeploy.local", 200, HTTPHeaders(), None)
        response.headers[RECORDED_HEADER] = "true"
        metadata = {"HTTPStatusCode": 200, "HTTPHeaders": headers}
        return response, {
            "lifecycleEventHookExecutionId": execution_id,
            "ResponseMetadata": metadata,
        }


RECORDER = ReportRecorder()


@contextmanager
def patched_env(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the duration."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def import_handler(dotted: str) -> Callable[[Any, Any], Any]:
    module_name, _, function = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        handler: Callable[[Any, Any], Any] = getattr(module, function)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import the handler {dotted!r}: {exc}") from exc
    return handler


def prepare_aws(report: str) -> None:
    """Region and placeholder credentials for local runs; the recorder unless ``aws``."""
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    if report == "local":
        RECORDER.install()


def attach(on_check: Callable[[Any, Any], None] | None, reporters: list[Any]) -> Any:
    """The handlers' runtime, with progress output and file reports attached."""

    current = runtime()
    for each in (current, ecs_runtime()):
        each.on_check = on_check
        each.reporters = list(reporters)
    return current


#: The bucket name a laptop's evidence is written under (its folder is the store).
LOCAL_BUCKET = "greenlight-local"


def local_deployment_id() -> str:
    """A deployment id of its own for each laptop run, so its evidence is kept apart."""
    return "d-LOCAL" + time.strftime("%Y%m%d%H%M%S") + f"{time.time_ns() // 1000 % 1000:03d}"


def add_evidence_argument(parser: Any) -> None:
    parser.add_argument(
        "--evidence",
        type=Path,
        metavar="DIR",
        help="where the run's evidence bundle goes (default: $GREENLIGHT_EVIDENCE_DIR, "
        "else ~/.local/state/greenlight/evidence); greenlight report reads it",
    )


#: Where a handed-off plan's state machine and bucket "are" on a laptop.
LOCAL_STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:Greenlight_local"
LOCAL_ENV = {
    "GREENLIGHT_STATE_MACHINE_ARN": LOCAL_STATE_MACHINE,
    "GREENLIGHT_EVIDENCE_BUCKET": LOCAL_BUCKET,
}


def urls_env(test_url: str, prod_url: str, green_on_prod: bool) -> dict[str, str]:
    """The target of one rehearsed call: green, and production (green too once it serves
    it), each naming the flag that set it."""
    return given_by(
        {
            "GREENLIGHT_TARGET_URL": ("--test-url", test_url),
            "GREENLIGHT_PROD_URL": (
                ("--test-url", test_url) if green_on_prod else ("--prod-url", prod_url)
            ),
        }
    )


def run_state_machine_here(
    current: Any, timeout: float, say: Callable[[str], None], store: Any = None
) -> Any:
    """Plans with ``runner: stepfunctions`` run their shards in this process, through the
    same shard and conclusion handlers the state machine calls (no AWS, no Docker)."""

    bucket = store if store is not None else LocalBucket()
    # Shards say nothing as they go (a part of a suite is judged on the whole): the merged
    # results are shown once the conclusion has them (:func:`concluded`).
    quiet = replace(current, on_check=None)
    machine = LocalExecutions(
        lambda item: run_shard(item, LocalContext(timeout, "Greenlight_local-Shard"), quiet),
        lambda event: conclude_execution(
            event, LocalContext(300, "Greenlight_local-Conclude"), current
        ),
        on_soak=lambda seconds: say(
            f"the plan's soak of {seconds:g}s is not waited on a laptop; the shards run now"
        ),
    )
    current.stepfunctions = lambda: machine
    current.s3 = quiet.s3 = lambda: bucket
    return machine


def concluded(machine: Any, result: dict[str, Any]) -> dict[str, Any]:
    """A hook's result, or, when it handed off, its execution's conclusion."""
    found: dict[str, Any] = machine.concluded.get(result.get("execution"), result)
    return found
