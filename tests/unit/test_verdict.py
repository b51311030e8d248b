"""The verdict is a pure function of results and policy."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from hooks.core.results import CheckResult, Policy, Status, SuiteResult
from hooks.core.verdict import Verdict, VerdictStatus
from hooks.gate.decision import Planned, decide, decide_gate, decide_planned


def suite(
    name: str, *statuses: Status, policy: Policy | None = None, error: str | None = None
) -> SuiteResult:
    checks = tuple(CheckResult(f"c{i}", s, message=f"{s} #{i}") for i, s in enumerate(statuses))
    return SuiteResult(name, "http", checks, error=error, policy=policy or Policy())


def test_all_passed_succeeds() -> None:
    verdict = decide([suite("a", Status.PASSED, Status.PASSED), suite("b", Status.PASSED)])
    assert verdict.status is VerdictStatus.SUCCEEDED
    assert verdict.failed == ()


def test_one_failed_check_fails_and_is_named() -> None:
    verdict = decide([suite("a", Status.PASSED, Status.FAILED), suite("b", Status.PASSED)])
    assert verdict.status is VerdictStatus.FAILED
    assert verdict.reason == "suites failed: a (2 suites, 3 checks: 2 passed, 1 failed)"
    assert verdict.failed == ("a / c1: failed #1",)


def test_errors_and_timeouts_fail_like_failures() -> None:
    assert not decide([suite("a", Status.PASSED, Status.ERROR)]).succeeded
    assert not decide([suite("a", Status.PASSED, Status.TIMED_OUT)]).succeeded


def test_failure_limit_tolerates_that_many_failed_checks() -> None:
    within = suite("a", Status.PASSED, Status.FAILED, policy=Policy(failure_limit=1))
    beyond = suite("a", Status.PASSED, Status.FAILED, Status.FAILED, policy=Policy(failure_limit=1))
    verdict = decide([within])
    assert verdict.succeeded
    assert verdict.failed == ("a / c1: failed #1",)  # tolerated, still reported
    assert not decide([beyond]).succeeded


def test_report_only_failures_are_reported_but_do_not_fail_the_gate() -> None:
    verdict = decide(
        [suite("a", Status.PASSED), suite("new", Status.FAILED, policy=Policy(report_only=True))]
    )
    assert verdict.succeeded
    assert verdict.failed == ("new / c0: failed #0",)


def test_a_suite_that_could_not_load_fails() -> None:
    verdict = decide([suite("a", Status.PASSED), suite("broken", error="x.yaml:3: bad key")])
    assert not verdict.succeeded
    assert verdict.failed == ("broken: x.yaml:3: bad key",)


def test_skipped_is_not_passed_a_suite_with_nothing_passed_fails() -> None:
    assert decide([suite("a", Status.PASSED, Status.SKIPPED)]).succeeded
    verdict = decide([suite("a", Status.SKIPPED, Status.SKIPPED)])
    assert not verdict.succeeded
    assert "no check passed" in verdict.failed[0]


def test_nothing_tested_fails() -> None:
    assert decide([]).reason == "no suites ran: nothing was tested"
    assert not decide([suite("empty")]).succeeded


def test_the_deadline_fails_whatever_passed() -> None:
    verdict = decide([suite("a", Status.PASSED)], deadline_reached=True)
    assert not verdict.succeeded
    assert "deadline" in verdict.reason


def test_the_counts_add_up_with_skipped_and_tolerated_apart() -> None:
    verdict = decide(
        [
            suite("a", Status.PASSED, Status.PASSED, Status.SKIPPED),
            suite("b", Status.PASSED, Status.FAILED, policy=Policy(failure_limit=1)),
            suite(
                "c", Status.PASSED, Status.ERROR, Status.TIMED_OUT, policy=Policy(report_only=True)
            ),
        ]
    )
    assert verdict.succeeded
    # The statuses the JSON counts, each by its name: the text and the counts agree.
    assert verdict.reason == (
        "3 suites, 8 checks: 4 passed, 1 failed, 1 error, 1 timed out "
        "(3 tolerated by policy), 1 skipped"
    )


def test_one_suite_and_one_check_are_singular() -> None:
    assert decide([suite("a", Status.PASSED)]).reason == "1 suite, 1 check: 1 passed"


def test_a_gate_of_report_only_suites_alone_fails_closed() -> None:
    verdict = decide([suite("known-bad", *[Status.FAILED] * 3, policy=Policy(report_only=True))])
    assert not verdict.succeeded
    assert verdict.reason == (
        "every planned suite is report-only: nothing blocking was tested "
        "(1 suite, 3 checks: 0 passed, 3 failed (3 tolerated by policy))"
    )


def test_a_check_result_as_a_dict_holds_every_field() -> None:
    # to_dict is written out by hand: a field added to CheckResult or Evidence must be too.
    import dataclasses

    from hooks.core.results import CheckResult, Evidence, Status

    result = CheckResult(
        "c", Status.FAILED, 0.123456, "m", ("a", "b"), Evidence("GET /", 500, "x", 2), "f:1"
    )
    expected = dataclasses.asdict(result)
    expected.update(status="failed", failures=["a", "b"], duration=0.1235)
    del expected["data"]  # only a check that carries data (a load part's) writes the key
    assert result.to_dict() == expected
    carrying = dataclasses.replace(result, data={"load_part": {"part": [0, 2]}})
    assert carrying.to_dict() == {**expected, "data": {"load_part": {"part": [0, 2]}}}


@pytest.mark.parametrize(
    "statuses",
    [(Status.FAILED,), (Status.TIMED_OUT, Status.SKIPPED), (Status.ERROR, Status.FAILED)],
    ids=["one failed", "timed out and skipped", "error and failed"],
)
def test_nothing_passed_nothing_earned_whatever_the_failure_limit(
    statuses: tuple[Status, ...],
) -> None:
    verdict = decide([suite("a", *statuses, policy=Policy(failure_limit=5))])
    assert not verdict.succeeded
    assert verdict.reason.startswith("suites failed: a ")
    ran = f"{len(statuses)} check{'' if len(statuses) == 1 else 's'}"
    assert verdict.failed[-1] == f"a: no check passed ({ran}, none passed)"


PLANNED = [
    Planned("smoke", "http", Policy(), checks=("root", "health")),
    Planned("flow", "http", Policy(failure_limit=1)),
]


def test_results_fill_the_planned_slots_under_the_plans_policy() -> None:
    came_back = [
        suite("smoke", Status.PASSED, Status.PASSED, policy=Policy(report_only=True)),
        suite("flow", Status.PASSED, Status.FAILED, policy=Policy(failure_limit=99)),
    ]
    root, health = came_back[0].checks
    came_back[0] = replace(
        came_back[0], checks=(replace(root, name="root"), replace(health, name="health"))
    )
    verdict, filled = decide_planned(PLANNED, came_back, "shard 0")
    assert verdict.succeeded
    assert [s.policy for s in filled] == [Policy(), Policy(failure_limit=1)]


@pytest.mark.parametrize(
    ("came_back", "named"),
    [
        ([suite("flow", Status.PASSED)], "smoke: no result came back for it from shard 0"),
        (
            [suite("smoke", Status.PASSED), suite("flow", Status.PASSED)],
            "smoke: 2 planned check(s) had no result from shard 0: root, health",
        ),
        (
            [
                suite("smoke", Status.PASSED),
                suite("smoke", Status.PASSED),
                suite("flow", Status.PASSED),
            ],
            "smoke: 2 results came back for it from shard 0, where one was planned",
        ),
        (
            [suite("flow", Status.PASSED), suite("extra", Status.PASSED)],
            "extra: shard 0 returned a result for a suite that was not planned",
        ),
    ],
    ids=["missing suite", "missing check", "duplicate", "unplanned"],
)
def test_a_missing_duplicated_or_unplanned_result_fails_naming_it(
    came_back: list[SuiteResult], named: str
) -> None:
    verdict, _ = decide_planned(PLANNED, came_back, "shard 0")
    assert not verdict.succeeded
    assert named in verdict.failed


# ---- the property: Succeeded implies every planned blocking check passed, here ----

#: Mostly passing, so that runs that deserve Succeeded are common, with every other status.
_STATUS = st.sampled_from([Status.PASSED] * 6 + list(Status))
_NAMES = ["a", "b", "c"]


@st.composite
def _cases(draw: st.DrawFn) -> tuple[list[Planned], list[SuiteResult]]:
    """A plan, and results shaped after it — then missing, duplicated, foreign, with checks
    dropped or added, policies tampered with, statuses mixed."""
    planned = [
        Planned(
            name,
            "http",
            Policy(report_only=draw(st.booleans()), failure_limit=draw(st.integers(0, 2))),
            checks=tuple(draw(st.lists(st.sampled_from(["x", "y", "z"]), unique=True, max_size=3))),
        )
        for name in draw(st.lists(st.sampled_from(_NAMES), unique=True, min_size=1, max_size=3))
    ]
    results = []
    extra = ["foreign"] if draw(st.integers(0, 4)) == 0 else []
    for name in [p.name for p in planned] + extra:
        slot = next((p for p in planned if p.name == name), None)
        for _ in range(draw(st.sampled_from([1, 1, 1, 1, 0, 2]))):
            names = list(slot.checks if slot else ()) + draw(
                st.lists(st.sampled_from(["v", "w"]), unique=True, max_size=2)
            )
            if names and draw(st.integers(0, 4)) == 0:
                names.pop(draw(st.integers(0, len(names) - 1)))  # a planned check left out
            checks = tuple(CheckResult(check, draw(_STATUS)) for check in names)
            tampered = Policy(
                report_only=draw(st.booleans()), failure_limit=draw(st.integers(0, 99))
            )
            error = "crashed" if draw(st.integers(0, 5)) == 0 else None
            results.append(SuiteResult(name, "http", checks, error=error, policy=tampered))
    return planned, results


def test_the_generated_cases_include_runs_that_deserve_to_pass() -> None:
    """Else the property below would hold for want of a single Succeeded."""
    found = find(_cases(), lambda case: decide_planned(*case, "here")[0].succeeded)
    assert found[0]


@settings(max_examples=400, deadline=None)
@given(_cases(), st.booleans())
def test_succeeded_implies_every_planned_blocking_check_passed_in_this_run(
    case: tuple[list[Planned], list[SuiteResult]], deadline_reached: bool
) -> None:
    planned, results = case
    verdict, _ = decide_planned(planned, results, "here", deadline_reached=deadline_reached)
    if not verdict.succeeded:
        return
    assert not deadline_reached
    blocking = [p for p in planned if not p.policy.report_only]
    assert blocking, "a pass with nothing blocking planned"
    names = [r.name for r in results]
    assert set(names) <= {p.name for p in planned}, "a pass with a result nobody planned"
    for slot in blocking:
        assert names.count(slot.name) == 1, "a pass with a blocking suite missing or twice"
        (result,) = [r for r in results if r.name == slot.name]
        assert result.error is None
        statuses = {c.name: c.status for c in result.checks}
        assert set(slot.checks) <= set(statuses), "a pass with a planned check missing"
        passed = [c for c in result.checks if c.status is Status.PASSED]
        assert passed, "a pass for a suite where nothing passed"
        failures = [c for c in result.checks if c.status.is_failure]
        assert len(failures) <= slot.policy.failure_limit, "the result's own policy was used"


# ---- an Amazon ECS gate's call: its verdict, or another call ----


def _gate(*suites: SuiteResult, earlier: tuple[str, ...] = (), not_ready: bool = False) -> Any:
    verdict = decide(list(suites)) if suites else Verdict.failure("not run")
    return decide_gate(verdict, list(suites), earlier=earlier, not_ready=not_ready, attempt=2)


def test_a_gate_with_a_suite_cut_short_goes_on_carrying_what_passed() -> None:
    step = _gate(suite("a", Status.PASSED), suite("b", Status.TIMED_OUT), earlier=("c",))
    assert step.unfinished == ("b",)
    assert step.passed == ("c", "a")


def test_a_blocking_failure_ends_a_gate_at_once_whatever_is_unfinished() -> None:
    step = _gate(suite("b", Status.TIMED_OUT), suite("a", Status.FAILED))
    assert step.unfinished == ()
    assert step.verdict.reason.startswith("suite a failed (attempt 2): ")
    assert not step.verdict.succeeded


def test_a_report_only_failure_does_not_end_a_gate() -> None:
    step = _gate(
        suite("b", Status.TIMED_OUT), suite("a", Status.FAILED, policy=Policy(report_only=True))
    )
    assert step.unfinished == ("b",)


def test_a_gate_waiting_for_green_judges_nothing_yet() -> None:
    step = _gate(suite("a", Status.FAILED), not_ready=True)
    assert step.unfinished == ("(waiting for the green targets to be healthy)",)


def test_a_finished_gate_names_what_passed_at_earlier_calls() -> None:
    step = _gate(suite("b", Status.PASSED), earlier=("a",))
    assert step.unfinished == ()
    assert step.verdict.succeeded
    assert step.verdict.reason.endswith("; passed in earlier calls: a")
