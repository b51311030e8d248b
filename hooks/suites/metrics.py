"""The ``metrics`` suite kind: CloudWatch's view of green, judged by thresholds and alarms.

A YAML file that says ``kind: metrics``::

    kind: metrics
    name: green-golden-signals
    events: [AfterAllowTraffic]
    window: 5m               # the traffic judged, from the minute the gate began
    min_requests: 100        # fewer is a failure: an idle window proves nothing
    thresholds:              # green's target group, behind the load balancer
      http_req_duration: ["p(99) < 300"]     # TargetResponseTime, milliseconds
      http_req_failed: "rate < 0.01"         # (target 5xx + connection errors) / requests
    alarms: [shop-5xx, shop-latency]         # each must be OK
    queries:                                 # any metric, one statistic over the window
      - name: checkout errors
        namespace: Shop
        metric: CheckoutErrors
        dimensions: {Service: shop}
        stat: Sum
        threshold: "< 5"
        missing: zero

The window is whole minutes, from the minute in which the gate began (an ECS gate's first
call) for ``window``; CloudWatch publishes a minute late, so the suite waits ``delay`` past
the window's end. When that is after this run's deadline the checks time out at once,
saying when the window closes: Amazon ECS then calls the hook again, and a CodeDeploy hook
fails (shorten the window). One ``GetMetricData`` call asks for every series, each as a
single datapoint over the whole window (the period is the window), so a percentile is the
window's percentile, not an average of minutes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hooks.core.exceptions import ConfigError
from hooks.core.results import CheckResult, Evidence, Status
from hooks.core.yamlfile import located
from hooks.suites.base import DeclaredKind, DeclaredSuite, SuiteContext
from hooks.suites.http.template import UnknownVariableError, render
from hooks.suites.thresholds import (
    HTTP_METRICS,
    Threshold,
    ThresholdError,
    parse,
    parse_seconds,
    parse_section,
    show,
)

__all__ = [
    "DEFAULT_DELAY",
    "DEFAULT_MIN_REQUESTS",
    "DEFAULT_WINDOW",
    "NAMESPACE",
    "QUERY_MARGIN",
    "SCHEMA_PATH",
    "MetricsSuite",
    "MetricsSuiteKind",
    "Query",
    "Window",
    "cloudwatch",
]

SCHEMA_PATH = Path(__file__).with_name("metrics_schema.json")
NAMESPACE = "AWS/ApplicationELB"
DEFAULT_WINDOW = 300.0
DEFAULT_DELAY = 60.0
DEFAULT_MIN_REQUESTS = 20
#: Seconds kept after the wait for the queries themselves.
QUERY_MARGIN = 5.0
#: Statistic of TargetResponseTime for each latency aggregation.
_LATENCY_STAT = {"avg": "Average", "min": "Minimum", "max": "Maximum", "med": "p50"}
_FAILURE_METRICS = ("HTTPCode_Target_5XX_Count", "TargetConnectionErrorCount")
_QUERY_AGGREGATIONS = {"value": frozenset({"value"})}


def cloudwatch() -> Any:
    """A CloudWatch client (replaced in tests)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "cloudwatch",
        config=Config(
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=3,
            read_timeout=10,
            user_agent_extra="greenlight",
        ),
    )


@dataclass(frozen=True)
class Query:
    """One custom series: a metric, a statistic over the window, a threshold."""

    name: str
    namespace: str
    metric: str
    dimensions: Mapping[str, str]
    stat: str
    threshold: Threshold
    missing: str  # "fail" or "zero"


@dataclass(frozen=True)
class Window:
    """Whole minutes, ``start`` to ``end``; judged once CloudWatch has published them."""

    start: float
    end: float
    ready_at: float

    @classmethod
    def of(cls, since: float, length: float, delay: float) -> Window:
        start = math.floor(since / 60) * 60
        end = start + max(60, math.ceil(length / 60) * 60)
        return cls(start, end, end + delay)

    @property
    def period(self) -> int:
        return int(self.end - self.start)

    def describe(self) -> str:
        return f"{_clock(self.start)} to {_clock(self.end)}"


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%SZ")


class MetricsSuite(DeclaredSuite):
    """Thresholds on green's target group, custom queries and alarms, over one window."""

    def __init__(
        self,
        *,
        data: Mapping[str, Any],
        path: Path,
        window: float,
        delay: float,
        thresholds: list[Threshold],
        queries: list[Query],
    ) -> None:
        super().__init__(data=data, path=path, kind="metrics")
        self.window = window
        self.delay = delay
        self.thresholds = thresholds
        self.queries = queries
        self.alarms = [str(a) for a in data.get("alarms", [])]
        self.dimensions = {k: str(v) for k, v in (data.get("dimensions") or {}).items()}
        default = DEFAULT_MIN_REQUESTS if thresholds else 0
        self.min_requests = int(data.get("min_requests", default))

    @property
    def _target_group_checks(self) -> bool:
        return bool(self.thresholds) or self.min_requests > 0

    def check_names(self) -> list[str]:
        names = [f"requests in the window >= {self.min_requests}"] if self.min_requests else []
        names += [t.label for t in self.thresholds]
        names += [q.name for q in self.queries]
        names += [f"alarm {alarm} is OK" for alarm in self.alarms]
        return names

    def run(self, ctx: SuiteContext) -> None:
        started = time.perf_counter()
        since = ctx.deployment.since or time.time()
        window = Window.of(since, self.window, self.delay)
        wait = window.ready_at - time.time()
        left = ctx.deadline.remaining()
        if wait > left - QUERY_MARGIN:
            again = " (Amazon ECS calls the hook again)" if ctx.deployment.stage else ""
            self.emit_each(
                ctx,
                Status.TIMED_OUT,
                f"the metrics window {window.describe()} can be judged at "
                f"{_clock(window.ready_at)} (CloudWatch publishes {self.delay:g}s late), "
                f"{wait:.0f}s from now, and this run has {left:.0f}s left{again}: "
                f"shorten the window, or plan the suite where it has the time",
            )
            return
        client = cloudwatch()
        problem = self._probe(client)
        if problem is not None:  # now, not once the window has closed
            self.emit_each(ctx, Status.ERROR, f"cannot read CloudWatch: {problem}")
            return
        if wait > 0:
            time.sleep(wait)

        try:
            dimensions, custom = self._dimensions(ctx)
        except UnknownVariableError as exc:
            self.emit_each(ctx, Status.FAILED, f"cannot prepare the queries: {exc}")
            return
        if self._target_group_checks and set(dimensions) != {"LoadBalancer", "TargetGroup"}:
            problem = (
                "green's target group is not known (no discovery ran, or it went through "
                "Service Connect): set dimensions: {LoadBalancer: app/NAME/ID, TargetGroup: "
                "targetgroup/NAME/ID} in " + str(self.source)
            )
            self.emit_each(ctx, Status.FAILED, problem)
            return
        try:
            values = self._query(client, window, dimensions, custom)
            states = self._alarm_states(client) if self.alarms else {}
        except Exception as exc:
            error = _explain(exc)
            self.emit_each(ctx, Status.ERROR, f"cannot read CloudWatch: {error}")
            return
        duration = time.perf_counter() - started
        for result in self._judge(window, values, states):
            ctx.emit(_timed(result, duration))

    def _probe(self, client: Any) -> str | None:
        """The calls the suite will make, made once as it starts, cheaply (a past minute of
        one metric, one alarm): a missing permission or an endpoint out of reach is said at
        once, naming the permission, instead of after the window."""
        now = time.time()
        try:
            client.get_metric_data(
                MetricDataQueries=[
                    {
                        "Id": "probe",
                        "MetricStat": {
                            "Metric": {
                                "Namespace": "AWS/ApplicationELB",
                                "MetricName": "RequestCount",
                            },
                            "Period": 60,
                            "Stat": "Sum",
                        },
                    }
                ],
                StartTime=datetime.fromtimestamp(now - 180, UTC),
                EndTime=datetime.fromtimestamp(now - 120, UTC),
            )
            if self.alarms:
                client.describe_alarms(AlarmNames=self.alarms[:1], MaxRecords=1)
        except Exception as exc:
            return str(_explain(exc))
        return None

    def _dimensions(self, ctx: SuiteContext) -> tuple[dict[str, str], list[dict[str, str]]]:
        """Green's dimensions (discovered, then the file's), and each query's, rendered."""

        variables = ctx.variables()
        given = {k: str(render(v, variables)) for k, v in self.dimensions.items()}
        custom = [
            {k: str(render(v, variables)) for k, v in query.dimensions.items()}
            for query in self.queries
        ]
        return {**dict(ctx.target.dimensions), **given}, custom

    def _query(
        self,
        client: Any,
        window: Window,
        dimensions: Mapping[str, str],
        custom: Sequence[Mapping[str, str]],
    ) -> dict[str, float | None]:
        queries = self._metric_queries(window, dimensions, custom)
        if not queries:
            return {}
        values: dict[str, float | None] = {q["Id"]: None for q in queries}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "MetricDataQueries": queries,
                "StartTime": datetime.fromtimestamp(window.start, UTC),
                "EndTime": datetime.fromtimestamp(window.end, UTC),
                "ScanBy": "TimestampAscending",
            }
            if token:
                kwargs["NextToken"] = token
            answer = client.get_metric_data(**kwargs)
            for series in answer.get("MetricDataResults", []):
                found = [v for v in series.get("Values", []) if v is not None]
                if found:
                    values[series["Id"]] = _combine(series["Id"], found)
            token = answer.get("NextToken")
            if not token:
                return values

    def _metric_queries(
        self,
        window: Window,
        dimensions: Mapping[str, str],
        custom: Sequence[Mapping[str, str]],
    ) -> list[dict[str, Any]]:
        queries: list[dict[str, Any]] = []

        def add(
            query_id: str, namespace: str, metric: str, dims: Mapping[str, str], stat: str
        ) -> None:
            queries.append(
                {
                    "Id": query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": namespace,
                            "MetricName": metric,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                        },
                        "Period": window.period,
                        "Stat": stat,
                    },
                    "ReturnData": True,
                }
            )

        if self._target_group_checks:
            add("requests", NAMESPACE, "RequestCount", dimensions, "Sum")
            for index, metric in enumerate(_FAILURE_METRICS):
                add(f"failures{index}", NAMESPACE, metric, dimensions, "Sum")
            for stat in sorted({_latency_stat(t) for t in self.thresholds if _is_latency(t)}):
                add(_stat_id(stat), NAMESPACE, "TargetResponseTime", dimensions, stat)
        for index, (query, dims) in enumerate(zip(self.queries, custom, strict=True)):
            add(f"q{index}", query.namespace, query.metric, dims, query.stat)
        return queries

    def _alarm_states(self, client: Any) -> dict[str, Mapping[str, Any]]:
        states: dict[str, Mapping[str, Any]] = {}
        for start in range(0, len(self.alarms), 100):
            names = self.alarms[start : start + 100]
            answer = client.describe_alarms(
                AlarmNames=names, AlarmTypes=["MetricAlarm", "CompositeAlarm"]
            )
            for alarm in [*answer.get("MetricAlarms", []), *answer.get("CompositeAlarms", [])]:
                states[alarm["AlarmName"]] = alarm
        return states

    def _judge(
        self,
        window: Window,
        values: Mapping[str, float | None],
        states: Mapping[str, Mapping[str, Any]],
    ) -> list[CheckResult]:
        results: list[CheckResult] = []
        span = f"in {window.describe()}"
        requests = values.get("requests")
        failures = sum(values.get(f"failures{i}") or 0.0 for i in range(len(_FAILURE_METRICS)))
        if self.min_requests:
            count = int(requests or 0)
            ok = count >= self.min_requests
            results.append(
                self._result(
                    f"requests in the window >= {self.min_requests}",
                    ok,
                    f"{count} requests reached green {span}"
                    + ("" if ok else ": too few to judge (an idle window proves nothing)"),
                )
            )
        for threshold in self.thresholds:
            measured = _measure(threshold, values, requests, failures, window)
            shown = show(threshold, measured)
            results.append(
                self._result(
                    threshold.label,
                    threshold.holds(measured),
                    f"{shown} {span}" if measured is not None else f"no data {span}",
                )
            )
        for index, query in enumerate(self.queries):
            value = values.get(f"q{index}")
            if value is None and query.missing == "zero":
                value = 0.0
            where = f"{query.namespace} {query.metric} {query.stat}"
            results.append(
                self._result(
                    query.name,
                    query.threshold.holds(value),
                    f"{where} = {value:g} (threshold {query.threshold.op} "
                    f"{query.threshold.value:g}) {span}"
                    if value is not None
                    else f"{where}: no datapoints {span} (missing: zero counts none as 0)",
                )
            )
        for name in self.alarms:
            alarm = states.get(name)
            if alarm is None:
                missing = f"no alarm named {name!r} in this account and region"
                results.append(self._result(f"alarm {name} is OK", False, missing))
                continue
            state = alarm.get("StateValue")
            reason = alarm.get("StateReason", "")
            results.append(
                self._result(
                    f"alarm {name} is OK",
                    state == "OK",
                    f"{state}: {reason}" if reason else str(state),
                )
            )
        return results

    def _result(self, name: str, ok: bool, message: str) -> CheckResult:
        if ok:
            return CheckResult(name, Status.PASSED, message=message, location=self.source)
        return CheckResult(
            name,
            Status.FAILED,
            message=message,
            failures=(message,),
            evidence=Evidence(request="cloudwatch:GetMetricData / DescribeAlarms"),
            location=self.source,
        )


def _timed(result: CheckResult, duration: float) -> CheckResult:
    from dataclasses import replace

    return replace(result, duration=duration)


def _explain(exc: Exception) -> Exception:
    """What went wrong calling CloudWatch, with the permission or setting to fix."""
    # on use: every worker lists this kind; discovery's messages load only when they are said
    from hooks.aws.discovery import explain

    return explain("cloudwatch", _failing_operation(exc), exc)


def _failing_operation(exc: Exception) -> str:
    operation = getattr(exc, "operation_name", None)
    return str(operation) if operation else "GetMetricData"


def _is_latency(threshold: Threshold) -> bool:
    return threshold.metric == "http_req_duration"


def _latency_stat(threshold: Threshold) -> str:
    quantile = threshold.quantile
    if quantile is not None:
        return f"p{quantile * 100:g}"
    return _LATENCY_STAT[threshold.aggregation]


def _stat_id(stat: str) -> str:
    return "latency_" + stat.lower().replace(".", "_")


def _combine(query_id: str, values: Sequence[float]) -> float:
    """One value per series: the window is one period, but a window that crosses CloudWatch's
    boundaries may come back in two; sums add, and other statistics keep the worst."""
    if len(values) == 1:
        return float(values[0])
    if query_id in ("requests", "failures0", "failures1"):
        return float(sum(values))
    return float(max(values))


def _measure(
    threshold: Threshold,
    values: Mapping[str, float | None],
    requests: float | None,
    failures: float,
    window: Window,
) -> float | None:
    if threshold.metric == "http_req_duration":
        seconds = values.get(_stat_id(_latency_stat(threshold)))
        return None if seconds is None else seconds * 1000
    if threshold.metric == "http_req_failed":
        if threshold.aggregation == "count":
            return failures
        return failures / requests if requests else None
    if threshold.aggregation == "count":
        return requests or 0.0
    return (requests or 0.0) / window.period


class MetricsSuiteKind(DeclaredKind):
    """Loads YAML files that declare ``kind: metrics``."""

    name = "metrics"
    schema = SCHEMA_PATH

    def build(self, data: Mapping[str, Any], path: Path, text: str) -> MetricsSuite:
        spans: dict[str, float] = {}
        for key, default in (("window", DEFAULT_WINDOW), ("delay", DEFAULT_DELAY)):
            try:
                spans[key] = parse_seconds(data.get(key, default))
            except ThresholdError as exc:
                raise located(path, text, [key], str(exc)) from None
        if not 60 <= spans["window"] <= 3600:
            raise located(path, text, ["window"], "the window is 1 to 60 minutes")
        thresholds = parse_section(
            data.get("thresholds") or {},
            HTTP_METRICS,
            lambda keys, why: located(path, text, keys, why),
        )
        for threshold in thresholds:
            if threshold.request:
                raise located(
                    path,
                    text,
                    ["thresholds", next(m for m in data["thresholds"] if "{" in m)],
                    "the load balancer does not know requests by name: no {request:...} here",
                )
        queries = [_query(spec, path, text, i) for i, spec in enumerate(data.get("queries", []))]
        if not (thresholds or queries or data.get("alarms")):
            raise ConfigError(f"{path}: a metrics suite needs thresholds, queries or alarms")
        names = [q.name for q in queries]
        for index, name in enumerate(names):
            if names.index(name) != index:
                raise located(path, text, ["queries", index, "name"], f"duplicate name {name!r}")
        return MetricsSuite(
            data=data,
            path=path,
            window=spans["window"],
            delay=spans["delay"],
            thresholds=thresholds,
            queries=queries,
        )


def _query(spec: Mapping[str, Any], path: Path, text: str, index: int) -> Query:
    expression = str(spec["threshold"]).strip()
    if expression[:1] in "<>=!":
        expression = f"value {expression}"
    try:
        threshold = parse("value", expression, _QUERY_AGGREGATIONS)
    except ThresholdError as exc:
        raise located(path, text, ["queries", index, "threshold"], str(exc)) from None
    return Query(
        name=str(spec["name"]),
        namespace=str(spec["namespace"]),
        metric=str(spec["metric"]),
        dimensions={k: str(v) for k, v in (spec.get("dimensions") or {}).items()},
        stat=str(spec.get("stat", "Sum")),
        threshold=threshold,
        missing=str(spec.get("missing", "fail")),
    )
