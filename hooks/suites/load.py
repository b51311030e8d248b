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
than planned, so a load that never happened cannot pass — and says whose doing it was: the
service's (every allowed request outstanding) or the load generator's (it fell behind; the
check is then an error naming what to change, never a failure of the service). See
:mod:`hooks.suites.loadgen` for how it is measured.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hooks.core.http_rules import DEFAULT_MAX_BODY_BYTES
from hooks.core.results import CheckResult, Evidence, Policy, Status, SuiteResult, cut
from hooks.core.yamlfile import located
from hooks.suites.base import DeclaredKind, DeclaredSuite, SuiteContext
from hooks.suites.http.template import UnknownVariableError, render
from hooks.suites.loadgen import (
    AGGREGATIONS,
    COALESCE_SECONDS,
    Generator,
    LoadResult,
    Outcome,
    Profile,
    Record,
)
from hooks.suites.thresholds import (
    Threshold,
    ThresholdError,
    parse_seconds,
    parse_section,
    show,
)

if TYPE_CHECKING:
    from hooks.core.wire import Answer

__all__ = [
    "ARRIVAL_RATE",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MIN_RATE",
    "DEFAULT_TIMEOUT",
    "LAG_LIMIT_MS",
    "PART_KEY",
    "SCHEMA_PATH",
    "Judge",
    "LoadSuite",
    "LoadSuiteKind",
    "default_max_in_flight",
    "describe",
    "judge_parts",
]

SCHEMA_PATH = Path(__file__).with_name("load_schema.json")
ARRIVAL_RATE = "arrival rate"
#: The key of a load part's figures in its first check's ``data``.
PART_KEY = "load_part"
#: The least and most ``max_in_flight`` a load gets by default: two seconds of arrivals
#: within these bounds, so a service that stalls for a second still meets every request.
DEFAULT_MAX_IN_FLIGHT = 100
MOST_IN_FLIGHT = 1000
DEFAULT_TIMEOUT = 10.0
DEFAULT_MIN_RATE = 0.95
#: The sender's p99 lateness past which its own delay may show in the latencies it measured.
LAG_LIMIT_MS = 50.0
#: Open files kept free for everything but the load's connections.
_FILES_KEPT = 64


def default_max_in_flight(rate: float) -> int:
    """Two seconds of arrivals, at least 100 and at most 1000 requests outstanding."""
    return min(MOST_IN_FLIGHT, max(DEFAULT_MAX_IN_FLIGHT, math.ceil(2 * rate)))


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
            int(data.get("max_in_flight") or default_max_in_flight(profile.rate)),
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
            prepared = {spec["name"]: _Prepared(spec, ctx) for spec in requests}
        except (UnknownVariableError, ValueError) as exc:
            self.emit_each(ctx, Status.FAILED, f"cannot prepare the requests: {exc}")
            return
        allowed = min(self.max_in_flight, _open_files_left())
        generator = Generator(
            profile,
            [(spec["name"], int(spec.get("weight", 1))) for spec in requests],
            lambda name, due, done: None,  # replaced on the loop, once the client exists
            max_in_flight=allowed,
            thresholds=self.thresholds,
            abort_on_fail=self.abort_on_fail,
            stop_by=ctx.deadline.at - (self.timeout + 0.5),
            whole=count,
        )
        result = self._send(generator, prepared, ctx.max_body_bytes)
        if allowed < self.max_in_flight:
            result.connection_limit = allowed
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

    def _send(
        self, generator: Generator, prepared: Mapping[str, _Prepared], max_body: int | None
    ) -> LoadResult:
        # on use: the engine loads with a load, not with every suite listing
        from hooks.core.reactor import Reactor
        from hooks.core.wire import STAMPS, Client

        loop = Reactor()
        client = Client(
            timeout=self.timeout,
            max_body_bytes=max_body or DEFAULT_MAX_BODY_BYTES,
            loop=loop,
            stamped=True,
        )
        # Answers the kernel stamps (plain HTTP, Linux) may wait for the next send.
        if STAMPS and all(one.request.endpoint.tls is None for one in prepared.values()):
            generator.coalesce = COALESCE_SECONDS

        def send(name: str, due: float, record: Record) -> None:
            one = prepared[name]
            client.send(one.request, one.answered, None, (due, record))

        generator.send = send
        try:
            return generator.run(loop)
        finally:
            client.close()
            loop.close()
            generator.result.connections = client.opened


def _open_files_left() -> int:
    """Connections this process may open: its open-file limit, less a reserve."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MOST_IN_FLIGHT
    return max(1, soft - _FILES_KEPT)


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
            if threshold.metric == "dropped_iterations":
                where = f"of {series.count + result.dropped_of(threshold.request)} due"
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
            slow_sender = _slow_sender(result)
            if status is Status.FAILED and threshold.metric == "http_req_duration" and slow_sender:
                # Its own lateness may be in what it measured: not the service's failure.
                status = Status.ERROR
                message = (
                    f"not judged: the load generator fell behind ({slow_sender}), so its own "
                    f"delay may be in these latencies: {_MORE_CPU}; {message}"
                )
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
        sent = f"{achieved:.1f}/s" if achieved is not None else "too few to measure"
        sent = f"sent {sent} of {target:g}/s planned (at least {self.min_rate:.0%} needed)"
        cap = result.connection_limit or self.max_in_flight
        if result.stopped is not None:
            status = Status.TIMED_OUT if deadline_stop else Status.SKIPPED
            message = f"stopped early ({result.stopped}): {summary}"
        elif achieved is not None and achieved >= self.min_rate * target:
            status, message = Status.PASSED, summary
        elif result.dropped_busy and result.dropped_busy >= result.dropped_late:
            status = Status.FAILED
            why = "the service answered too slowly for this rate"
            if cap < self.max_in_flight:
                why = (
                    f"the process allows only {cap} open connections (of max_in_flight "
                    f"{self.max_in_flight}): raise its open-file limit, or split the load"
                )
                status = Status.ERROR
            message = (
                f"{sent}: {result.dropped_busy} requests fell due while all {cap} allowed were "
                f"outstanding, and were dropped — {why}; {summary}"
            )
        else:
            # Nothing held the requests back but the sender itself: not the service's doing.
            status = Status.ERROR
            behind = _slow_sender(result) or "it could not send at this rate"
            parts = "split the load with workers: N (runner stepfunctions)"
            if achieved:
                parts = parts.replace("N", str(max(2, math.ceil(target / achieved))))
            message = (
                f"{sent}: the load generator fell behind, not the service ({behind}): "
                f"{_MORE_CPU}, {parts}, or lower the rate; {summary}"
            )
        failures = (message,) if status.is_failure else ()
        return CheckResult(
            ARRIVAL_RATE, status, result.elapsed, message, failures, location=self.source
        )


#: What gives a load generator that fell behind the CPU it lacked.
_MORE_CPU = "give the function more memory (Lambda's CPU grows with it)"


def _slow_sender(result: LoadResult) -> str | None:
    """How the sender fell behind, if it did: requests left unsent at the end, or sent
    later than ``LAG_LIMIT_MS`` after they were due (p99)."""
    lag = result.lag.duration("p(99)")
    if result.dropped_late:
        return f"{result.dropped_late} requests were still unsent when the load ended"
    if lag is not None and lag > LAG_LIMIT_MS:
        return f"it sent requests p99 {lag:.0f} ms after they were due"
    return None


class _Prepared:
    """One request of the load, rendered and encoded once: sent many times."""

    def __init__(self, spec: Mapping[str, Any], ctx: SuiteContext) -> None:
        # on use: the engine loads with a load, not with every suite listing
        from hooks.core.wire import prepare

        request = spec["request"]
        self.name = str(spec["name"])
        method = request.get("method", "GET")
        url = ctx.target.resolve(request.get("url") or request.get("path") or "/")
        self.request = prepare(
            ctx.target,
            method,
            url,
            deployment_id=ctx.deployment.deployment_id,
            headers={k: str(v) for k, v in request.get("headers", {}).items()},
            query=request.get("query"),
            json_body=request.get("json"),
            body=request.get("body"),
            secret_origins=ctx.secret_origins,
        )
        self.status = spec.get("status")
        self.line = self.request.line

    def answered(self, answer: Answer) -> None:
        """The callback of every request sent as this one, tagged ``(due, record)``."""
        due, record = answer.tag
        sent, status = answer.sent, answer.status
        latency = (answer.finished - sent) * 1000
        if status is not None and (
            status < 400 if self.status is None else _status_ok(status, self.status)
        ):
            record(self.name, due, sent, latency, None)
            return
        detail = answer.error or "" if status is None else cut(_text(answer), 200)
        failure = Outcome(self.name, due, sent, latency, False, self.line, status, detail)
        record(self.name, due, sent, latency, failure)


def _text(answer: Answer) -> str:
    """The start of a failed answer's body, decoded when the suite asked for compression."""
    body = answer.body
    if answer.encoding in ("gzip", "deflate"):
        try:
            body = zlib.decompressobj(47).decompress(body, 4096)
        except zlib.error:
            return f"({answer.encoding} body that does not decode)"
    return body[:4096].decode("utf-8", "replace")


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
    lag = result.lag
    if lag.count:
        parts.append(f"sender lag p99 {lag.duration('p(99)') or 0:.1f} ms, max {lag.max_ms:.1f} ms")
    parts.append(f"peak {result.peak_in_flight} in flight ({result.connections} connections)")
    if result.dropped:
        why = [
            f"{n} {what}"
            for n, what in (
                (result.dropped_busy, "while all allowed were outstanding"),
                (result.dropped_late, "unsent at the end"),
            )
            if n
        ]
        parts.append(f"{result.dropped} dropped ({', '.join(why)})")
    if result.not_sent > result.dropped:
        parts.append(f"{result.not_sent - result.dropped} not sent (stopped early)")
    return "; ".join(parts)


def _why_lost(threshold: Threshold, count: int, planned: int) -> str:
    if threshold.metric == "dropped_iterations":
        return f"{count} of the {planned} planned requests had been dropped"
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
