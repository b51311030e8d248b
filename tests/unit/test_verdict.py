"""The verdict is a pure function of results and policy."""

from __future__ import annotations

from hooks.results import CheckResult, Policy, Status, SuiteResult
from hooks.verdict import VerdictStatus, decide


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
    assert verdict.reason == (
        "3 suites, 8 checks: 4 passed, 3 failed (3 tolerated by policy), 1 skipped"
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

    from hooks.results import CheckResult, Evidence, Status

    result = CheckResult(
        "c", Status.FAILED, 0.123456, "m", ("a", "b"), Evidence("GET /", 500, "x", 2), "f:1"
    )
    expected = dataclasses.asdict(result)
    expected.update(status="failed", failures=["a", "b"], duration=0.1235)
    del expected["data"]  # only a check that carries data (a load part's) writes the key
    assert result.to_dict() == expected
    carrying = dataclasses.replace(result, data={"load_part": {"part": [0, 2]}})
    assert carrying.to_dict() == {**expected, "data": {"load_part": {"part": [0, 2]}}}
