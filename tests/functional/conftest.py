"""The stack a handed-off plan runs on, for the tests of ``runner: stepfunctions`` and of the
conclusion's trust boundaries: moto's Step Functions executes the real state machine, and
its Lambda tasks run Greenlight's own shard and conclusion handlers in-process."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend

from hooks.adapters.conclusion import conclude_execution
from hooks.adapters.stepfunctions import run_shard
from hooks.aws.codedeploy import CodeDeployCallback
from hooks.cli.local import LocalContext
from hooks.gate.summary import Runtime
from tests.helpers import ROOT

REGION = "us-east-1"
BUCKET = "greenlight-evidence"
ASL = ROOT / "statemachine" / "greenlight.asl.json"
SUITE = "name: {name}\nchecks:\n  - name: {name} answers\n    request: {{path: /{path}}}\n"


def definition(shard_arn: str, conclude_arn: str, shard_timeout: int = 60) -> str:
    """The ASL as the template substitutes it."""
    return (
        ASL.read_text()
        .replace("${ShardConcurrency}", "2")
        .replace("${ShardTimeout}", str(shard_timeout))
        .replace("${ShardFunctionArn}", shard_arn)
        .replace("${ConcludeFunctionArn}", conclude_arn)
        .replace("${LambdaInvoke}", "arn:aws:states:::lambda:invoke")
    )


@dataclass
class Stack:
    """The state machine, its two functions, the bucket; how the functions answer."""

    state_machine: str
    sfn: Any
    s3: Any
    suites: Path
    #: function name -> what an invocation does with its payload (the real handlers unless
    #: a test says otherwise).
    behaviour: dict[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def wait(self, execution: str, timeout: float = 60) -> dict[str, Any]:
        ends = time.monotonic() + timeout
        while time.monotonic() < ends:
            found: dict[str, Any] = self.sfn.describe_execution(executionArn=execution)
            if found["status"] != "RUNNING":
                return found
            time.sleep(0.05)
        raise AssertionError(f"the execution {execution} did not end in {timeout}s")


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


@pytest.fixture
def stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, callback: CodeDeployCallback
) -> Iterator[Stack]:
    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=config):  # type: ignore[arg-type]
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="greenlight", AssumeRolePolicyDocument="{}")["Role"]
        functions = boto3.client("lambda", region_name=REGION)
        arns = {
            name: functions.create_function(
                FunctionName=f"greenlight-{name}",
                Runtime="python3.13",
                Role=role["Arn"],
                Handler="index.handler",
                Code={"ZipFile": _zip()},
            )["FunctionArn"]
            for name in ("shard", "conclude")
        }
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="Greenlight_test",
            definition=definition(arns["shard"], arns["conclude"]),
            roleArn=role["Arn"],
        )["stateMachineArn"]
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        suites = tmp_path / "suites"
        suites.mkdir()
        (suites / "greenlight.yaml").write_text("version: 1\ndefaults:\n  runner: stepfunctions\n")
        found = Stack(machine, sfn, s3, suites)
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites),
            "GREENLIGHT_STATE_MACHINE_ARN": machine,
            "GREENLIGHT_EVIDENCE_BUCKET": BUCKET,
        }
        from hooks.evidence.reports import EvidenceBundle

        runtime = Runtime(
            protocol=callback, env=env, s3=lambda: s3, reporters=(EvidenceBundle(lambda: s3),)
        )
        found.behaviour = {
            "greenlight-shard": lambda event: run_shard(event, LocalContext(60), runtime),
            "greenlight-conclude": lambda event: conclude_execution(
                event, LocalContext(60), runtime
            ),
        }

        def invoke(
            backend: Any, function_name: str, qualifier: Any, body: Any, *args: Any
        ) -> bytes:
            name = function_name.rsplit(":", 1)[-1]
            found.calls.append(name)
            answer = found.behaviour[name](json.loads(body))
            return json.dumps(answer).encode()

        monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
        yield found
