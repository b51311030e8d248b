"""The built-in reachability suite (mocked HTTP)."""

from __future__ import annotations

import requests
import responses

from hooks.core.deadline import Deadline
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import Status
from hooks.core.target import Target
from hooks.process.runner import run_suites
from hooks.suites.base import DeploymentInfo
from hooks.suites.reachability import REACHABILITY

INFO = DeploymentInfo("d-R", "exec", LifecycleEvent.BEFORE_INSTALL)


def check(url: str = "http://green.test") -> tuple[Status, str]:
    result = run_suites(
        [REACHABILITY], target=Target(url), deployment=INFO, deadline=Deadline.in_seconds(5)
    )
    (only,) = result.suites[0].checks
    return only.status, only.message


@responses.activate
def test_any_answer_below_500_passes() -> None:
    responses.get("http://green.test/", status=404)
    assert check() == (Status.PASSED, "HTTP 404")


@responses.activate
def test_a_server_error_fails() -> None:
    responses.get("http://green.test/", status=502)
    assert check() == (Status.FAILED, "GET http://green.test/ answered 502")


@responses.activate
def test_no_connection_fails_with_the_cause() -> None:
    responses.get("http://green.test/", body=requests.exceptions.ConnectTimeout())
    assert check() == (Status.FAILED, "cannot reach http://green.test/: connection timed out")
