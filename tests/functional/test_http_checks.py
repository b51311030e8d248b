"""Running declarative checks against a scripted loopback server: polling, flows, evidence,
timeouts. The requests go over real sockets, through the engine the checks send with."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from hooks.core.deadline import Deadline
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import Status, SuiteResult
from hooks.core.target import DEPLOYMENT_HEADER, Target
from hooks.process.runner import run_suites
from hooks.suites.base import DeploymentInfo
from hooks.suites.http import HttpSuiteKind
from tests.helpers import closed_port_url, each, http_server, reply, silent_server

INFO = DeploymentInfo("d-123", "exec-1", LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC, "shop", "orders")
Answer = tuple[int, Any, dict[str, str]]


@dataclass
class Call:
    method: str
    path: str
    headers: Any  # the request's header fields (case-insensitive lookups)
    body: bytes


class Script:
    """Answers each path with its answers in turn (the last one repeats) and records every
    request; a path it does not know gets a 404."""

    def __init__(self, routes: dict[str, list[Answer]]) -> None:
        self.routes = {path: list(answers) for path, answers in routes.items()}
        self.calls: list[Call] = []
        self.lock = threading.Lock()

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            self.calls.append(Call(handler.command, handler.path, handler.headers, body))
            answers = self.routes.get(handler.path.split("?")[0], [(404, None, {})])
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
        reply(handler, *answer)


@pytest.fixture
def script() -> Iterator[tuple[Script, str]]:
    scripted = Script({})
    with http_server(scripted) as url:
        yield scripted, url


def ok(body: Any = None, **headers: str) -> Answer:
    return (200, {} if body is None else body, headers)


def run(tmp_path: Path, url: str, text: str, seconds: float = 10) -> SuiteResult:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    suites = HttpSuiteKind().load(path)
    result = run_suites(
        suites, target=Target(url), deployment=INFO, deadline=Deadline.in_seconds(seconds)
    )
    (suite,) = result.suites
    return suite


def test_polling_retries_until_the_target_is_ready(
    tmp_path: Path, script: tuple[Script, str]
) -> None:
    server, url = script
    server.routes["/health"] = [(503, None, {}), (503, None, {}), ok({"status": "ok"})]
    suite = run(
        tmp_path,
        url,
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
    assert len(server.calls) == 3


def test_polling_gives_up_after_its_retries_with_every_failure(
    tmp_path: Path, script: tuple[Script, str]
) -> None:
    server, url = script
    server.routes["/health"] = [(503, {"status": "starting"}, {})]
    suite = run(
        tmp_path,
        url,
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
    assert len(server.calls) == 3
    assert check.failures == (
        "status: expected to be 200, got 503",
        "jmespath status: expected to equal 'ok', got 'starting'",
    )
    assert check.message.endswith("[after 3 attempts]")
    assert check.evidence is not None
    assert check.evidence.request == f"GET {url}/health"
    assert check.evidence.status == 503
    assert check.evidence.body == '{"status": "starting"}'


def test_captures_feed_later_checks_in_order(tmp_path: Path, script: tuple[Script, str]) -> None:
    server, url = script
    server.routes["/orders"] = [(201, {"id": "ord-9"}, {"ETag": "v1", "Location": "/orders/ord-9"})]
    server.routes["/orders/ord-9"] = [ok({"id": "ord-9", "etag": "v1", "token": "t-42"})]
    suite = run(
        tmp_path,
        url,
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
    create, read = server.calls
    assert (create.method, read.method) == ("POST", "GET")
    assert create.headers["Content-Type"] == "application/json"
    assert json.loads(create.body) == {"sku": "A-1", "deployment": "d-123"}
    assert read.headers["If-Match"] == "v1"
    assert read.headers["X-Where"] == "9"


def test_a_capture_that_finds_nothing_fails_the_check(
    tmp_path: Path, script: tuple[Script, str]
) -> None:
    server, url = script
    server.routes["/a"] = [ok({"other": 1})]
    suite = run(
        tmp_path,
        url,
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


def test_every_request_carries_the_default_headers(
    tmp_path: Path, script: tuple[Script, str]
) -> None:
    server, url = script
    server.routes["/"] = [ok()]
    run(tmp_path, url, "name: s\nchecks:\n  - name: root\n    request: {path: /}\n")
    headers = server.calls[0].headers
    assert headers["User-Agent"].startswith("greenlight/")
    assert headers[DEPLOYMENT_HEADER] == "d-123"
    assert headers["Accept-Encoding"] == "gzip, deflate"


def test_without_assertions_a_check_asserts_a_non_error_status(
    tmp_path: Path, script: tuple[Script, str]
) -> None:
    server, url = script
    server.routes["/ok"] = [(302, None, {"Location": "/x"})]
    server.routes["/bad"] = [(404, None, {})]
    suite = run(
        tmp_path,
        url,
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
    assert [c.path for c in server.calls if c.path == "/x"] == []  # not followed unless asked


def test_a_connection_error_is_a_failed_check_with_the_cause(tmp_path: Path) -> None:
    suite = run(
        tmp_path, closed_port_url(), "name: s\nchecks:\n  - {name: x, request: {path: /x}}\n"
    )
    assert suite.checks[0].status is Status.FAILED
    assert suite.checks[0].message == "request failed: connection refused"


def test_an_unset_environment_variable_fails_the_check_naming_it(
    tmp_path: Path, script: tuple[Script, str]
) -> None:
    server, url = script
    suite = run(
        tmp_path,
        url,
        """\
name: s
checks:
  - name: x
    request: {path: /x, headers: {Authorization: "Bearer ${env:GREENLIGHT_TEST_TOKEN_UNSET}"}}
""",
    )
    assert suite.checks[0].status is Status.FAILED
    assert "'GREENLIGHT_TEST_TOKEN_UNSET' is not set" in suite.checks[0].message
    assert len(server.calls) == 0


def test_a_full_url_and_the_prod_listener(tmp_path: Path) -> None:
    green, blue, elsewhere = Script({}), Script({"/health": [ok()]}), Script({"/ping": [ok()]})
    with (
        http_server(green) as green_url,
        http_server(blue, "127.0.0.2") as blue_url,
        http_server(elsewhere, "127.0.0.3") as elsewhere_url,
    ):
        path = tmp_path / "suite.yaml"
        path.write_text(f"""\
name: s
checks:
  - {{name: full, request: {{url: "{elsewhere_url}/ping"}}}}
  - {{name: prod, request: {{path: /health, listener: prod}}}}
""")
        result = run_suites(
            HttpSuiteKind().load(path),
            target=Target(green_url, prod_url=blue_url),
            deployment=INFO,
            deadline=Deadline.in_seconds(10),
        )
    assert all(c.status is Status.PASSED for c in each(result.suites[0].checks))
    assert ([c.path for c in blue.calls], [c.path for c in elsewhere.calls]) == (
        ["/health"],
        ["/ping"],
    )
    assert green.calls == []


@pytest.mark.parametrize("sequential", [True, False])
def test_the_order_of_results_is_stable_per_check_name(
    tmp_path: Path, script: tuple[Script, str], sequential: bool
) -> None:
    server, url = script
    for i in range(5):
        server.routes[f"/{i}"] = [ok()]
    checks = "".join(f"  - {{name: c{i}, request: {{path: /{i}}}}}\n" for i in range(5))
    suite = run(tmp_path, url, f"name: s\nsequential: {str(sequential).lower()}\nchecks:\n{checks}")
    assert sorted(c.name for c in suite.checks) == [f"c{i}" for i in range(5)]
    assert each(c.status is Status.PASSED for c in suite.checks)
    if sequential:
        assert [c.name for c in suite.checks] == [f"c{i}" for i in range(5)]


def test_request_timeouts_come_from_the_check_then_the_suite_then_the_plan(
    tmp_path: Path,
) -> None:
    """Against a server that never answers, each check gives up at its own timeout, and says
    which it was."""
    path = tmp_path / "suite.yaml"
    path.write_text("""\
name: s
checks:
  - {name: own, request: {path: /own, timeout: 0.3}}
  - {name: plan, request: {path: /plan}}
""")
    path2 = tmp_path / "defaults.yaml"
    path2.write_text(
        "name: d\ndefaults: {timeout: 0.4}\nchecks:\n  - {name: suite, request: {path: /suite}}\n"
    )
    kind = HttpSuiteKind()
    with silent_server() as url:
        started = time.monotonic()
        result = run_suites(
            kind.load(path) + kind.load(path2),
            target=Target(url),
            deployment=INFO,
            deadline=Deadline.in_seconds(30),
            request_timeout=0.5,
        )
        took = time.monotonic() - started
    messages = {c.name: c.message for s in result.suites for c in s.checks}
    assert messages == {
        name: f"request failed: no complete response within {limit}s (connect, headers and body)"
        for name, limit in (("own", "0.3"), ("suite", "0.4"), ("plan", "0.5"))
    }
    # Ended by each request's own timer, not by the deadline (30 s) nor by a waiting
    # check's last resort (the timeout plus five seconds).
    assert took < 5
