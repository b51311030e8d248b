"""The load generator's arithmetic: thresholds, the schedule, the mix, the early verdict, and
the open model's drops, and the sender's lag measured apart from the service's latency."""

from __future__ import annotations

import itertools
import math
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from ddsketch import DDSketch

from hooks.core.reactor import Reactor
from hooks.suites.loadgen import (
    AGGREGATIONS,
    RELATIVE_ACCURACY,
    Generator,
    LoadResult,
    Outcome,
    Profile,
    Record,
    Series,
    lost,
    weighted_order,
)
from hooks.suites.thresholds import Threshold, ThresholdError, parse, parse_all, parse_seconds
from tests.helpers import each

#: Starts processes or measures time: CI runs these again under a CPU hog.
pytestmark = pytest.mark.timing


def threshold(metric: str, expression: str) -> Threshold:
    return parse(metric, expression, AGGREGATIONS)


@pytest.mark.parametrize(
    ("metric", "expression", "expected"),
    [
        ("http_req_duration", "p(99) < 300", ("p(99)", "<", 300.0, None)),
        ("http_req_duration", "p(99.9)<=1.5", ("p(99.9)", "<=", 1.5, None)),
        ("http_req_failed", "rate < 0.01", ("rate", "<", 0.01, None)),
        ("http_reqs", "count >= 100", ("count", ">=", 100.0, None)),
        ("http_req_duration{request:checkout}", "avg < 80", ("avg", "<", 80.0, "checkout")),
    ],
)
def test_thresholds_read_as_k6_writes_them(
    metric: str, expression: str, expected: tuple[str, str, float, str | None]
) -> None:
    found = threshold(metric, expression)
    assert (found.aggregation, found.op, found.value, found.request) == expected


@pytest.mark.parametrize(
    ("metric", "expression", "message"),
    [
        ("http_req_latency", "p(99) < 3", "unknown metric 'http_req_latency' (known: "),
        ("http_req_duration", "p99 < 3", "has no aggregation 'p99'"),
        ("http_req_duration", "p(100) < 3", "between 0 and 100"),
        ("http_req_failed", "avg < 3", "http_req_failed has no aggregation 'avg' (it has count"),
        ("http_req_duration", "p(99) less than 3", "expected an aggregation, an operator"),
        ("http_req_duration", "p(99) < 3ms", "cannot read threshold"),
    ],
)
def test_a_threshold_that_cannot_be_read_says_what_is_expected(
    metric: str, expression: str, message: str
) -> None:
    with pytest.raises(ThresholdError, match=message.replace("(", r"\(").replace(")", r"\)")):
        threshold(metric, expression)


def test_a_list_or_a_single_expression_per_metric() -> None:
    found = parse_all(
        {"http_req_duration": ["p(95) < 2", "max < 9"], "http_req_failed": "rate == 0"},
        AGGREGATIONS,
    )
    assert [t.label for t in found] == [
        "http_req_duration p(95) < 2",
        "http_req_duration max < 9",
        "http_req_failed rate == 0",
    ]


def test_a_missing_or_nan_measurement_never_holds() -> None:
    below = threshold("http_req_duration", "p(99) < 300")
    assert below.holds(299.9)
    assert not below.holds(300)
    assert not below.holds(None)
    assert not below.holds(math.nan)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1.5h", 5400.0)],
)
def test_spans_of_time(value: object, seconds: float) -> None:
    assert parse_seconds(value) == seconds


@pytest.mark.parametrize("value", ["5 minutes", "-1s", True, "1d"])
def test_a_span_that_is_not_one(value: object) -> None:
    with pytest.raises(ThresholdError, match="a span of time"):
        parse_seconds(value)


def test_the_schedule_ramps_then_holds_the_rate() -> None:
    profile = Profile(rate=100, duration=2, ramp=1)
    offsets = list(profile.offsets())
    assert len(offsets) == profile.total == 50 + 200
    assert offsets == sorted(offsets)
    ramp, steady = offsets[:50], offsets[50:]
    assert ramp[-1] <= 1.0
    # the ramp's rate grows: its gaps shrink
    gaps = [b - a for a, b in itertools.pairwise(ramp)]
    assert gaps[0] > gaps[-1] > 0.01 - 1e-9
    assert steady[0] == 1.0
    assert all(abs((b - a) - 0.01) < 1e-9 for a, b in each(itertools.pairwise(steady)))


def test_the_mix_follows_the_weights_in_any_stretch() -> None:
    order = weighted_order([("browse", 9), ("order", 1)])
    first = [next(order) for _ in range(1000)]
    assert Counter(first) == {"browse": 900, "order": 100}
    window = Counter(first[300:320])
    assert window["order"] == 2  # evenly interleaved, not 900 then 100


def series_of(latencies: list[float], failed: int = 0, watch: float = 300) -> Series:
    series = Series()
    series.at_least[watch] = 0
    series.above[watch] = 0
    for index, latency in enumerate(latencies):
        series.add(latency, ok=index >= failed)
    return series


def test_a_series_bins_each_value_exactly_as_ddsketch_does() -> None:
    """Series.add inlines DDSketch.add: the same bins, extremes, counts and percentiles, from
    zero and sub-microsecond values to minutes, in an order that grows the store both ways."""
    draw = random.Random(5)
    values = [12.5, 0.0, 1e-6, 0.05, 1e6, 300.0, 299.999, 1.0]
    values += [draw.lognormvariate(3, 2) for _ in range(3000)]
    series, reference = Series(), DDSketch(RELATIVE_ACCURACY)
    for value in values:
        series.add(value, True)
        reference.add(value)
    mine, theirs = series.sketch, reference
    assert (mine._store.bins, mine._store.offset) == (theirs._store.bins, theirs._store.offset)
    assert (mine._store.min_key, mine._store.max_key) == (
        theirs._store.min_key,
        theirs._store.max_key,
    )
    assert mine._store.count == theirs._store.count == len(values) - 1  # but 0.0, a zero
    assert (mine._zero_count, mine._count, mine._min, mine._max) == (
        theirs._zero_count,
        theirs._count,
        theirs._min,
        theirs._max,
    )
    assert mine._sum == pytest.approx(theirs._sum)
    for q in (0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0):
        assert mine.get_quantile_value(q) == theirs.get_quantile_value(q)


def test_a_percentile_is_lost_exactly_when_no_later_answer_can_save_it() -> None:
    p99 = threshold("http_req_duration", "p(99) < 300")
    # 100 planned: the 99th smallest must stay below 300; one slow answer may still pass
    assert not lost(p99, series_of([10, 300]), planned=100)
    assert lost(p99, series_of([10, 300, 301]), planned=100)
    # and the verdict agrees with the sorted truth at the end
    finished = sorted([10.0] * 98 + [300.0, 301.0])
    assert finished[math.ceil(0.99 * 100) - 1] >= 300
    at_or_below = threshold("http_req_duration", "p(99) <= 300")
    assert not lost(at_or_below, series_of([300, 300, 300]), planned=100)
    assert lost(at_or_below, series_of([301, 302]), planned=100)


def test_a_failure_rate_and_an_average_are_lost_by_their_floor() -> None:
    rate = threshold("http_req_failed", "rate < 0.01")
    assert not lost(rate, series_of([1] * 10, failed=9), planned=1000)
    assert lost(rate, series_of([1] * 10, failed=10), planned=1000)
    avg = threshold("http_req_duration", "avg < 100")
    assert not lost(avg, series_of([9999]), planned=100)  # 99.99 over the 100 planned
    assert lost(avg, series_of([9999, 1]), planned=100)
    # a lower bound or a count can always still be met
    assert not lost(threshold("http_reqs", "count >= 5"), series_of([]), planned=5)
    assert not lost(threshold("http_req_duration", "min > 5"), series_of([1]), planned=5)


def test_series_merge_adds_up_shards() -> None:
    one, two = series_of([1, 2, 3]), series_of([400, 500], failed=1)
    one.merge(two)
    assert (one.count, one.failed, one.min_ms, one.max_ms) == (5, 1, 1, 500)
    assert one.at_least[300] == 2
    assert one.duration("p(50)") == pytest.approx(3, rel=0.02)


def fake_send(latency: float, answers: list[Outcome], busy: float = 0.0):  # type: ignore[no-untyped-def]
    """A service answering in ``latency`` seconds; each send holds the sender ``busy``
    seconds first (a sender short of CPU)."""

    def send(name: str, due: float, record: Record) -> None:
        loop = RUNNING[-1]
        if busy:
            time.sleep(busy)
        sent = loop.time()

        def answer() -> None:
            latency_ms = (loop.time() - sent) * 1000
            answers.append(Outcome(name, due, sent, latency_ms, True))
            record(name, due, sent, latency_ms, None)

        loop.call_later(latency, answer)

    return send


#: The reactor of the run under way (the fake service answers on it).
RUNNING: list[Reactor] = []


def run(generator: Generator) -> LoadResult:
    loop = Reactor()
    RUNNING.append(loop)
    try:
        return generator.run(loop)
    finally:
        RUNNING.remove(loop)
        loop.close()


def test_a_request_due_while_all_allowed_are_outstanding_is_dropped_not_queued() -> None:
    """One request allowed in flight, 40 ms answers, 100 due a second: a request that falls
    due while the one allowed is outstanding is dropped and counted; none waits in a queue,
    so no answer is charged a wait that was not the service's."""
    answers: list[Outcome] = []
    generator = Generator(
        Profile(rate=100, duration=0.5), [("a", 1)], fake_send(0.04, answers), max_in_flight=1
    )
    result = run(generator)
    assert result.peak_in_flight == 1
    assert result.dropped_busy > 0
    assert result.overall.count + result.dropped_busy == 50
    assert result.dropped_late == 0
    assert result.measure(threshold("dropped_iterations", "count < 1")) == result.dropped_busy
    # each answer took 40 ms from its send, with nothing queued before it
    assert result.overall.duration("max") < 40 * 3
    # one request at a time of 40 ms carries at most 25 a second
    assert result.achieved_rate() <= 25 * 1.01


def test_a_sender_short_of_cpu_is_measured_apart_and_the_load_ends_on_time() -> None:
    """Each send holds the sender 50 ms (a starved CPU) at 100 due a second: it falls behind.
    Its lateness goes to the lag, not to the latencies (the service answers in 1 ms), and
    what it could not send by the end is dropped, not sent after it."""
    answers: list[Outcome] = []
    profile = Profile(rate=100, duration=1)
    generator = Generator(
        profile, [("a", 1)], fake_send(0.001, answers, busy=0.05), max_in_flight=50
    )
    started = time.monotonic()
    result = run(generator)
    elapsed = time.monotonic() - started
    # sending all 100 at 50 ms each would take 5 s; the load ends with its schedule
    assert elapsed < 3 * profile.length, elapsed
    assert result.dropped_late > 0
    assert result.overall.count + result.dropped_late == profile.total
    assert result.lag.duration("p(99)") > 100  # ms: far behind by the end
    assert result.overall.duration("p(99)") < result.lag.duration("p(99)")


def test_every_planned_request_is_sent_when_connections_suffice() -> None:
    """The count is exact; the rate achieved and its latencies are the bench's: sleeps on a
    busy machine say nothing about the generator."""
    answers: list[Outcome] = []
    generator = Generator(
        Profile(rate=200, duration=1), [("a", 1)], fake_send(0.02, answers), max_in_flight=20
    )
    result = run(generator)
    assert result.overall.count == 200
    assert len(answers) == 200
    assert result.peak_in_flight <= 20
    assert result.stopped is None
    assert result.dropped == 0


def test_a_lost_threshold_stops_the_run_early() -> None:
    answers: list[Outcome] = []
    p99 = threshold("http_req_duration", "p(99) < 10")
    generator = Generator(
        Profile(rate=100, duration=5),
        [("a", 1)],
        fake_send(0.03, answers),
        max_in_flight=10,
        thresholds=[p99],
    )
    started = time.monotonic()
    result = run(generator)
    assert time.monotonic() - started < 5  # before the profile's 5 s were up
    assert result.lost == [p99]
    assert result.stopped == "http_req_duration p(99) < 10 can no longer hold"
    # 500 planned: lost at the 6th answer over 10 ms; a few more were in flight
    assert 6 <= result.overall.count < 30


def test_drops_past_a_threshold_stop_the_run_early() -> None:
    answers: list[Outcome] = []
    drops = threshold("dropped_iterations", "count < 5")
    generator = Generator(
        Profile(rate=100, duration=5),
        [("a", 1)],
        fake_send(0.5, answers),
        max_in_flight=2,
        thresholds=[drops],
    )
    result = run(generator)
    assert result.lost == [drops]
    assert result.lost_by[drops] == 5
    assert result.elapsed < 5


def test_without_abort_on_fail_the_run_goes_to_its_end() -> None:
    answers: list[Outcome] = []
    generator = Generator(
        Profile(rate=100, duration=0.3),
        [("a", 1)],
        fake_send(0.02, answers),
        max_in_flight=10,
        thresholds=[threshold("http_req_duration", "p(99) < 1")],
        abort_on_fail=False,
    )
    result = run(generator)
    assert result.overall.count == 30
    assert result.stopped is None


def test_the_deadline_stops_the_schedule() -> None:
    answers: list[Outcome] = []
    stop_after = time.monotonic() + 0.2
    generator = Generator(
        Profile(rate=100, duration=5),
        [("a", 1)],
        fake_send(0.001, answers),
        max_in_flight=10,
        stop_by=stop_after,
    )
    result = run(generator)
    assert result.stopped == "the deadline is near"
    assert 10 <= result.overall.count <= 30
    assert result.not_sent == result.planned - result.overall.count


def test_the_load_kind_claims_only_files_that_declare_it(tmp_path: Path) -> None:
    from hooks.suites.http import HttpSuiteKind
    from hooks.suites.load import LoadSuite, LoadSuiteKind
    from tests.helpers import SUITES

    kind = LoadSuiteKind()
    example = SUITES / "examples" / "catalog-load.yaml"
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: plain\nchecks: [{name: c, request: {path: /}}]\n")
    assert kind.claims(example)
    assert not kind.claims(plain)
    assert not HttpSuiteKind().claims(example)
    (suite,) = kind.load(example)
    assert isinstance(suite, LoadSuite)
    assert (suite.profile.rate, suite.profile.ramp, suite.profile.duration) == (20, 1, 5)
    assert suite.profile.total == 10 + 100
    assert suite.check_names() == [
        "arrival rate",
        "http_req_duration p(99) < 500",
        "http_req_duration p(50) < 150",
        "http_req_failed rate < 0.01",
        "http_reqs count >= 100",
        "dropped_iterations count == 0",
    ]


def test_a_series_travels_as_data_and_merges_as_if_measured_in_one_place() -> None:
    import random

    draw = random.Random(3)
    values = [draw.expovariate(1 / 40) for _ in range(4000)]
    whole, left, right = series_of(values[:0]), series_of([]), series_of([])
    for index, value in enumerate(values):
        whole.add(value, ok=index % 50 != 0)
        (left if index % 2 else right).add(value, ok=index % 50 != 0)
    merged = Series.from_dict(left.to_dict())
    merged.merge(Series.from_dict(json_round_trip(right.to_dict())))
    for aggregation in ("p(50)", "p(99)", "avg", "min", "max"):
        assert merged.duration(aggregation) == pytest.approx(whole.duration(aggregation)), (
            aggregation
        )
    assert (merged.count, merged.failed) == (whole.count, whole.failed)
    assert merged.at_least == whole.at_least
    # and the sketch's percentile is within its 1 % of the sorted truth
    truth = sorted(values)[math.ceil(0.99 * len(values)) - 1]
    assert merged.duration("p(99)") == pytest.approx(truth, rel=0.02)


def json_round_trip(data: dict[str, object]) -> dict[str, object]:
    import json

    loaded: dict[str, object] = json.loads(json.dumps(data))
    return loaded


def test_parts_of_a_load_are_judged_on_the_merged_histogram() -> None:
    from hooks.core.results import CheckResult, Status, SuiteResult
    from hooks.suites.load import PART_KEY, Judge, judge_parts
    from hooks.suites.loadgen import LoadResult

    p99 = threshold("http_req_duration", "p(99) < 100")
    judge = Judge((p99,), Profile(rate=10, duration=1), 0.5, 10, "load.yaml")

    def part(index: int, latencies: list[float]) -> SuiteResult:
        series = series_of(latencies, watch=100)
        result = LoadResult(len(latencies), {"a": len(latencies)}, series, {"a": series})
        result.achieved = 5.0
        data = {"part": [index, 2], "result": result.to_dict(), "judge": judge.to_dict()}
        check = CheckResult("arrival rate", Status.SKIPPED, data={PART_KEY: data})
        return SuiteResult("load", "load", (check,))

    # Each part alone has 1 slow answer in 100 (its own p99 passes); together 2 in 200 do too,
    # but 3 slow in one part and 0 in the other fail the whole: p99 of 200 is the 198th.
    fine = judge_parts("load", [part(0, [10.0] * 99 + [500.0]), part(1, [10.0] * 99 + [500.0])], [])
    assert {c.name: c.status for c in fine.checks} == {
        "arrival rate": Status.PASSED,
        "http_req_duration p(99) < 100": Status.PASSED,
    }
    assert "10.0/s sent" in fine.checks[0].message  # the parts' rates add up
    slow = judge_parts("load", [part(0, [10.0] * 97 + [500.0] * 3), part(1, [10.0] * 100)], [])
    assert {c.name: c.status for c in slow.checks}["http_req_duration p(99) < 100"] is (
        Status.FAILED
    )
    crashed = judge_parts("load", [part(0, [10.0] * 100)], ["the shard that ran it failed: x"])
    assert not crashed.passed
    assert crashed.error == "1 of the load's 2 parts did not run: the shard that ran it failed: x"


def judged(
    result: LoadResult, *expressions: tuple[str, str], max_in_flight: int = 50
) -> dict[str, Any]:
    from hooks.suites.load import Judge

    limits = tuple(threshold(metric, expression) for metric, expression in expressions)
    judge = Judge(limits, Profile(rate=100, duration=1), 0.95, max_in_flight, "load.yaml")
    return {check.name: check for check in judge.checks(result)}


def test_a_generator_that_fell_behind_is_an_error_that_never_blames_the_service() -> None:
    """The sender starved of CPU: the arrival rate is an error naming the generator and what
    to change, and a latency threshold it failed is not judged against the service."""
    answers: list[Outcome] = []
    generator = Generator(
        Profile(rate=100, duration=1),
        [("a", 1)],
        fake_send(0.001, answers, busy=0.05),
        max_in_flight=50,
    )
    checks = judged(run(generator), ("http_req_duration", "p(99) < 1"))
    rate = checks["arrival rate"]
    assert rate.status == "error", rate
    assert "the load generator fell behind, not the service" in rate.message
    assert "requests were still unsent when the load ended" in rate.message
    assert "give the function more memory" in rate.message
    assert "workers: " in rate.message
    assert "answered too slowly" not in rate.message
    latency = checks["http_req_duration p(99) < 1"]
    assert latency.status == "error", latency
    assert latency.message.startswith("not judged: the load generator fell behind")


def test_a_service_that_holds_every_allowed_request_fails_the_rate_by_its_drops() -> None:
    answers: list[Outcome] = []
    generator = Generator(
        Profile(rate=100, duration=0.5), [("a", 1)], fake_send(0.2, answers), max_in_flight=2
    )
    result = run(generator)
    checks = judged(result, ("dropped_iterations", "count == 0"), max_in_flight=2)
    rate = checks["arrival rate"]
    assert rate.status == "failed", rate
    assert (
        f"{result.dropped_busy} requests fell due while all 2 allowed were outstanding, "
        "and were dropped — the service answered too slowly for this rate"
    ) in rate.message
    dropped = checks["dropped_iterations count == 0"]
    assert dropped.status == "failed"
    assert dropped.message.startswith("count = ")


@pytest.mark.parametrize("max_in_flight", [2, 50])
def test_the_sender_sleeps_deaf_to_answers_only_while_slots_are_plenty(max_in_flight: int) -> None:
    """A generator allowed to coalesce (its answers stamped by the kernel) lets the loop
    sleep to its next send; never while half the slots are taken, where an answer read late
    could drop a request for a slot already free. The loop is left as it was found."""
    seen: list[float] = []
    answers: list[Outcome] = []
    service = fake_send(0.04, answers)

    def send(name: str, due: float, record: Record) -> None:
        seen.append(RUNNING[-1].coalesce)
        service(name, due, record)

    generator = Generator(
        Profile(rate=100, duration=0.3), [("a", 1)], send, max_in_flight=max_in_flight
    )
    generator.coalesce = 0.005
    loop = Reactor()
    RUNNING.append(loop)
    try:
        result = generator.run(loop)
        assert loop.coalesce == 0.0
    finally:
        RUNNING.remove(loop)
        loop.close()
    assert result.overall.count + result.dropped == 30
    later = seen[1:]  # the first send comes before any sleep
    assert later
    if max_in_flight == 2:  # one of two always outstanding (40 ms answers, 10 ms apart)
        assert set(later) == {0.0}
    else:
        assert set(later) == {0.005}
