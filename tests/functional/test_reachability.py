"""The built-in reachability suite, against loopback servers."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import pytest

from hooks.core.deadline import Deadline
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import Status
from hooks.core.target import Target
from hooks.process.runner import run_suites
from hooks.suites.base import DeploymentInfo
from hooks.suites.reachability import REACHABILITY
from tests.helpers import closed_port_url, http_server, reply, silent_server

INFO = DeploymentInfo("d-R", "exec", LifecycleEvent.BEFORE_INSTALL)


def check(url: str, request_timeout: float = 10.0) -> tuple[Status, str]:
    result = run_suites(
        [REACHABILITY],
        target=Target(url),
        deployment=INFO,
        deadline=Deadline.in_seconds(30),
        request_timeout=request_timeout,
    )
    (only,) = result.suites[0].checks
    return only.status, only.message


@pytest.mark.parametrize(("status", "verdict"), [(404, Status.PASSED), (302, Status.PASSED)])
def test_any_answer_below_500_passes(status: int, verdict: Status) -> None:
    paths: list[str] = []

    def answer(handler: BaseHTTPRequestHandler) -> None:
        paths.append(handler.path)
        reply(handler, status, headers={"Location": "/elsewhere"})

    with http_server(answer) as url:
        assert check(url) == (verdict, f"HTTP {status}")
    assert paths == ["/"]  # a redirect is an answer, not followed


def test_a_server_error_fails() -> None:
    with http_server(lambda handler: reply(handler, 502)) as url:
        assert check(url) == (Status.FAILED, f"GET {url}/ answered 502")


def test_no_connection_fails_with_the_cause() -> None:
    url = closed_port_url()
    assert check(url) == (Status.FAILED, f"cannot reach {url}/: connection refused")
    with silent_server() as silent:
        assert check(silent, request_timeout=0.3) == (
            Status.FAILED,
            f"cannot reach {silent}/: no complete response within 0.3s (connect, headers and body)",
        )
