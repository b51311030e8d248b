"""The runner: bounded concurrency, the deadline, policies and guarded plugins."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from hooks.core.deadline import Deadline
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import CheckResult, Status
from hooks.core.target import Target
from hooks.gate.decision import decide
from hooks.process.runner import run_suites
from hooks.suites.base import Check, CheckSuite, DeploymentInfo, Suite, SuiteContext
from hooks.suites.http import HttpSuiteKind
from tests.helpers import InFlight, each, http_server, reply, silent_server

INFO = DeploymentInfo("d-RUN", "exec", LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC)


def suite_file(tmp_path: Path, name: str, body: str) -> list[Suite]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n{body}")
    return HttpSuiteKind().load(path)


def checks(count: int, path: str = "/") -> str:
    return "checks:\n" + "".join(
        f"  - {{name: c{i}, request: {{path: '{path}'}}}}\n" for i in range(count)
    )


@pytest.mark.timing
def test_independent_checks_run_concurrently_up_to_the_bound(tmp_path: Path) -> None:
    server = InFlight(until=4)
    with http_server(server) as url:
        result = run_suites(
            suite_file(tmp_path, "many", checks(12)),
            target=Target(url),
            deployment=INFO,
            deadline=Deadline.in_seconds(30),
            concurrency=4,
        )
    assert server.total == 12
    assert server.peak == 4
    assert all(c.status is Status.PASSED for c in each(result.suites[0].checks))


@pytest.mark.timing
def test_a_sequential_suite_sends_one_request_at_a_time(tmp_path: Path) -> None:
    server = InFlight(delay=0.01)
    with http_server(server) as url:
        run_suites(
            suite_file(tmp_path, "seq", "sequential: true\n" + checks(5)),
            target=Target(url),
            deployment=INFO,
            deadline=Deadline.in_seconds(30),
            concurrency=8,
        )
    assert server.peak == 1
    assert server.total == 5


@pytest.mark.timing
def test_at_the_deadline_running_checks_are_timed_out_by_name(tmp_path: Path) -> None:
    with http_server(lambda h: reply(h, 200, {})) as fast, silent_server() as hung:
        suites = suite_file(
            tmp_path,
            "mixed",
            f"""\
checks:
  - {{name: quick, request: {{url: "{fast}/"}}}}
  - {{name: stuck-1, request: {{url: "{hung}/", timeout: 60}}}}
  - {{name: stuck-2, request: {{url: "{hung}/", timeout: 60}}}}
""",
        )
        deadline = 1.5
        started = time.monotonic()
        result = run_suites(
            suites, target=Target(fast), deployment=INFO, deadline=Deadline.in_seconds(deadline)
        )
        elapsed = time.monotonic() - started
    assert elapsed < 3 * deadline  # returned at the deadline, not at the requests' 60 s
    assert result.deadline_reached
    statuses = {c.name: c.status for c in result.suites[0].checks}
    assert statuses == {
        "quick": Status.PASSED,
        "stuck-1": Status.TIMED_OUT,
        "stuck-2": Status.TIMED_OUT,
    }
    assert not decide(result.suites, deadline_reached=result.deadline_reached).succeeded


@pytest.mark.timing
def test_checks_of_a_flow_not_yet_started_at_the_deadline_are_named(tmp_path: Path) -> None:
    with silent_server() as hung:
        suites = suite_file(
            tmp_path,
            "flow",
            f"""\
sequential: true
checks:
  - {{name: first, request: {{url: "{hung}/"}}}}
  - {{name: second, request: {{path: /}}}}
""",
        )
        result = run_suites(
            suites, target=Target(hung), deployment=INFO, deadline=Deadline.in_seconds(1)
        )
    checks_by_name = {c.name: c for c in result.suites[0].checks}
    assert checks_by_name["second"].status is Status.TIMED_OUT
    assert checks_by_name["first"].status is Status.TIMED_OUT


@pytest.mark.timing
def test_failure_limit_and_report_only_through_suite_files(tmp_path: Path) -> None:
    def handle(h: BaseHTTPRequestHandler) -> None:
        reply(h, 500 if h.path == "/bad" else 200, {})

    with http_server(handle) as url:
        tolerant = suite_file(
            tmp_path,
            "tolerant",
            "failure_limit: 1\n"
            + """\
checks:
  - {name: good, request: {path: /}}
  - {name: bad, request: {path: /bad}}
""",
        )
        onboarding = suite_file(tmp_path, "onboarding", "report_only: true\n" + checks(2, "/bad"))
        result = run_suites(
            tolerant + onboarding,
            target=Target(url),
            deployment=INFO,
            deadline=Deadline.in_seconds(10),
        )
        verdict = decide(result.suites)
        strict = suite_file(tmp_path, "strict", checks(1, "/bad"))
        strict_result = run_suites(
            strict, target=Target(url), deployment=INFO, deadline=Deadline.in_seconds(10)
        )
    assert verdict.succeeded
    assert len(verdict.failed) == 3  # one tolerated, two report-only: all reported
    assert not decide(strict_result.suites).succeeded


class Raising(Check):
    name = "explodes"

    def run(self, ctx: SuiteContext) -> CheckResult:
        raise KeyError("missing field")


class Fine(Check):
    name = "fine"

    def run(self, ctx: SuiteContext) -> CheckResult:
        return CheckResult(self.name, Status.PASSED)


class RaisingSuite(Suite):
    name = "bad-plugin-suite"
    kind = "custom"

    def run(self, ctx: SuiteContext) -> None:
        raise RuntimeError("plugin bug")


@pytest.mark.timing
def test_a_check_that_raises_is_an_error_naming_the_check_and_others_still_run() -> None:
    suite = CheckSuite(name="custom", kind="custom", checks=[Raising(), Fine()])
    result = run_suites(
        [suite, RaisingSuite()],
        target=Target("http://127.0.0.1:9"),
        deployment=INFO,
        deadline=Deadline.in_seconds(5),
    )
    first, second = result.suites
    statuses = {c.name: (c.status, c.message) for c in first.checks}
    assert statuses["explodes"] == (Status.ERROR, "check raised KeyError: 'missing field'")
    assert statuses["fine"][0] is Status.PASSED
    assert second.error == "suite 'bad-plugin-suite' (custom) raised RuntimeError: plugin bug"
    assert not decide(result.suites).succeeded


@pytest.mark.timing
def test_suites_run_concurrently_under_the_same_bound(tmp_path: Path) -> None:
    server = InFlight(until=3)
    with http_server(server) as url:
        suites = [s for i in range(6) for s in suite_file(tmp_path, f"s{i}", checks(1))]
        result = run_suites(
            suites,
            target=Target(url),
            deployment=INFO,
            deadline=Deadline.in_seconds(30),
            concurrency=3,
        )
    assert server.total == 6
    assert server.peak == 3
    assert all(s.passed for s in each(result.suites))


class _Instant(Check):
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, ctx: SuiteContext) -> CheckResult:
        return CheckResult(self.name, Status.PASSED)


@pytest.mark.timing
def test_every_suites_end_is_told_before_the_run_returns() -> None:
    # The worker exits as soon as run_suites returns: a suite whose end the listener had
    # not yet been told of would read as unfinished (a spurious Failed).
    told: list[str] = []

    class SlowListener:
        def started(self, suite: Suite) -> None:
            pass

        def expected(self, suite: Suite, names: list[str]) -> None:
            pass

        def check(self, suite: Suite, result: CheckResult) -> None:
            pass

        def finished(self, suite: Suite, error: str | None) -> None:
            time.sleep(0.2)  # a slow pipe
            told.append(suite.name)

    suites = [CheckSuite(name=f"s{i}", kind="test", checks=[_Instant("x")]) for i in range(3)]
    run_suites(
        suites,
        target=Target("http://127.0.0.1:9"),
        deployment=INFO,
        deadline=Deadline.in_seconds(10),
        listener=SlowListener(),
    )
    assert sorted(told) == ["s0", "s1", "s2"]


class _Queued(Check):
    """Records how many tasks wait on the pool's queue when it runs."""

    seen: list[int] = []

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, ctx: SuiteContext) -> CheckResult:
        self.seen.append(ctx.pool._queue.qsize())
        return CheckResult(self.name, Status.PASSED)


@pytest.mark.timing
def test_a_large_suite_is_queued_a_window_at_a_time_and_every_check_reports() -> None:
    _Queued.seen = []
    count, concurrency = 3000, 2
    suite = CheckSuite(name="big", kind="test", checks=[_Queued(f"c{i}") for i in range(count)])
    result = run_suites(
        [suite],
        target=Target("http://127.0.0.1:9"),
        deployment=INFO,
        deadline=Deadline.in_seconds(30),
        concurrency=concurrency,
    )
    (only,) = result.suites
    assert sorted(c.name for c in only.checks) == sorted(f"c{i}" for i in range(count))
    assert only.passed
    assert max(_Queued.seen) <= 4 * concurrency  # QUEUED_PER_THREAD per thread, not all
