"""The shipped example suites against the bundled sample service, on loopback."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

from hooks.cli.sample_service import SampleService
from hooks.core.deadline import Deadline
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import Status
from hooks.core.target import Target
from hooks.gate.decision import decide
from hooks.process.runner import RunResult, run_suites
from hooks.suites.base import DeploymentInfo
from hooks.suites.registry import discover
from tests.helpers import SUITES

#: Starts processes or measures time: CI runs these again under a CPU hog.
pytestmark = pytest.mark.timing

EXAMPLES = SUITES / "examples"
INFO = DeploymentInfo("d-EXAMPLES", "exec", LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC)


@pytest.fixture(scope="module")
def services() -> Iterator[dict[str, SampleService]]:
    running = {r: SampleService(r).start() for r in ("blue", "green", "broken")}
    yield running
    for service in running.values():
        service.stop()


#: Examples not run with the others: metrics read AWS (CloudWatch, moto in their own
#: tests). Here every suite shares one process, where the hook gives a load and a contract
#: suite a worker each: a load measures latency, and a contract suite's generation keeps
#: the interpreter busy (which shows in the compare example's latency medians), so each
#: runs alone below.
APART = {"metrics", "load", "openapi"}


@pytest.fixture(autouse=True)
def latency_measured_not_judged(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The compare example's latency budget is measured here and judged in the bench: the
    medians of an in-process service on a loaded machine are scheduling noise. The
    arithmetic of the judgement has unit tests of its own (test_compare)."""
    # the module (the package exports a function of the same name)
    compare = importlib.import_module("hooks.suites.http.compare")
    measured: list[tuple[int, int]] = []

    def measure(ratio: float, slack: float, blues: list[float], greens: list[float]) -> None:
        measured.append((len(blues), len(greens)))

    monkeypatch.setattr(compare, "judge_latency", measure)
    return measured


def run_examples(url: str, names: set[str] | None = None, prod_url: str | None = None) -> RunResult:
    catalog = discover(EXAMPLES)
    suites = [
        s
        for s in catalog.suites
        if (names is None and s.kind not in APART) or (names is not None and s.name in names)
    ]
    return run_suites(
        suites,
        target=Target(url, prod_url=prod_url),
        deployment=INFO,
        deadline=Deadline.in_seconds(30),
    )


def test_every_example_is_discovered() -> None:
    catalog = discover(EXAMPLES)
    assert {
        "smoke",
        "orders-flow",
        "api",
        "catalog",
        "catalog-load",
        "green-signals",
        "contract",
        "reachability",
    } <= set(catalog.names())
    assert not catalog.broken


def test_the_examples_are_not_run_from_the_default_suites_dir() -> None:
    assert discover(SUITES).names() == ["reachability"]


@pytest.mark.parametrize("release", ["blue", "green"])
def test_every_example_passes_against_a_good_release(
    services: dict[str, SampleService], release: str, latency_measured_not_judged: list[Any]
) -> None:
    result = run_examples(services[release].url, prod_url=services["blue"].url)
    assert latency_measured_not_judged == [(3, 3)]  # the catalog example's samples, each side
    failed = [
        (s.name, c.name, c.message)
        for s in result.suites
        for c in s.checks
        if c.status is not Status.PASSED
    ]
    assert failed == []
    assert {s.name for s in result.suites} == {
        "smoke",
        "orders-flow",
        "api",
        "catalog",
        "reachability",
    }
    assert decide(result.suites).succeeded


def test_the_contract_example_passes_against_a_good_release(
    services: dict[str, SampleService],
) -> None:
    result = run_examples(services["green"].url, {"contract"})
    (suite,) = result.suites
    assert {c.name: c.status for c in suite.checks} == {
        "GET /health": Status.PASSED,
        "GET /catalog": Status.PASSED,
        "GET /orders/{id}": Status.PASSED,
    }, [(c.name, c.message) for c in suite.checks]


def test_the_load_example_holds_its_thresholds_against_a_good_release(
    services: dict[str, SampleService],
) -> None:
    result = run_examples(services["green"].url, {"catalog-load"})
    (suite,) = result.suites
    assert {c.name: c.status for c in suite.checks} == {
        "arrival rate": Status.PASSED,
        "http_req_duration p(99) < 500": Status.PASSED,
        "http_req_duration p(50) < 150": Status.PASSED,
        "http_req_failed rate < 0.01": Status.PASSED,
        "http_reqs count >= 100": Status.PASSED,
        "dropped_iterations count == 0": Status.PASSED,
    }, [(c.name, c.message) for c in suite.checks]


def test_the_broken_release_fails_the_flow_with_the_actual_values(
    services: dict[str, SampleService],
) -> None:
    result = run_examples(services["broken"].url, {"smoke", "orders-flow"})
    by_name = {s.name: s for s in result.suites}
    assert by_name["smoke"].passed
    flow = by_name["orders-flow"]
    failed = {c.name: c for c in flow.failed_checks}
    assert set(failed) == {"read order back", "unknown order is a 404"}
    assert "status: expected to be 200, got 500" in failed["read order back"].failures
    assert "jmespath quantity: expected to equal 2, got nothing (absent)" in (
        failed["read order back"].failures
    )
    evidence = failed["read order back"].evidence
    assert evidence is not None
    assert evidence.body is not None
    assert "orders.qty" in evidence.body
    assert not decide(result.suites).succeeded


def test_the_broken_release_breaks_its_contract_with_a_reproducing_request(
    services: dict[str, SampleService],
) -> None:
    result = run_examples(services["broken"].url, {"contract"})
    checks = {c.name: c for c in result.suites[0].checks}
    assert {n: c.status for n, c in checks.items()} == {
        "GET /health": Status.PASSED,
        "GET /catalog": Status.PASSED,
        "GET /orders/{id}": Status.FAILED,
    }
    failed = checks["GET /orders/{id}"]
    assert failed.message.startswith("ST101 Server error: HTTP 500 (and 1 more); ")
    assert failed.evidence is not None
    assert failed.evidence.status == 500
    assert f"reproduce with: curl -X GET {services['broken'].url}/orders/" in failed.message


def test_the_broken_release_differs_from_production_in_one_price(
    services: dict[str, SampleService],
) -> None:
    result = run_examples(services["broken"].url, {"catalog"}, prod_url=services["blue"].url)
    (check,) = result.suites[0].checks
    assert check.status is Status.FAILED
    assert check.failures == ("body /items/1/price: blue 3, green 30",)
