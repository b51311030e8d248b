"""What crosses a boundary is data: forged, stale, foreign or replayed inputs to the Step
Functions conclusion can fill planned slots, never grant a pass.

The real state machine runs under moto (see test_stepfunctions); a shard's answer is
tampered with between the shard and the conclusion, as a hostile suite, a stale object or a
replayed call would. Each case must end in exactly one report, ``Failed``, naming why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from hooks.adapters.stepfunctions import PURPOSE
from hooks.aws import signing
from hooks.aws.codedeploy import CodeDeployCallback
from hooks.core.exceptions import ConfigError
from tests.functional.conftest import BUCKET, Stack
from tests.functional.test_stepfunctions import expect_report, hook, service, write_suites
from tests.helpers import http_server

Tamper = Callable[[Stack, dict[str, Any], dict[str, Any]], Any]


def _sealed(stack: Stack, key: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(stack.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    return found


def _put(stack: Stack, key: str, data: Any) -> None:
    stack.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(data).encode())


def _reseal(sealed: dict[str, Any], content: Any = None, **binding: Any) -> dict[str, Any]:
    """What a process holding the key could write: a valid seal over changed content."""
    return signing.seal(
        signing.key_from_env({}),
        PURPOSE,
        {**sealed["binding"], **binding},
        sealed["content"] if content is None else content,
    )


def _lax_policy(stack: Stack, event: dict[str, Any], answer: dict[str, Any]) -> None:
    sealed = _sealed(stack, answer["key"])
    for suite in sealed["content"]["suites"]:
        suite["policy"] = {"report_only": True, "failure_limit": 99}
    _put(stack, answer["key"], _reseal(sealed, sealed["content"]))


def _unsigned(stack: Stack, event: dict[str, Any], answer: dict[str, Any]) -> None:
    sealed = _sealed(stack, answer["key"])
    for suite in sealed["content"]["suites"]:
        for check in suite["checks"]:
            check["status"] = "passed"
    _put(stack, answer["key"], sealed)  # content changed, signature kept: it no longer holds


def _another_execution(stack: Stack, event: dict[str, Any], answer: dict[str, Any]) -> None:
    sealed = _sealed(stack, answer["key"])
    _put(stack, answer["key"], _reseal(sealed, execution_id="exec-0-an-earlier-one"))


def _another_plan(stack: Stack, event: dict[str, Any], answer: dict[str, Any]) -> None:
    sealed = _sealed(stack, answer["key"])
    _put(stack, answer["key"], _reseal(sealed, plan="0" * 32))


def _points_elsewhere(stack: Stack, event: dict[str, Any], answer: dict[str, Any]) -> Any:
    """The shard writes nothing of its own and names another deployment's passing file."""
    sealed = _sealed(stack, answer["key"])
    stack.s3.delete_object(Bucket=BUCKET, Key=answer["key"])
    elsewhere = answer["key"].replace("d-SHARDS", "d-OTHER")
    _put(stack, elsewhere, sealed)
    return {**answer, "key": elsewhere}


def _drops_its_suites(stack: Stack, event: dict[str, Any], answer: dict[str, Any]) -> None:
    sealed = _sealed(stack, answer["key"])
    _put(stack, answer["key"], _reseal(sealed, {**sealed["content"], "suites": []}))


CASES: dict[str, tuple[Tamper, str]] = {
    "a lax policy in a sealed result": (_lax_policy, "suites failed: orders"),
    "an altered result": (_unsigned, "its signature does not verify"),
    "another execution's result": (_another_execution, "belongs to another execution_id"),
    "another plan's result": (_another_plan, "belongs to another plan"),
    "an outcome naming another deployment's file": (_points_elsewhere, "NoSuchKey"),
    "a result without its suite": (_drops_its_suites, "no result came back for it"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_tampered_shard_result_cannot_pass_a_failing_suite(
    stack: Stack, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, case: str
) -> None:
    """GIVEN a plan whose suite `orders` fails against green
    WHEN the shard that ran it has its answer tampered with on the way to the conclusion
    THEN the conclusion reports Failed once, naming the suite and what was wrong."""
    tamper, named = CASES[case]
    write_suites(stack, "catalog", "orders")
    real = stack.behaviour["greenlight-shard"]

    def shard(event: dict[str, Any]) -> Any:
        answer = real(event)
        if event["shard"]["suites"] == ["orders"]:
            return tamper(stack, event, answer) or answer
        return answer

    stack.behaviour["greenlight-shard"] = shard
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    with http_server(service(broken="orders")) as url:
        result = hook(stack, url, callback)
        ended = stack.wait(result["execution"])
    assert ended["status"] == "SUCCEEDED", ended
    report = _evidence(stack)
    assert report["verdict"] == "Failed"
    assert "orders" in report["reason"]
    failed = " | ".join(report["failed"])
    assert named in failed + report["reason"], failed
    assert {s["name"]: s["passed"] for s in report["suites_detail"]}["orders"] is False


def test_an_input_that_leaves_a_suite_out_cannot_pass_it(
    stack: Stack, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    """GIVEN a plan of three suites, one of which fails
    WHEN the execution's input (data) lists shards for the passing ones only
    THEN the conclusion's own plan still wants the third: Failed, naming it."""
    write_suites(stack, "catalog", "orders")
    original = stack.sfn.start_execution

    def start_execution(**kwargs: Any) -> Any:
        payload = json.loads(kwargs["input"])
        payload["shards"] = [s for s in payload["shards"] if s["suites"] != ["orders"]]
        return original(**{**kwargs, "input": json.dumps(payload)})

    stack.sfn.start_execution = start_execution
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    with http_server(service(broken="orders")) as url:
        result = hook(stack, url, callback)
        stack.wait(result["execution"])
    report = _evidence(stack)
    assert report["verdict"] == "Failed"
    assert any(line.startswith("orders: the shard that ran it failed") for line in report["failed"])


def _evidence(stack: Stack) -> dict[str, Any]:
    key = next(
        item["Key"]
        for item in stack.s3.list_objects_v2(Bucket=BUCKET)["Contents"]
        if item["Key"].endswith("result.json")
    )
    return _sealed(stack, key)


def test_the_stacks_signing_key_is_read_from_secrets_manager_and_must_be_long() -> None:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="greenlight/signing", SecretString="s" * 64)["ARN"]
        short = client.create_secret(Name="greenlight/short", SecretString="s" * 8)["ARN"]
        signing._fetched.cache_clear()
        try:
            assert signing.key_from_env({"GREENLIGHT_SIGNING_KEY": arn}) == b"s" * 64
            with pytest.raises(ConfigError, match="shorter than 32 characters"):
                signing.key_from_env({"GREENLIGHT_SIGNING_KEY": short})
        finally:
            signing._fetched.cache_clear()
