"""Secrets by reference: fetched (moto's Secrets Manager and SSM), used, cached across warm
invocations, and never shown — not in the result, a log line, the evidence or JUnit."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from hooks.adapters.hook import handle
from hooks.aws import secrets
from hooks.aws.codedeploy import CodeDeployCallback
from hooks.cli.local import LocalContext
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.log import get_logger
from hooks.core.target import origin
from hooks.evidence.reports import EvidenceBundle
from hooks.gate.summary import Runtime
from tests.functional.test_hook_protocol import EVENT, expect_report
from tests.helpers import each, http_server, reply, silent_server

TOKEN = "tok-9f8e7d6c5b4a"
KEY = "key-0123456789ab"
PLAN_TOKEN = "plan-a1b2c3d4e5f6"


@pytest.fixture
def aws() -> Iterator[None]:
    secrets._make_providers.cache_clear()  # each test starts with a cold cache
    with mock_aws():
        manager = boto3.client("secretsmanager")
        manager.create_secret(Name="shop/api", SecretString=json.dumps({"token": TOKEN}))
        manager.create_secret(Name="shop/plan", SecretString=PLAN_TOKEN)
        boto3.client("ssm").put_parameter(Name="/greenlight/key", Value=KEY, Type="SecureString")
        boto3.client("s3").create_bucket(Bucket="evidence")
        yield
    secrets._make_providers.cache_clear()


class Service:
    """Answers 200 when the credentials match, and echoes them back in every answer."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str | None]] = []

    def __call__(self, handler: Any) -> None:
        got = {
            "authorization": handler.headers.get("Authorization"),
            "key": handler.headers.get("X-Key"),
            "plan": handler.headers.get("X-Plan"),
        }
        if handler.path == "/":  # the built-in reachability probe
            reply(handler, 200, {})
            return
        self.seen.append(got)
        ok = got["authorization"] == f"Bearer {TOKEN}" and got["key"] == KEY
        status = 200 if ok and handler.path != "/broken" else 500
        reply(handler, status, {"you_sent": got})


SUITE = """\
name: secured
checks:
  - name: with secrets
    request:
      path: /orders
      headers:
        Authorization: "Bearer ${secret:shop/api#token}"
        X-Key: ${ssm:/greenlight/key}
    assert:
      - status: 200
  - name: echoes them on failure
    request:
      path: /broken
      headers:
        Authorization: "Bearer ${secret:shop/api#token}"
        X-Key: ${ssm:/greenlight/key}
    assert:
      - status: 200
"""


def suites_dir(tmp_path: Path, suite: str = SUITE, plan: str | None = None) -> Path:
    folder = tmp_path / "suites"
    folder.mkdir(exist_ok=True)
    (folder / "secured.yaml").write_text(suite)
    if plan is not None:
        (folder / "greenlight.yaml").write_text(plan)
    return folder


def run(
    callback: CodeDeployCallback, env: dict[str, str], runtime: Runtime | None = None
) -> tuple[dict[str, Any], str]:
    stream = io.StringIO()
    handler = get_logger().registered_handler
    previous = getattr(handler, "stream", None)
    level = logging.getLevelName(get_logger().log_level)
    get_logger(stream=stream, level="DEBUG")
    try:
        result = handle(
            EVENT,
            LocalContext(30),
            LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
            runtime or Runtime(protocol=callback, env=env),
        )
    finally:
        get_logger(stream=previous, level=level)
    return result, stream.getvalue()


def test_referenced_secrets_are_used_and_never_shown(
    aws: None, tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    service = Service()
    with http_server(service) as url:
        env = {"GREENLIGHT_SUITES_DIR": str(suites_dir(tmp_path)), "GREENLIGHT_TARGET_URL": url}
        runtime = Runtime(
            protocol=callback, env=env, reporters=(EvidenceBundle(boto3.client("s3"), "evidence"),)
        )
        result, logs = run(callback, env, runtime)

    assert {"authorization": f"Bearer {TOKEN}", "key": KEY, "plan": None} in service.seen
    assert result["verdict"] == "Failed"
    assert result["failed"] == [
        "secured / echoes them on failure: status: expected to be 200, got 500"
    ]
    s3 = boto3.client("s3")
    evidence = "".join(
        s3.get_object(Bucket="evidence", Key=o["Key"])["Body"].read().decode()
        for o in s3.list_objects_v2(Bucket="evidence")["Contents"]
    )
    assert "you_sent" in evidence  # the echoed body is in the evidence, masked
    for text in (json.dumps(result), logs, evidence):
        assert TOKEN not in text
        assert KEY not in text
        assert json.dumps({"token": TOKEN}) not in text


def test_a_plan_header_can_name_a_secret(
    aws: None, tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    plan = "version: 1\ndefaults:\n  headers:\n    X-Plan: 'Token ${secret:shop/plan}'\n"
    service = Service()
    with http_server(service) as url:
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites_dir(tmp_path, plan=plan)),
            "GREENLIGHT_TARGET_URL": url,
        }
        result, logs = run(callback, env)
    assert all(seen["plan"] == f"Token {PLAN_TOKEN}" for seen in each(service.seen))
    assert PLAN_TOKEN not in json.dumps(result) + logs


def test_an_unresolvable_plan_secret_fails_the_run_naming_it(
    aws: None, tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    plan = "version: 1\ndefaults:\n  headers:\n    X-Plan: '${secret:shop/missing}'\n"
    with http_server(Service()) as url:
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites_dir(tmp_path, plan=plan)),
            "GREENLIGHT_TARGET_URL": url,
        }
        result, _ = run(callback, env)
    assert result["configuration_error"] is True
    assert "plan header X-Plan: ${secret:shop/missing} could not be read" in result["reason"]
    assert "ResourceNotFoundException" in result["reason"]


def test_an_unresolvable_suite_secret_fails_its_checks_with_the_reason(
    aws: None, tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    suite = SUITE.replace("shop/api#token", "shop/api#password").replace(
        "/greenlight/key", "/greenlight/nope"
    )
    with http_server(Service()) as url:
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites_dir(tmp_path, suite)),
            "GREENLIGHT_TARGET_URL": url,
        }
        result, _ = run(callback, env)
    assert result["verdict"] == "Failed"
    failed = "\n".join(result["failed"])
    assert "${secret:shop/api#password}: the secret has no key 'password' (keys: token)" in failed
    assert TOKEN not in failed


def test_values_are_cached_across_warm_invocations(
    aws: None,
    tmp_path: Path,
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
) -> None:
    """One container, two invocations: the second does not fetch again within the max age
    (the secret rotated in between, and the run still sends the cached value); past the
    max age, a third fetches the new value."""
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    expect_report(stubber, "Succeeded")
    expect_report(stubber, "Failed")
    suite = SUITE.split("  - name: echoes")[0]
    service = Service()
    with http_server(service) as url:
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites_dir(tmp_path, suite)),
            "GREENLIGHT_TARGET_URL": url,
        }
        runtime = Runtime(protocol=callback, env=env)
        first, _ = run(callback, env, runtime)
        boto3.client("secretsmanager").put_secret_value(
            SecretId="shop/api", SecretString=json.dumps({"token": "rotated"})
        )
        second, _ = run(callback, env, runtime)
        cached = [seen["authorization"] for seen in service.seen]
        env["GREENLIGHT_SECRETS_MAX_AGE"] = "0"  # the same container, its setting changed
        third, _ = run(callback, env, runtime)
    assert (first["verdict"], second["verdict"]) == ("Succeeded", "Succeeded")
    assert cached == [f"Bearer {TOKEN}"] * 2
    assert service.seen[-1]["authorization"] == "Bearer rotated"
    assert third["verdict"] == "Failed"  # the service still wants the old token


def test_a_pytest_suite_reads_a_secret_through_the_fixture(
    aws: None, tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "test_secured.py").write_text(
        "def test_orders(http, base_url, secret):\n"
        "    token = secret('secret:shop/api#token')\n"
        "    key = secret('${ssm:/greenlight/key}')\n"
        "    answer = http.get(base_url + '/orders',\n"
        "                      headers={'Authorization': 'Bearer ' + token, 'X-Key': key})\n"
        "    assert answer.status_code == 200, answer.text\n"
    )
    service = Service()
    with http_server(service) as url:
        env = {"GREENLIGHT_SUITES_DIR": str(folder), "GREENLIGHT_TARGET_URL": url}
        result, logs = run(callback, env)
    assert result["verdict"] == "Succeeded", result
    assert {"authorization": f"Bearer {TOKEN}", "key": KEY, "plan": None} in service.seen
    assert TOKEN not in logs


class Recorder:
    """Another origin: records every request it receives, whole."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, handler: Any) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        self.seen.append(f"{handler.command} {handler.path}\n{handler.headers}\n{body}")
        reply(handler, 200, {"ok": True})


ELSEWHERE = """\
name: elsewhere
{allow}checks:
  - name: plan headers stay home
    request:
      url: {other}/plain
    assert:
      - status: 200
  - name: a secret in a header
    request:
      url: {other}/header
      headers:
        Authorization: "Bearer ${{secret:shop/api#token}}"
    assert:
      - status: 200
  - name: a secret in the query
    request:
      url: "{other}/query?key=${{ssm:/greenlight/key}}"
    assert:
      - status: 200
  - name: a secret in the body
    request:
      method: POST
      url: {other}/body
      json: {{"token": "${{secret:shop/api#token}}"}}
    assert:
      - status: 200
  - name: redirected away
    request:
      path: /hop
      allow_redirects: true
    assert:
      - status: 200
"""
PLAN_HEADER = "version: 1\ndefaults:\n  headers:\n    X-Plan: 'Token ${secret:shop/plan}'\n"


def _green(other: str) -> Any:
    def handle(handler: Any) -> None:
        if handler.path == "/hop":  # 307 keeps the method and body: to another origin
            handler.send_response(307)
            handler.send_header("Location", f"{other}/landed")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        reply(handler, 200, {})

    return handle


def _elsewhere(tmp_path: Path, allow: bool, callback: CodeDeployCallback) -> tuple[Any, list[str]]:
    other = Recorder()
    with http_server(other) as other_url, http_server(_green(other_url)) as url:
        allowed = f"secrets_to: ['{other_url}']\n" if allow else ""
        suite = ELSEWHERE.format(other=other_url, allow=allowed)
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites_dir(tmp_path, suite, plan=PLAN_HEADER)),
            "GREENLIGHT_TARGET_URL": url,
        }
        result, _ = run(callback, env)
    return result, other.seen


def test_secrets_and_plan_headers_never_reach_another_origin(
    aws: None, tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    """GIVEN a suite whose checks address another origin with secret values in a header,
    the query and the body, and a plan header that holds a secret
    WHEN the hook runs it
    THEN the other origin receives none of them, in any request or redirect, and each
    refused check fails naming the origin and how to allow it."""
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    result, seen = _elsewhere(tmp_path, allow=False, callback=callback)
    received = "\n".join(seen)
    assert [s.split("\n")[0] for s in seen] == ["GET /plain", "GET /landed"]  # the rest refused
    for value in (TOKEN, KEY, PLAN_TOKEN):
        assert value not in received
    failed = result["failed"]
    assert len(failed) == 3, failed
    assert all("not sent" in f and "secrets_to" in f for f in each(failed))
    assert {f.split(":")[0] for f in failed} == {
        "elsewhere / a secret in a header",
        "elsewhere / a secret in the query",
        "elsewhere / a secret in the body",
    }


def test_a_suite_sends_its_secrets_to_an_origin_it_names(
    aws: None, tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    """GIVEN the same suite naming the other origin in ``secrets_to``
    WHEN the hook runs it
    THEN the suite's own secrets reach it; the plan's headers still do not."""
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    result, seen = _elsewhere(tmp_path, allow=True, callback=callback)
    received = "\n".join(seen)
    assert result["verdict"] == "Succeeded", result
    assert f"Bearer {TOKEN}" in received
    assert KEY in received
    assert PLAN_TOKEN not in received


LOAD_ELSEWHERE = """\
kind: load
name: load-elsewhere
{allow}rate: 20
duration: 1s
requests:
  - name: home
    request: {{path: /plain}}
  - name: away
    request:
      url: {other}/header
      headers:
        Authorization: "Bearer ${{secret:shop/api#token}}"
thresholds:
  http_req_failed: "rate < 0.01"
"""


@pytest.mark.parametrize("allow", [False, True])
def test_a_load_sends_a_secret_only_where_its_suite_allows(
    aws: None,
    tmp_path: Path,
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
    allow: bool,
) -> None:
    """GIVEN a load suite one of whose requests carries a secret to another origin
    WHEN the hook runs it
    THEN without ``secrets_to`` nothing at all is sent and the suite fails naming the
    origin; with it the secret goes there, and the load runs."""
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded" if allow else "Failed")
    other = Recorder()
    with http_server(other) as other_url, http_server(_green(other_url)) as url:
        allowed = f"secrets_to: ['{other_url}']\n" if allow else ""
        suite = LOAD_ELSEWHERE.format(other=other_url, allow=allowed)
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites_dir(tmp_path, suite)),
            "GREENLIGHT_TARGET_URL": url,
        }
        result, _ = run(callback, env)
    received = "\n".join(other.seen)
    if allow:
        assert result["verdict"] == "Succeeded", result
        assert f"Bearer {TOKEN}" in received
        return
    assert other.seen == []
    failed = result["failed"]
    assert failed, result
    assert all("cannot prepare the requests: not sent" in f for f in each(failed))
    assert all(f"secrets_to: [{origin(other_url)}]" in f for f in each(failed))


@pytest.fixture
def hanging_secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Secrets Manager and Parameter Store endpoints that accept and never answer."""
    with silent_server() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setattr(secrets, "FETCH_SECONDS", 1.0)
        secrets._make_providers.cache_clear()
        yield
    secrets._make_providers.cache_clear()


@pytest.mark.timing
def test_a_secret_that_never_comes_fails_in_its_own_time_naming_its_reference(
    hanging_secrets: None,
) -> None:
    started = time.monotonic()
    values, errors = secrets.resolve_all(["secret:shop/api#token", "ssm:/greenlight/key"], 0)
    took = time.monotonic() - started
    assert values == {}
    assert errors == {
        "secret:shop/api#token": "${secret:shop/api#token} could not be read within 1s (no answer)",
        "ssm:/greenlight/key": "${ssm:/greenlight/key} could not be read within 1s (no answer)",
    }
    assert took < 3 * 1.0  # side by side: one bound for both, not one after the other


@pytest.mark.timing
def test_a_plan_header_secret_that_never_comes_fails_the_gate_naming_it(
    hanging_secrets: None,
    tmp_path: Path,
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    plan = "version: 1\ndefaults:\n  headers:\n    X-Plan: '${secret:shop/plan}'\n"
    with http_server(Service()) as url:
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites_dir(tmp_path, plan=plan)),
            "GREENLIGHT_TARGET_URL": url,
        }
        result, _ = run(callback, env)
    assert "plan header X-Plan: ${secret:shop/plan} could not be read within 1s" in result["reason"]
