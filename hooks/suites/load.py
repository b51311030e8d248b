"""The ``load`` suite kind: a constant arrival rate against green, judged by thresholds.

A YAML file that says ``kind: load``::

    kind: load
    name: catalog-under-load
    rate: 50            # requests per second
    ramp: 5s
    duration: 30s
    requests:
      - {name: browse, weight: 9, request: {path: /catalog}}
      - {name: order, weight: 1, request: {method: POST, path: /orders, json: {sku: cake}}}
    thresholds:
      http_req_duration: ["p(99) < 300", "p(50) < 80"]
      http_req_failed: ["rate < 0.01"]

Each threshold is one check; one more, ``arrival rate``, fails when fewer requests were sent
than planned (the service could not take them, or the function could not send them), so a
load that never happened cannot pass. See :mod:`hooks.suites.loadgen` for how it is measured.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from hooks.core.results import CheckResult, Evidence, Policy, Status, SuiteResult, cut
from hooks.core.yamlfile import located
from hooks.suites.base import DeclaredKind, DeclaredSuite, SuiteContext
from hooks.suites.http.template import UnknownVariableError, render
from hooks.suites.loadgen import AGGREGATIONS, Generator, LoadResult, Outcome, Profile
from hooks.suites.thresholds import (
    Threshold,
    ThresholdError,
    parse_seconds,
    parse_section,
    show,
)

__all__ = [
    "ARRIVAL_RATE",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MIN_RATE",
    "DEFAULT_TIMEOUT",
    "PART_KEY",
    "SCHEMA_PATH",
    "Judge",
    "LoadSuite",
    "LoadSuiteKind",
    "describe",
    "judge_parts",
]

SCHEMA_PATH = Path(__file__).with_name("load_schema.json")
ARRIVAL_RATE = "arrival rate"
#: The key of a load part's figures in its first check's ``data``.
PART_KEY = "load_part"
DEFAULT_MAX_IN_FLIGHT = 100
DEFAULT_TIMEOUT = 10.0
DEFAULT_MIN_RATE = 0.95


class LoadSuite(DeclaredSuite):
    """One load: a profile, weighted requests and thresholds."""

    def __init__(
        self,
        *,
        data: Mapping[str, Any],
        path: Path,
        profile: Profile,
        thresholds: list[Threshold],
    ) -> None:
        super().__init__(data=data, path=path, kind="load")
        self.requests = [dict(spec) for spec in data["requests"]]
        self.variables = {k: str(v) for k, v in data.get("variables", {}).items()}
        self.timeout = float(data.get("timeout", DEFAULT_TIMEOUT))
        self.abort_on_fail = bool(data.get("abort_on_fail", True))
        self.shards = int(data.get("workers", 1))
        #: The profile, thresholds and expectations: also what judges parts run elsewhere.
        self.judge = Judge(
            tuple(thresholds),
            profile,
            float(data.get("min_rate", DEFAULT_MIN_RATE)),
            int(data.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT)),
            self.source,
        )

    @property
    def profile(self) -> Profile:
        return self.judge.profile

    @property
    def thresholds(self) -> tuple[Threshold, ...]:
        return self.judge.thresholds

    @property
    def max_in_flight(self) -> int:
        return self.judge.max_in_flight

    def check_names(self) -> list[str]:
        return [ARRIVAL_RATE, *(t.label for t in self.thresholds)]

    def run(self, ctx: SuiteContext) -> None:
        # Long: one load, from its schedule to its measurements, in the order it happens.
        # on use: requests loads in the workers that send requests, never in the hook's process
        from hooks.core.http import make_session

        part = ctx.deployment.part
        count = part[1] if part else 1
        # One of several parts (a state machine's shards): its share of the rate; a threshold
        # is lost here only if it is lost for the whole, whatever the other parts measure.
        profile = replace(self.profile, rate=self.profile.rate / count)
        needed = self.profile.length + self.timeout
        if ctx.deadline.remaining() < needed + 1:
            self.emit_each(
                ctx,
                Status.TIMED_OUT,
                f"the load needs {needed:.0f}s (ramp, duration and one request timeout) and "
                f"{ctx.deadline.remaining():.0f}s are left before the deadline: shorten it, "
                f"or plan it where it has the time",
            )
            return
        try:
            requests = render(self.requests, {**ctx.variables(), **self.variables})
        except UnknownVariableError as exc:
            self.emit_each(ctx, Status.FAILED, f"cannot prepare the requests: {exc}")
            return
        session = make_session(
            ctx.target,
            deployment_id=ctx.deployment.deployment_id,
            deadline=ctx.deadline,
            timeout=self.timeout,
            pool_size=self.max_in_flight,
            max_body_bytes=ctx.max_body_bytes,
            secret_origins=ctx.secret_origins,
        )
        prepared = {spec["name"]: _Prepared(spec, ctx) for spec in requests}

        def send(name: str, due: float) -> Outcome:
            return prepared[name].send(session, due)

        generator = Generator(
            profile,
            [(spec["name"], int(spec.get("weight", 1))) for spec in requests],
            send,
            max_in_flight=self.max_in_flight,
            thresholds=self.thresholds,
            abort_on_fail=self.abort_on_fail,
            stop_at=lambda: ctx.deadline.remaining() < self.timeout + 0.5,
            whole=count,
        )
        try:
            result = generator.run()
        finally:
            session.close()
        if part is None:
            for check in self.judge.checks(result):
                ctx.emit(check)
            return
        # A part: judged at the conclusion with the others, on the merged histogram.
        message = (
            f"part {part[0] + 1} of {count}: judged with the other parts "
            f"({describe(result, profile)})"
        )
        data = {
            PART_KEY: {
                "part": list(part),
                "result": result.to_dict(),
                "judge": self.judge.to_dict(),
            }
        }
        for index, name in enumerate(self.check_names()):
            check = CheckResult(name, Status.SKIPPED, result.elapsed, message, location=self.source)
            ctx.emit(replace(check, data=data) if index == 0 else check)


@dataclass(frozen=True)
class Judge:
    """A load's thresholds and expectations: judges what a run (or its merged parts)
    measured."""

    thresholds: tuple[Threshold, ...]
    profile: Profile
    min_rate: float
    max_in_flight: int
    source: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds": [asdict(t) for t in self.thresholds],
            "profile": asdict(self.profile),
            "min_rate": self.min_rate,
            "max_in_flight": self.max_in_flight,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Judge:
        return cls(
            tuple(Threshold(**t) for t in data["thresholds"]),
            Profile(**data["profile"]),
            float(data["min_rate"]),
            int(data["max_in_flight"]),
            data.get("source"),
        )

    def checks(self, result: LoadResult) -> list[CheckResult]:
        """Every check of the load, judged from what was measured."""
        found: list[CheckResult] = []
        summary = describe(result, self.profile)
        stopped, lost_ones = result.stopped, set(result.lost)
        deadline_stop = stopped is not None and not lost_ones
        found.append(self._rate_check(result, summary, deadline_stop))
        for threshold in self.thresholds:
            measured = result.measure(threshold)
            shown = show(threshold, measured)
            series = result.series(threshold.request)
            where = f"over {series.count} responses"
            if threshold in lost_ones:
                planned = (
                    result.planned
                    if threshold.request is None
                    else result.planned_by_request[threshold.request]
                )
                status, message = (
                    Status.FAILED,
                    f"lost after {result.lost_after or result.elapsed:.1f}s of "
                    f"{self.profile.length:g}s: "
                    f"{_why_lost(threshold, result.lost_by.get(threshold, 0), planned)}; "
                    f"{shown} over the {series.count} answered",
                )
            elif stopped is not None and not deadline_stop:
                status, message = Status.SKIPPED, f"not judged: the load stopped early ({stopped})"
            elif deadline_stop:
                status = Status.TIMED_OUT
                message = f"not judged: the load stopped early ({stopped}); {shown} {where}"
            elif threshold.holds(measured):
                status, message = Status.PASSED, f"{shown} {where}"
            else:
                status = Status.FAILED
                message = f"{shown} {where}" if measured is not None else "no responses measured"
            evidence = None
            if status is Status.FAILED and threshold.metric == "http_req_failed":
                evidence = _example(result, threshold.request)
            found.append(
                CheckResult(
                    threshold.label,
                    status,
                    result.elapsed,
                    message,
                    (message,) if status.is_failure else (),
                    evidence,
                    self.source,
                )
            )
        return found

    def _rate_check(self, result: LoadResult, summary: str, deadline_stop: bool) -> CheckResult:
        achieved = result.achieved_rate()
        target = self.profile.rate
        if result.stopped is not None:
            status = Status.TIMED_OUT if deadline_stop else Status.SKIPPED
            message = f"stopped early ({result.stopped}): {summary}"
        elif achieved is None or achieved < self.min_rate * target:
            status = Status.FAILED
            cap = min(self.max_in_flight, result.sender_limit or self.max_in_flight)
            if result.peak_in_flight >= cap and cap < self.max_in_flight:
                why = (
                    f"the process allowed only {cap} sending threads (of max_in_flight "
                    f"{self.max_in_flight}), all busy: give the function more memory"
                )
            elif result.peak_in_flight >= cap:
                why = (
                    f"all {cap} allowed requests were outstanding: the service answered too "
                    f"slowly for this rate"
                )
            else:
                why = (
                    "the generator could not keep up: give the function more memory (CPU), "
                    "lower the rate, or split the load"
                )
            sent = f"{achieved:.1f}/s" if achieved is not None else "too few to measure"
            message = (
                f"sent {sent} of {target:g}/s planned (at least {self.min_rate:.0%} needed): "
                f"{why}; {summary}"
            )
        else:
            status, message = Status.PASSED, summary
        failures = (message,) if status.is_failure else ()
        return CheckResult(
            ARRIVAL_RATE, status, result.elapsed, message, failures, location=self.source
        )


class _Prepared:
    """One request of the load, rendered once: sent many times."""

    def __init__(self, spec: Mapping[str, Any], ctx: SuiteContext) -> None:
        request = spec["request"]
        self.name = str(spec["name"])
        self.method = request.get("method", "GET")
        self.url = ctx.target.resolve(request.get("url") or request.get("path") or "/")
        self.kwargs: dict[str, Any] = {
            "params": request.get("query"),
            "headers": {k: str(v) for k, v in request.get("headers", {}).items()} or None,
            "json": request.get("json"),
            "data": request.get("body"),
            "allow_redirects": False,
        }
        self.status = spec.get("status")
        self.line = f"{self.method} {self.url}"

    def send(self, session: Any, due: float) -> Outcome:
        # on use: requests loads in the workers that send requests, never in the hook's process
        from hooks.core.http import describe_error

        sent = time.perf_counter()
        try:
            response = session.request(self.method, self.url, **self.kwargs)
        except Exception as exc:
            latency = (time.perf_counter() - due) * 1000
            return Outcome(
                self.name, due, sent, latency, False, self.line, None, describe_error(exc)
            )
        latency = (time.perf_counter() - due) * 1000
        code = response.status_code
        ok = _status_ok(code, self.status)
        detail = "" if ok else cut(response.text, 200)
        return Outcome(self.name, due, sent, latency, ok, self.line, code, detail)


def _status_ok(code: int, expected: Any) -> bool:
    if expected is None:
        return code < 400
    if isinstance(expected, list):
        return code in expected
    if isinstance(expected, str):
        return str(code)[0] == expected[0]
    return bool(code == expected)


def describe(result: LoadResult, profile: Profile) -> str:
    """One line: what was sent and how it answered."""
    overall = result.overall
    achieved = result.achieved_rate()
    parts = [
        f"{overall.count} of {result.planned} requests in {result.elapsed:.1f}s",
        f"{achieved:.1f}/s sent (planned {profile.rate:g}/s)"
        if achieved is not None
        else f"planned {profile.rate:g}/s",
    ]
    if overall.count:
        failed = overall.failed / overall.count
        parts.append(f"{failed:.2%} failed")
        quantiles = ", ".join(
            f"{name} {overall.duration(agg) or 0:.1f} ms"
            for name, agg in (("p50", "p(50)"), ("p95", "p(95)"), ("p99", "p(99)"), ("max", "max"))
        )
        parts.append(quantiles)
    parts.append(f"peak {result.peak_in_flight} in flight ({result.senders} senders)")
    if result.not_sent:
        parts.append(f"{result.not_sent} not sent")
    return "; ".join(parts)


def _why_lost(threshold: Threshold, count: int, planned: int) -> str:
    if threshold.metric == "http_req_failed":
        return f"{count} of the {planned} planned requests had failed"
    than = "≥" if threshold.op == "<" else ">"
    return f"{count} of the {planned} planned responses had taken {than} {threshold.value:g} ms"


def _example(result: LoadResult, request: str | None) -> Evidence | None:
    for outcome in result.examples:
        if request is None or outcome.request == request:
            body = f"{outcome.detail}" if outcome.detail else None
            return Evidence(outcome.line, outcome.status, body)
    return None


class LoadSuiteKind(DeclaredKind):
    """Loads YAML files that declare ``kind: load``."""

    name = "load"
    schema = SCHEMA_PATH

    def build(self, data: Mapping[str, Any], path: Path, text: str) -> LoadSuite:
        spans: dict[str, float] = {}
        for key in ("duration", "ramp"):
            try:
                spans[key] = parse_seconds(data.get(key, 0))
            except ThresholdError as exc:
                raise located(path, text, [key], str(exc)) from None
        if spans["duration"] <= 0:
            raise located(path, text, ["duration"], "the duration must be more than 0")
        profile = Profile(float(data["rate"]), spans["duration"], spans["ramp"])
        if profile.total < 1:
            raise located(path, text, ["rate"], "rate x duration plans no request at all")
        names = [spec["name"] for spec in data["requests"]]
        for index, name in enumerate(names):
            if names.index(name) != index:
                raise located(path, text, ["requests", index, "name"], f"duplicate name {name!r}")
        thresholds = parse_section(
            data["thresholds"], AGGREGATIONS, lambda keys, why: located(path, text, keys, why)
        )
        for threshold in thresholds:
            if threshold.request is not None and threshold.request not in names:
                metric = next(m for m in data["thresholds"] if f"request:{threshold.request}" in m)
                raise located(
                    path,
                    text,
                    ["thresholds", metric],
                    f"no request is named {threshold.request!r} (requests: {', '.join(names)})",
                )
        return LoadSuite(data=data, path=path, profile=profile, thresholds=thresholds)


def judge_parts(name: str, parts: Sequence[SuiteResult], failed: Sequence[str]) -> SuiteResult:
    """One load suite from its parts (each a shard's run): the histograms and counters
    merged, then every threshold judged on the whole. A part that did not run fails it."""
    figures = [
        check.data[PART_KEY]
        for suite in parts
        for check in suite.checks
        if check.data is not None and PART_KEY in check.data
    ]
    first = parts[0] if parts else None
    if not figures:
        return SuiteResult(
            name, "load", error=f"no part of the load reported figures: {'; '.join(failed)}"
        )
    judge = Judge.from_dict(figures[0]["judge"])
    count = int(figures[0]["part"][1])
    merged = LoadResult.merge(
        [LoadResult.from_dict(f["result"], judge.thresholds) for f in figures]
    )
    checks = tuple(judge.checks(merged))
    missing = count - len(figures)
    error = None
    if failed or missing:
        reasons = list(failed) or [f"{missing} of {count} parts reported nothing"]
        error = f"{len(reasons)} of the load's {count} parts did not run: {'; '.join(reasons)}"
    return SuiteResult(
        name,
        "load",
        checks,
        error,
        first.policy if first else Policy(),
        max(s.duration for s in parts) if parts else 0.0,
        judge.source,
    )
