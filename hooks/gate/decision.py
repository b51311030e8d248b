"""Every verdict is decided here, by one set of rules, from two inputs.

Five surfaces decide: a single run, an Amazon ECS gate's continuation, the Step Functions
conclusion, a load merged from its parts, and the fail-safe. Each gives this module what its
own plan says must run (:class:`Planned`: names, policies, the checks declared ahead) and the
results that came back — from its workers, a shard's file, an earlier call. Results are data:
they fill the slots of planned suites and checks, and nothing else. The policy is the plan's,
whatever a result says; a planned suite or check with no result, a result for something
nobody planned, two results for one suite: each is a failure that names it. Then:

- ``Succeeded`` only when every planned blocking suite passed: at least one check passed,
  and its failed checks are within ``failure_limit`` (which tolerates failures among checks
  that ran; it never turns "nothing passed" into a pass);
- a plan with nothing planned, or only report-only suites, fails: nothing blocking was tested;
- reaching the deadline fails, whatever else happened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hooks.core.results import CheckResult, Policy, Status, SuiteResult
from hooks.core.verdict import Verdict, VerdictStatus, describe_failures, tally

__all__ = [
    "GateStep",
    "Planned",
    "decide",
    "decide_gate",
    "decide_planned",
    "fail_safe_reports",
    "fill",
    "planned_from",
]


@dataclass(frozen=True)
class Planned:
    """A suite the deciding process's own plan says must run, and how it counts."""

    name: str
    kind: str
    policy: Policy
    #: Checks it must report, known ahead (a YAML suite's); more may be learned as it runs
    #: (pytest collects), and each of those must report too.
    checks: tuple[str, ...] = ()
    source: str | None = None


def planned_from(listed: Sequence[Any], policies: Mapping[str, Policy]) -> list[Planned]:
    """The slots of a catalog worker's listing of the plan (its suites, the checks each
    declared), under the plan's own policy for a suite wherever the plan names one (a copy
    per green task, ``NAME @ task``, is under NAME's)."""
    return [
        Planned(
            suite.name,
            suite.kind,
            policies.get(suite.name.split(" @ ", 1)[0], suite.policy),
            tuple(suite.expected),
            suite.source,
        )
        for suite in listed
    ]


def fill(
    planned: Sequence[Planned], results: Sequence[SuiteResult], where: str
) -> list[SuiteResult]:
    """One result per planned suite, in the plan's order, each under the plan's policy.

    ``where`` names what the results came from (``shard 3 of the state machine``), for the
    failures this adds: a planned suite or check with no result, a suite with two results,
    a result for a suite nobody planned (kept, failing, so the verdict names it).
    """
    by_name: dict[str, list[SuiteResult]] = {}
    for result in results:
        by_name.setdefault(result.name, []).append(result)
    filled: list[SuiteResult] = []
    for slot in planned:
        found = by_name.pop(slot.name, [])
        if len(found) != 1:
            problem = (
                f"no result came back for it from {where}"
                if not found
                else f"{len(found)} results came back for it from {where}, where one was planned"
            )
            filled.append(
                SuiteResult(
                    slot.name, slot.kind, error=problem, policy=slot.policy, source=slot.source
                )
            )
            continue
        result = replace(found[0], policy=slot.policy)
        seen = {check.name for check in result.checks}
        missing = [name for name in slot.checks if name not in seen]
        if missing:
            # A check that never ran is no failure among checks that ran: no failure_limit
            # tolerates it.
            gone = tuple(
                CheckResult(
                    name, Status.ERROR, message=f"planned, and no result came back from {where}"
                )
                for name in missing
            )
            error = result.error or (
                f"{len(missing)} planned check(s) had no result from {where}: {', '.join(missing)}"
            )
            result = replace(result, checks=result.checks + gone, error=error)
        filled.append(result)
    for name, extra in by_name.items():
        filled.append(
            SuiteResult(
                name,
                extra[0].kind,
                error=f"{where} returned a result for a suite that was not planned",
            )
        )
    return filled


def decide(suites: Sequence[SuiteResult], *, deadline_reached: bool = False) -> Verdict:
    """The verdict on filled results (see the module's rules)."""
    if not suites:
        return Verdict.failure("no suites ran: nothing was tested")
    failed: list[str] = []
    blocking: list[str] = []
    for suite in suites:
        failed.extend(describe_failures(suite))
        if not suite.passed and not suite.policy.report_only:
            blocking.append(suite.name)
    counts = tally(suites)
    if deadline_reached:
        return Verdict.failure(f"deadline reached before all checks finished ({counts})", failed)
    if blocking:
        return Verdict.failure(f"suites failed: {', '.join(blocking)} ({counts})", failed)
    if all(s.policy.report_only for s in suites):
        return Verdict.failure(
            f"every planned suite is report-only: nothing blocking was tested ({counts})", failed
        )
    return Verdict(VerdictStatus.SUCCEEDED, counts, tuple(failed))


def decide_planned(
    planned: Sequence[Planned],
    results: Sequence[SuiteResult],
    where: str,
    *,
    deadline_reached: bool = False,
) -> tuple[Verdict, list[SuiteResult]]:
    """:func:`fill`, then :func:`decide`: the verdict and the filled results."""
    suites = fill(planned, results, where)
    return decide(suites, deadline_reached=deadline_reached), suites


#: The lifecycle event statuses that still wait for a hook's report.
_AWAITING = frozenset({"Pending", "InProgress", "Unknown"})


def fail_safe_reports(status: str | None) -> bool:
    """Whether the fail-safe reports ``Failed`` for a hook that ended without a word: only
    while its lifecycle event still waits for one — or when that cannot be read (then
    CodeDeploy itself refuses a report for an event already complete, which is read as
    "already reported"). A verdict the hook gave is never contradicted."""
    return status is None or status in _AWAITING


@dataclass(frozen=True)
class GateStep:
    """An Amazon ECS gate's call, decided: its verdict, or (``unfinished``) another call."""

    verdict: Verdict
    #: The suites that passed, at this call or earlier ones (what the next call may skip).
    passed: tuple[str, ...] = ()
    #: What a next call could finish (empty: the verdict is final).
    unfinished: tuple[str, ...] = ()


def decide_gate(
    verdict: Verdict,
    suites: Sequence[SuiteResult] | None,
    *,
    earlier: Sequence[str],
    not_ready: bool,
    attempt: int,
) -> GateStep:
    """This call's verdict (decided on its own plan's slots), or more calls: a gate that
    could not finish (green not healthy yet, suites cut by this call's deadline or not
    judgeable before it, such as a metrics window still open) goes on, carrying what passed;
    a blocking suite that failed ends it at once. ``earlier`` are the suites that passed at
    earlier calls, as their verified progress says (progress that did not verify is none).
    """
    passed = list(earlier)
    unfinished: list[str] = []
    if not_ready:
        unfinished = ["(waiting for the green targets to be healthy)"]
    judged = () if not_ready else (suites or ())
    for suite in judged:
        # A timed-out check was cut by this call's deadline, or knew it could not be judged
        # before it: the next call can finish it.
        cut = any(c.status is Status.TIMED_OUT for c in suite.checks) or (
            suite.error is not None and "did not run" in suite.error
        )
        if cut:
            unfinished.append(suite.name)
        elif not suite.passed and not suite.policy.report_only:
            return GateStep(
                Verdict.failure(
                    f"suite {suite.name} failed (attempt {attempt}): {verdict.reason}",
                    verdict.failed,
                )
            )
        elif suite.name not in passed:
            passed.append(suite.name)
    if unfinished:
        return GateStep(verdict, tuple(passed), tuple(unfinished))
    ran = {suite.name for suite in suites or ()}
    before = [name for name in earlier if name not in ran]
    if verdict.succeeded and before:
        verdict = Verdict(
            verdict.status,
            f"{verdict.reason}; passed in earlier calls: {', '.join(before)}",
            verdict.failed,
        )
    return GateStep(verdict, tuple(passed))
