"""Running declarative checks against mocked HTTP (responses): polling, flows, evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import responses

from hooks.core.deadline import Deadline
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import Status, SuiteResult
from hooks.core.target import DEPLOYMENT_HEADER, Target
from hooks.process.runner import run_suites
from hooks.suites.base import DeploymentInfo
from hooks.suites.http import HttpSuiteKind
from tests.helpers import each

URL = "http://shop.test"
INFO = DeploymentInfo("d-123", "exec-1", LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC, "shop", "orders")


def run(tmp_path: Path, text: str, seconds: float = 10) -> SuiteResult:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    suites = HttpSuiteKind().load(path)
    result = run_suites(
        suites, target=Target(URL), deployment=INFO, deadline=Deadline.in_seconds(seconds)
    )
    (suite,) = result.suites
    return suite


@responses.activate
def test_polling_retries_until_the_target_is_ready(tmp_path: Path) -> None:
    responses.get(f"{URL}/health", status=503)
    responses.get(f"{URL}/health", status=503)
    responses.get(f"{URL}/health", json={"status": "ok"})
    suite = run(
        tmp_path,
        """\
name: s
checks:
  - name: ready
    request: {path: /health}
    retry: 5
    retry_interval: 0
    assert: [{status: 200}]
""",
    )
    (check,) = suite.checks
    assert check.status is Status.PASSED
    assert check.evidence is not None
    assert check.evidence.attempts == 3
    assert len(responses.calls) == 3


@responses.activate
def test_polling_gives_up_after_its_retries_with_every_failure(tmp_path: Path) -> None:
    responses.get(f"{URL}/health", status=503, json={"status": "starting"})
    suite = run(
        tmp_path,
        """\
name: s
defaults: {retry: 2, retry_interval: 0}
checks:
  - name: ready
    request: {path: /health}
    assert:
      - status: 200
      - jmespath: status
        equals: ok
""",
    )
    (check,) = suite.checks
    assert check.status is Status.FAILED
    assert len(responses.calls) == 3
    assert check.failures == (
        "status: expected to be 200, got 503",
        "jmespath status: expected to equal 'ok', got 'starting'",
    )
    assert check.message.endswith("[after 3 attempts]")
    assert check.evidence is not None
    assert check.evidence.request == f"GET {URL}/health"
    assert check.evidence.status == 503
    assert check.evidence.body == '{"status": "starting"}'


@responses.activate
def test_captures_feed_later_checks_in_order(tmp_path: Path) -> None:
    responses.post(
        f"{URL}/orders",
        status=201,
        json={"id": "ord-9"},
        headers={"ETag": "v1", "Location": "/orders/ord-9"},
    )
    responses.get(f"{URL}/orders/ord-9", json={"id": "ord-9", "etag": "v1", "token": "t-42"})
    suite = run(
        tmp_path,
        """\
name: flow
variables: {sku: A-1}
checks:
  - name: create
    request:
      method: POST
      path: /orders
      json: {sku: "${sku}", deployment: "${deployment.id}"}
    capture:
      order: {jmespath: id}
      etag: {header: ETag}
      where: {regex: 'ord-(\\d+)'}
  - name: read
    request:
      path: /orders/${order}
      headers: {If-Match: "${etag}", X-Where: "${where}"}
    assert:
      - jmespath: id
        equals: ${order}
""",
    )
    assert [c.status for c in suite.checks] == [Status.PASSED, Status.PASSED]
    create, read = responses.calls
    assert json.loads(create.request.body) == {"sku": "A-1", "deployment": "d-123"}
    assert read.request.headers["If-Match"] == "v1"
    assert read.request.headers["X-Where"] == "9"


@responses.activate
def test_a_capture_that_finds_nothing_fails_the_check(tmp_path: Path) -> None:
    responses.get(f"{URL}/a", json={"other": 1})
    suite = run(
        tmp_path,
        """\
name: flow
checks:
  - name: a
    request: {path: /a}
    capture:
      id: {jmespath: id}
""",
    )
    assert suite.checks[0].status is Status.FAILED
    assert "capture id: jmespath 'id' found nothing" in suite.checks[0].message


@responses.activate
def test_every_request_carries_the_default_headers(tmp_path: Path) -> None:
    responses.get(f"{URL}/", json={})
    run(tmp_path, "name: s\nchecks:\n  - name: root\n    request: {path: /}\n")
    headers = responses.calls[0].request.headers
    assert headers["User-Agent"].startswith("greenlight/")
    assert headers[DEPLOYMENT_HEADER] == "d-123"


@responses.activate
def test_without_assertions_a_check_asserts_a_non_error_status(tmp_path: Path) -> None:
    responses.get(f"{URL}/ok", status=302, headers={"Location": "/x"})
    responses.get(f"{URL}/bad", status=404)
    suite = run(
        tmp_path,
        """\
name: s
checks:
  - {name: ok, request: {path: /ok}}
  - {name: bad, request: {path: /bad}}
""",
    )
    statuses = {c.name: (c.status, c.message) for c in suite.checks}
    assert statuses["ok"][0] is Status.PASSED
    assert statuses["bad"] == (Status.FAILED, "status: expected to be < 400, got 404")


@responses.activate
def test_a_connection_error_is_a_failed_check_with_the_cause(tmp_path: Path) -> None:
    responses.get(f"{URL}/x", body=requests.exceptions.ConnectionError("Connection refused"))
    suite = run(tmp_path, "name: s\nchecks:\n  - {name: x, request: {path: /x}}\n")
    assert suite.checks[0].status is Status.FAILED
    assert suite.checks[0].message == "request failed: connection refused"


@responses.activate
def test_an_unset_environment_variable_fails_the_check_naming_it(tmp_path: Path) -> None:
    suite = run(
        tmp_path,
        """\
name: s
checks:
  - name: x
    request: {path: /x, headers: {Authorization: "Bearer ${env:GREENLIGHT_TEST_TOKEN_UNSET}"}}
""",
    )
    assert suite.checks[0].status is Status.FAILED
    assert "'GREENLIGHT_TEST_TOKEN_UNSET' is not set" in suite.checks[0].message
    assert len(responses.calls) == 0


@pytest.mark.timing
@responses.activate
def test_a_full_url_and_the_prod_listener(tmp_path: Path) -> None:
    responses.get("http://elsewhere.test/ping", json={})
    responses.get("http://blue.test/health", json={})
    path = tmp_path / "suite.yaml"
    path.write_text("""\
name: s
checks:
  - {name: full, request: {url: "http://elsewhere.test/ping"}}
  - {name: prod, request: {path: /health, listener: prod}}
""")
    result = run_suites(
        HttpSuiteKind().load(path),
        target=Target(URL, prod_url="http://blue.test"),
        deployment=INFO,
        deadline=Deadline.in_seconds(10),
    )
    assert all(c.status is Status.PASSED for c in each(result.suites[0].checks))


@pytest.mark.parametrize("sequential", [True, False])
@responses.activate
def test_the_order_of_results_is_stable_per_check_name(tmp_path: Path, sequential: bool) -> None:
    for i in range(5):
        responses.get(f"{URL}/{i}", json={})
    checks = "".join(f"  - {{name: c{i}, request: {{path: /{i}}}}}\n" for i in range(5))
    suite = run(tmp_path, f"name: s\nsequential: {str(sequential).lower()}\nchecks:\n{checks}")
    assert sorted(c.name for c in suite.checks) == [f"c{i}" for i in range(5)]
    if sequential:
        assert [c.name for c in suite.checks] == [f"c{i}" for i in range(5)]


@pytest.mark.timing
@responses.activate
def test_request_timeouts_come_from_the_check_then_the_suite_then_the_plan(
    tmp_path: Path,
) -> None:
    for name in ("own", "suite", "plan"):
        responses.get(f"{URL}/{name}", json={})
    path = tmp_path / "suite.yaml"
    path.write_text("""\
name: s
checks:
  - {name: own, request: {path: /own, timeout: 3}}
  - {name: plan, request: {path: /plan}}
""")
    path2 = tmp_path / "defaults.yaml"
    path2.write_text(
        "name: d\ndefaults: {timeout: 4}\nchecks:\n  - {name: suite, request: {path: /suite}}\n"
    )
    kind = HttpSuiteKind()
    run_suites(
        kind.load(path) + kind.load(path2),
        target=Target(URL),
        deployment=INFO,
        deadline=Deadline.in_seconds(30),
        request_timeout=2.5,
    )
    timeouts = {
        c.request.url.rsplit("/", 1)[1]: c.request.req_kwargs["timeout"] for c in responses.calls
    }
    assert timeouts == {"own": 3, "suite": 4, "plan": 2.5}
