"""An open-model load generator: requests arrive on a schedule, whatever the service does.

Arrivals follow a constant rate (after an optional linear ramp from zero); the next request
is sent when it is due even when earlier ones have not answered, so a service that stalls
meets every request it would have met (no coordinated omission). Requests go out from one
event loop (:mod:`hooks.core.wire`): no thread per request, so the sender keeps its
schedule at thousands of requests a second.

Three things are measured apart, as k6 and Gatling do:

- a request's **latency**, from the moment it was actually sent to its last byte (the
  kernel's arrival stamp where the engine has one: over plain HTTP on Linux);
- the **sender's lag**, from the moment a request was due to the moment it was sent — the
  generator's own lateness, never charged to the service;
- **dropped** requests (k6's ``dropped_iterations``): due while ``max_in_flight`` were
  outstanding (the service held them all), or reached by the sender only after the load's
  end (it fell behind). A load ends on time; what it could not send is counted.

Latencies go into DDSketch (relative accuracy 1 %, mergeable, bounded memory), not a sorted
list. Exact counters beside it let a threshold be called lost the moment no remaining
response could save it (``p(99) < 300`` is lost once more than 1 % of all the requests
planned have taken 300 ms or more), so a run stops early only when the outcome is certain.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ddsketch import DDSketch

from hooks.suites.thresholds import HTTP_METRICS, Threshold

if TYPE_CHECKING:
    from hooks.core.reactor import Reactor, Timer

__all__ = [
    "AGGREGATIONS",
    "BURST",
    "BURST_SECONDS",
    "COALESCE_SECONDS",
    "EXAMPLES_KEPT",
    "LATE_GRACE",
    "RELATIVE_ACCURACY",
    "Generator",
    "LoadResult",
    "Outcome",
    "Profile",
    "Record",
    "Send",
    "Series",
    "lost",
    "weighted_order",
]

#: DDSketch's relative accuracy: a percentile is within 1 % of the true value.
RELATIVE_ACCURACY = 0.01
#: The key mapping of every sketch made with RELATIVE_ACCURACY, as :meth:`Series.add` reads it.
_MAPPING = DDSketch(RELATIVE_ACCURACY)._mapping
_MIN_POSSIBLE, _MULTIPLIER = _MAPPING.min_possible, _MAPPING._multiplier
#: The mapping's offset, a whole number (it is 0): added to a key after rounding, not before.
_OFFSET = int(_MAPPING._offset)
assert _MAPPING._offset == _OFFSET
_ceil, _log = math.ceil, math.log
#: Values a series holds before it bins them into its sketch, all at once.
_PENDING = 1024
#: Aggregations each load metric has (the thresholds' vocabulary): the HTTP metrics, and
#: k6's ``dropped_iterations`` (one iteration is one request here).
AGGREGATIONS = {**HTTP_METRICS, "dropped_iterations": frozenset({"count", "rate"})}
#: Failed responses kept as examples for the report.
EXAMPLES_KEPT = 5
#: Seconds past the load's end a late sender may still send a request due before it.
LATE_GRACE = 0.05
#: Seconds the sender may sleep to its next send deaf to answers, when they are timed by
#: the kernel's arrival stamps (:class:`~hooks.core.reactor.Reactor`'s ``coalesce``).
COALESCE_SECONDS = 0.005
#: Most requests sent back to back, and most seconds spent sending, when behind schedule,
#: before the answers that arrived meanwhile are let in (and timed).
BURST = 32
BURST_SECONDS = 0.002


@dataclass(frozen=True)
class Profile:
    """How many requests, and when: ``rate`` per second for ``duration`` seconds, after a
    linear ramp from zero lasting ``ramp`` seconds."""

    rate: float
    duration: float
    ramp: float = 0.0

    @property
    def ramp_count(self) -> int:
        return math.floor(self.rate * self.ramp / 2)

    @property
    def total(self) -> int:
        return self.ramp_count + math.floor(self.rate * self.duration)

    @property
    def length(self) -> float:
        return self.ramp + self.duration

    def offsets(self, start: float = 0.0) -> Iterator[float]:
        """When each request is due, in order: seconds after ``start``."""
        # Ramp: the rate grows linearly, r(t) = rate * t / ramp, so by time t
        # rate * t**2 / (2 * ramp) requests are due; the i-th is due at the t solving it.
        for i in range(1, self.ramp_count + 1):
            yield start + math.sqrt(2 * self.ramp * i / self.rate)
        steady, rate = start + self.ramp, self.rate
        for k in range(math.floor(rate * self.duration)):
            yield steady + k / rate


@dataclass(slots=True)
class Outcome:
    """One answered (or failed) request, as a worker hands it over."""

    request: str
    due: float
    sent: float
    latency_ms: float
    ok: bool
    line: str = ""
    status: int | None = None
    detail: str = ""


@dataclass
class Series:
    """Latencies and failures of one request (or of all): a sketch and exact counters."""

    held: DDSketch = field(default_factory=lambda: DDSketch(RELATIVE_ACCURACY), repr=False)
    count: int = 0
    failed: int = 0
    total_ms: float = 0.0
    min_ms: float = math.inf
    max_ms: float = 0.0
    #: Responses at or above each watched latency (the early verdict on percentiles).
    at_least: dict[float, int] = field(default_factory=dict)
    above: dict[float, int] = field(default_factory=dict)
    #: Values the sketch keeps outside its positive store (zeros).
    elsewhere: int = 0
    #: Values counted but not yet binned in the sketch.
    pending: list[float] = field(default_factory=list, repr=False)

    def add(self, latency_ms: float, ok: bool) -> None:
        # Twice per request (its latency, the sender's lag): the sender's hottest lines.
        self.count += 1
        self.total_ms += latency_ms
        if not ok:
            self.failed += 1
        if latency_ms > self.max_ms:
            self.max_ms = latency_ms
        if latency_ms < self.min_ms:
            self.min_ms = latency_ms
        if self.at_least:
            for limit in self.at_least:
                if latency_ms >= limit:
                    self.at_least[limit] += 1
        if self.above:
            for limit in self.above:
                if latency_ms > limit:
                    self.above[limit] += 1
        # Binned into the sketch later, many at a time: a tight loop, its data in cache,
        # where binning each value as it comes costs the sender several times more.
        pending = self.pending
        pending.append(latency_ms)
        if len(pending) >= _PENDING:
            self._bin()

    def _bin(self) -> None:
        """Count the pending values in the sketch: DDSketch.add inlined (the bin its mapping
        gives each value, in its store); the store's count and the sketch's count, sum and
        extremes are this series' own, copied in when it is read (:attr:`sketch`)."""
        held = self.held
        store = held._store
        for value in self.pending:
            if value <= _MIN_POSSIBLE:
                held.add(value)  # a zero (or less): kept outside the positive store
                self.elsewhere += 1
                continue
            key = _ceil(_log(value, 2) * _MULTIPLIER) + _OFFSET
            if store.min_key <= key <= store.max_key:
                store.bins[key - store.offset] += 1.0
            else:
                store.add(key, 1.0)
        self.pending.clear()

    @property
    def sketch(self) -> DDSketch:
        """The DDSketch of every value added, its totals brought up to date."""
        if self.pending:
            self._bin()
        held = self.held
        held._count = float(self.count)
        held._sum = self.total_ms
        held._store.count = float(self.count - self.elsewhere)
        if self.count:
            held._min, held._max = self.min_ms, self.max_ms
        return held

    def merge(self, other: Series) -> None:
        """Fold ``other`` in (shards of one load, run apart)."""
        self.sketch.merge(other.sketch)
        self.count += other.count
        self.elsewhere += other.elsewhere
        self.failed += other.failed
        self.total_ms += other.total_ms
        self.min_ms = min(self.min_ms, other.min_ms)
        self.max_ms = max(self.max_ms, other.max_ms)
        for limit, n in other.at_least.items():
            self.at_least[limit] = self.at_least.get(limit, 0) + n
        for limit, n in other.above.items():
            self.above[limit] = self.above.get(limit, 0) + n

    def to_dict(self) -> dict[str, Any]:
        """The series as data (for a part of a load run elsewhere): the sketch's buckets and
        the exact counters."""

        def store(found: Any) -> dict[str, Any] | None:
            if not found.count:
                return None
            return {"offset": found.offset, "bins": [b for b in found.bins]}

        sketch = self.sketch
        return {
            "positive": store(sketch._store),
            "negative": store(sketch._negative_store),
            "zero": sketch._zero_count,
            "count": self.count,
            "failed": self.failed,
            "total_ms": self.total_ms,
            "min_ms": self.min_ms if self.count else None,
            "max_ms": self.max_ms,
            "at_least": [[k, v] for k, v in self.at_least.items()],
            "above": [[k, v] for k, v in self.above.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Series:
        series = cls()
        sketch = series.sketch
        for name, found in (("positive", sketch._store), ("negative", sketch._negative_store)):
            stored = data.get(name)
            for index, weight in enumerate((stored or {}).get("bins", [])):
                if weight:
                    found.add(int(stored["offset"]) + index, float(weight))  # type: ignore[index]
        sketch._zero_count = float(data.get("zero") or 0)
        sketch._count = float(data["count"])
        sketch._sum = float(data["total_ms"])
        series.count = int(data["count"])
        series.failed = int(data["failed"])
        series.total_ms = float(data["total_ms"])
        if data.get("min_ms") is not None:
            series.min_ms = sketch._min = float(data["min_ms"])
        series.max_ms = sketch._max = float(data["max_ms"])
        series.at_least = {float(k): int(v) for k, v in data.get("at_least", [])}
        series.above = {float(k): int(v) for k, v in data.get("above", [])}
        series.elsewhere = round(sketch._zero_count + sketch._negative_store.count)
        return series

    def duration(self, aggregation: str) -> float | None:
        """A latency aggregation in milliseconds; None without responses."""
        if not self.count:
            return None
        if aggregation == "avg":
            return self.total_ms / self.count
        if aggregation == "min":
            return self.min_ms
        if aggregation == "max":
            return self.max_ms
        quantile = 0.5 if aggregation == "med" else float(aggregation[2:-1]) / 100
        value = self.sketch.get_quantile_value(quantile)
        # The sketch's buckets may place a value past the extremes it saw: clamp to them.
        return None if value is None else min(max(value, self.min_ms), self.max_ms)


@dataclass
class LoadResult:
    """What a load run measured."""

    planned: int
    planned_by_request: dict[str, int]
    overall: Series
    by_request: dict[str, Series]
    #: When each request of the full-rate phase was sent (the achieved rate).
    #: How many requests of the full-rate phase were sent, the first and the last when.
    steady_count: int = 0
    steady_first: float = math.inf
    steady_last: float = -math.inf
    elapsed: float = 0.0
    #: Why the run stopped before its end (a lost threshold, the deadline), else None.
    stopped: str | None = None
    lost: list[Threshold] = field(default_factory=list)
    #: Seconds from the start at which the first threshold was lost, and, for each lost
    #: threshold, the count that lost it (responses over the limit, or failed) then.
    lost_after: float | None = None
    lost_by: dict[Threshold, int] = field(default_factory=dict)
    not_sent: int = 0
    #: Requests due while ``max_in_flight`` were outstanding, and requests the sender
    #: reached only after the load's end; by request name, both together.
    dropped_busy: int = 0
    dropped_late: int = 0
    dropped_by_request: dict[str, int] = field(default_factory=dict)
    #: The sender's lateness: milliseconds from each request's due time to its sending.
    lag: Series = field(default_factory=Series)
    peak_in_flight: int = 0
    #: Connections opened, and the most the process allowed when that capped
    #: ``max_in_flight`` (its open-file limit).
    connections: int = 0
    connection_limit: int | None = None
    examples: list[Outcome] = field(default_factory=list)
    #: The achieved rate when known otherwise than from the steady sends (merged parts).
    achieved: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """What a part of a load measured, as data for the merge."""
        return {
            "planned": self.planned,
            "planned_by_request": dict(self.planned_by_request),
            "overall": self.overall.to_dict(),
            "by_request": {name: s.to_dict() for name, s in self.by_request.items()},
            "achieved": self.achieved_rate(),
            "elapsed": self.elapsed,
            "stopped": self.stopped,
            "lost": [t.label for t in self.lost],
            "lost_after": self.lost_after,
            "lost_by": [[t.label, n] for t, n in self.lost_by.items()],
            "not_sent": self.not_sent,
            "dropped_busy": self.dropped_busy,
            "dropped_late": self.dropped_late,
            "dropped_by_request": dict(self.dropped_by_request),
            "lag": self.lag.to_dict(),
            "peak_in_flight": self.peak_in_flight,
            "connections": self.connections,
            "connection_limit": self.connection_limit,
            "examples": [asdict(o) for o in self.examples],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], thresholds: Sequence[Threshold]) -> LoadResult:
        by_label = {t.label: t for t in thresholds}
        return cls(
            planned=int(data["planned"]),
            planned_by_request={k: int(v) for k, v in data["planned_by_request"].items()},
            overall=Series.from_dict(data["overall"]),
            by_request={k: Series.from_dict(v) for k, v in data["by_request"].items()},
            elapsed=float(data["elapsed"]),
            stopped=data.get("stopped"),
            lost=[by_label[label] for label in data.get("lost", []) if label in by_label],
            lost_after=data.get("lost_after"),
            lost_by={by_label[k]: int(n) for k, n in data.get("lost_by", []) if k in by_label},
            not_sent=int(data.get("not_sent") or 0),
            dropped_busy=int(data.get("dropped_busy") or 0),
            dropped_late=int(data.get("dropped_late") or 0),
            dropped_by_request={
                k: int(v) for k, v in (data.get("dropped_by_request") or {}).items()
            },
            lag=Series.from_dict(data["lag"]) if data.get("lag") else Series(),
            peak_in_flight=int(data.get("peak_in_flight") or 0),
            connections=int(data.get("connections") or 0),
            connection_limit=data.get("connection_limit"),
            examples=[Outcome(**o) for o in data.get("examples", [])],
            achieved=data.get("achieved"),
        )

    @classmethod
    def merge(cls, parts: Sequence[LoadResult]) -> LoadResult:
        """Parts of one load, run side by side, as one: planned counts and histograms add
        up, so do the rates they sent; a threshold one part lost is lost for the whole."""
        first = parts[0]
        merged = cls(
            planned=0,
            planned_by_request=dict.fromkeys(first.planned_by_request, 0),
            overall=Series(),
            by_request={name: Series() for name in first.by_request},
        )
        rates = [p.achieved_rate() for p in parts]
        merged.achieved = None if any(r is None for r in rates) else sum(r or 0 for r in rates)
        for part in parts:
            merged.planned += part.planned
            for name, planned in part.planned_by_request.items():
                merged.planned_by_request[name] = merged.planned_by_request.get(name, 0) + planned
            merged.overall.merge(part.overall)
            for name, series in part.by_request.items():
                merged.by_request.setdefault(name, Series()).merge(series)
            merged.elapsed = max(merged.elapsed, part.elapsed)
            merged.stopped = merged.stopped or part.stopped
            for threshold in part.lost:
                if threshold not in merged.lost:
                    merged.lost.append(threshold)
                merged.lost_by[threshold] = merged.lost_by.get(threshold, 0) + part.lost_by.get(
                    threshold, 0
                )
            if part.lost_after is not None:
                merged.lost_after = min(merged.lost_after or part.lost_after, part.lost_after)
            merged.not_sent += part.not_sent
            merged.dropped_busy += part.dropped_busy
            merged.dropped_late += part.dropped_late
            for name, n in part.dropped_by_request.items():
                merged.dropped_by_request[name] = merged.dropped_by_request.get(name, 0) + n
            merged.lag.merge(part.lag)
            merged.peak_in_flight += part.peak_in_flight
            merged.connections += part.connections
            if part.connection_limit is not None:
                merged.connection_limit = (merged.connection_limit or 0) + part.connection_limit
            merged.examples += part.examples[: EXAMPLES_KEPT - len(merged.examples)]
        return merged

    def series(self, request: str | None) -> Series:
        return self.overall if request is None else self.by_request[request]

    @property
    def dropped(self) -> int:
        return self.dropped_busy + self.dropped_late

    def dropped_of(self, request: str | None) -> int:
        return self.dropped if request is None else self.dropped_by_request.get(request, 0)

    def achieved_rate(self) -> float | None:
        """Requests sent per second at full rate (after the ramp), or None if too few."""
        if self.achieved is not None:
            return self.achieved
        if self.steady_count < 2 or self.steady_last <= self.steady_first:
            return None
        return (self.steady_count - 1) / (self.steady_last - self.steady_first)

    def measure(self, threshold: Threshold) -> float | None:
        series = self.series(threshold.request)
        if threshold.metric == "http_req_duration":
            return series.duration(threshold.aggregation)
        if threshold.metric == "http_req_failed":
            if threshold.aggregation == "count":
                return float(series.failed)
            return series.failed / series.count if series.count else None
        count = (
            self.dropped_of(threshold.request)
            if threshold.metric == "dropped_iterations"
            else series.count
        )
        if threshold.aggregation == "count":
            return float(count)
        return count / self.elapsed if self.elapsed > 0 else None


def lost(threshold: Threshold, series: Series, planned: int, dropped: int = 0) -> bool:
    """True when ``threshold`` cannot hold however the ``planned - series.count`` requests
    still to come answer (latencies are never negative; drops only add up). Only upper
    bounds can be lost."""
    if threshold.op not in ("<", "<="):
        return False
    limit, strict = threshold.value, threshold.op == "<"
    if threshold.metric == "dropped_iterations" and threshold.aggregation == "count":
        return dropped >= limit if strict else dropped > limit
    if threshold.metric == "http_req_duration":
        worst = series.at_least.get(limit, 0) if strict else series.above.get(limit, 0)
        quantile = threshold.quantile
        if threshold.aggregation == "med":
            quantile = 0.5
        if quantile is not None:
            # The q-quantile of N values (nearest rank) is the ceil(qN)-th smallest: it
            # reaches the limit once N - ceil(qN) + 1 values do.
            return worst >= planned - math.ceil(quantile * planned) + 1
        if threshold.aggregation == "max":
            return worst > 0
        if threshold.aggregation == "avg":
            bound = series.total_ms / planned
            return bound >= limit if strict else bound > limit
        return False
    if threshold.metric == "http_req_failed":
        failed = series.failed if threshold.aggregation == "count" else series.failed / planned
        return failed >= limit if strict else failed > limit
    return False


def _against(threshold: Threshold, series: Series, dropped: int) -> int:
    """The count that decides an upper bound: failures, drops, or responses over the limit."""
    if threshold.metric == "dropped_iterations":
        return dropped
    if threshold.metric == "http_req_failed":
        return series.failed
    limits = series.at_least if threshold.op == "<" else series.above
    return limits.get(threshold.value, 0)


def weighted_order(weights: Sequence[tuple[str, int]]) -> Iterator[str]:
    """Names in proportion to their weights, evenly interleaved (smooth weighted round
    robin): reproducible, and any stretch of the run carries the planned mix."""
    total = sum(w for _, w in weights)
    current = dict.fromkeys((n for n, _ in weights), 0)
    while True:
        for name, weight in weights:
            current[name] += weight
        chosen = max(current, key=lambda n: current[n])
        current[chosen] -= total
        yield chosen


#: ``record(name, due, sent, latency_ms, failure)``: the answer to one request, sent at
#: ``sent`` on the loop's clock; ``failure`` is None if it passed, else what failed.
Record = Callable[[str, float, float, float, "Outcome | None"], None]
Send = Callable[[str, float, Record], None]


class Generator:
    """Runs one load on the running event loop: sends each request when it is due, records
    each outcome, and stops early when a threshold is lost (``abort_on_fail``).

    ``send(name, due, record)`` sends the request named ``name`` at once and calls ``record``
    with its answer, exactly once (:data:`Record`). A request due while ``max_in_flight``
    are outstanding is dropped (the service holds them all); one the sender reaches only
    after the load's end is dropped too (the sender fell behind): a load ends on time, its
    drops counted."""

    def __init__(
        self,
        profile: Profile,
        weights: Sequence[tuple[str, int]],
        send: Send,
        *,
        max_in_flight: int,
        thresholds: Sequence[Threshold] = (),
        abort_on_fail: bool = True,
        stop_by: float = math.inf,
        whole: int = 1,
        coalesce: float = 0.0,
    ) -> None:
        self.profile = profile
        self.send = send
        self.max_in_flight = max_in_flight
        self.thresholds = list(thresholds)
        self.abort_on_fail = abort_on_fail
        #: When the schedule stops, on the loop's clock (the deadline near): a timer, so
        #: that no request pays for asking.
        self.stop_by = stop_by
        #: Seconds the loop may sleep to the next send deaf to answers (only for answers
        #: timed by the kernel's arrival stamps); never while half of ``max_in_flight`` are
        #: outstanding, lest a request be dropped for a slot already free.
        self.coalesce = coalesce
        #: This run is one of ``whole`` equal parts: a threshold is lost only when it is
        #: lost against every part's planned requests together.
        self.whole = whole
        order = weighted_order(weights)
        self.sequence = [next(order) for _ in range(profile.total)]
        planned_by: dict[str, int] = dict.fromkeys((n for n, _ in weights), 0)
        for name in self.sequence:
            planned_by[name] += 1
        overall = Series()
        # One request: its series is the whole's (recorded once, read under either name).
        self.result = LoadResult(
            profile.total,
            planned_by,
            overall,
            {name: overall if len(weights) == 1 else Series() for name, _ in weights},
        )
        self.result.dropped_by_request = dict.fromkeys(planned_by, 0)
        for series in {id(s): s for s in [overall, *self.result.by_request.values()]}.values():
            for t in self.thresholds:
                if t.metric == "http_req_duration":
                    (series.at_least if t.op == "<" else series.above).setdefault(t.value, 0)
        self._judges_drops = any(t.metric == "dropped_iterations" for t in self.thresholds)
        #: The least latency that can bring a threshold closer to being lost (a failure
        #: always can): below every watched limit, an answer changes nothing to judge.
        watched = [t for t in self.thresholds if t.metric == "http_req_duration"]
        self._judge_from = min(
            (0.0 if t.aggregation == "avg" else t.value for t in watched), default=math.inf
        )
        self._in_flight = 0
        self._stopped = False
        self._sent_all = False
        self._started = self._ramp_end = self._closes = 0.0
        self._clock: Callable[[], float] = time.monotonic
        self._index = 0
        self._next: tuple[float, str] | None = None
        self._timer: Timer | None = None
        self._finished = False
        self._single = len(weights) == 1

    def run(self, loop: Reactor) -> LoadResult:
        """Send the load on ``loop`` (running it meanwhile); return what was measured once the
        last answer is in (each is bounded by its request's timeout), or at once when the
        run stops early."""
        self._loop = loop
        clock = self._clock = loop.time
        start = self._started = clock()
        self._ramp_end = start + self.profile.ramp
        # The sender may run late (a busy CPU); past the end a request is not sent at all.
        self._closes = start + self.profile.length + LATE_GRACE
        self._schedule = zip(self.profile.offsets(start), self.sequence, strict=True)
        self._next = next(self._schedule, None)
        stopping = None
        if self.stop_by <= start:
            self._halt("the deadline is near")
        else:
            if self.stop_by < math.inf:
                stopping = loop.call_at(self.stop_by, self._halt, "the deadline is near")
            self._tick()
        try:
            loop.run()  # until _finish stops it
        finally:
            for timer in (self._timer, stopping):
                if timer is not None:
                    timer.cancel()
            loop.coalesce = 0.0
        result = self.result
        result.elapsed = clock() - start
        result.not_sent = result.planned - result.overall.count
        return result

    def _tick(self) -> None:
        """Send every request now due, then sleep until the next one (a timer, no task):
        when behind, yield to the answers every ``BURST`` requests or ``BURST_SECONDS``."""
        # Long: the sender's one loop, every way a request is sent, dropped or left, together.
        self._timer = None
        if self._finished:
            return
        clock, result = self._clock, self.result
        began = now = clock()
        sent = 0
        upcoming = self._next
        while upcoming is not None:
            due, name = upcoming
            if due > now:
                loop = self._loop
                loop.coalesce = self.coalesce if 2 * self._in_flight < self.max_in_flight else 0
                self._timer = loop.call_at(due, self._tick)
                return
            if sent >= BURST or now - began > BURST_SECONDS:
                self._timer = self._loop.call_soon(self._tick)
                return
            if now > self._closes:
                left = self.sequence[self._index :]
                result.dropped_late += len(left)
                for late in left:
                    result.dropped_by_request[late] += 1
                self._next = None
                if self.abort_on_fail and self._judges_drops:
                    self._judge()
                break
            upcoming = self._next = next(self._schedule, None)
            self._index += 1
            sent += 1
            if self._in_flight >= self.max_in_flight:
                result.dropped_busy += 1
                result.dropped_by_request[name] += 1
                if self.abort_on_fail and self._judges_drops:
                    self._judge()
            else:
                self._in_flight += 1
                if self._in_flight > result.peak_in_flight:
                    result.peak_in_flight = self._in_flight
                result.lag.add((now - due) * 1000, True)
                self.send(name, due, self._record)
            if self._stopped:
                return
            now = clock()
        self._sent_all = True
        if not self._in_flight:
            self._finish()

    def _record(
        self, name: str, due: float, sent: float, latency: float, failure: Outcome | None
    ) -> None:
        self._in_flight -= 1
        if self._stopped:
            return  # stopped early: what still answers is not judged
        result = self.result
        ok = failure is None
        result.overall.add(latency, ok)
        if not self._single:
            result.by_request[name].add(latency, ok)
        if due >= self._ramp_end:
            result.steady_count += 1
            if sent < result.steady_first:
                result.steady_first = sent
            if sent > result.steady_last:
                result.steady_last = sent
        if failure is not None and len(result.examples) < EXAMPLES_KEPT:
            result.examples.append(failure)
        if self.abort_on_fail and (not ok or latency >= self._judge_from):
            self._judge()
        if self._sent_all and not self._in_flight:
            self._finish()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._loop.stop()

    def _judge(self) -> None:
        """Stop the run once a threshold can no longer hold."""
        result = self.result
        for threshold in self.thresholds:
            series = result.series(threshold.request)
            planned = self.whole * (
                result.planned
                if threshold.request is None
                else result.planned_by_request[threshold.request]
            )
            dropped = result.dropped_of(threshold.request)
            if lost(threshold, series, planned, dropped):
                result.lost.append(threshold)
                result.lost_by[threshold] = _against(threshold, series, dropped)
        if result.lost:
            result.lost_after = self._clock() - self._started
            self._halt(f"{result.lost[0].label} can no longer hold")

    def _halt(self, why: str) -> None:
        if self.result.stopped is None:
            self.result.stopped = why
        self._stopped = True
        self._finish()
