"""The built-in ``reachability`` suite: the target answers, and not with a server error.

It is registered through the ``greenlight.suites`` entry-point group like any third-party
suite, and is planned at every event unless the plan leaves it out.
"""

from __future__ import annotations

import time

from hooks.core.results import CheckResult, Evidence, Status
from hooks.suites.base import Check, CheckSuite, SuiteContext

__all__ = ["REACHABILITY", "ReachabilityCheck"]


class ReachabilityCheck(Check):
    name = "target answers without a 5xx"

    def run(self, ctx: SuiteContext) -> CheckResult:
        # on use: the engine loads in the workers that send requests, never in the hook's process
        from hooks.core.fetch import FetchError

        url = ctx.target.resolve("/")
        started = time.perf_counter()
        try:
            response = ctx.fetcher.request("GET", url)
        except FetchError as exc:
            return CheckResult(
                self.name,
                Status.FAILED,
                time.perf_counter() - started,
                f"cannot reach {url}: {exc}",
                evidence=Evidence(f"GET {url}"),
            )
        duration = time.perf_counter() - started
        evidence = Evidence(f"GET {url}", response.status_code)
        if response.status_code >= 500:
            return CheckResult(
                self.name,
                Status.FAILED,
                duration,
                f"GET {url} answered {response.status_code}",
                evidence=evidence,
            )
        return CheckResult(
            self.name, Status.PASSED, duration, f"HTTP {response.status_code}", evidence=evidence
        )


REACHABILITY = CheckSuite(
    name="reachability",
    kind="builtin",
    checks=[ReachabilityCheck()],
    description="The target accepts a connection and answers GET / without a 5xx.",
    source="hooks.suites.reachability",
)
