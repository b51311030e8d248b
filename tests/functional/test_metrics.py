"""``metrics`` suites against CloudWatch: moto for the metrics and alarms it implements,
botocore's Stubber (the real service model) for percentiles, which moto does not compute."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from hooks.adapters.ecs import settle
from hooks.aws.signing import key_from_env
from hooks.core.deadline import Deadline
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import Status
from hooks.core.target import Target, cloudwatch_dimensions
from hooks.gate.carried import GateState, plan_digest
from hooks.process.runner import RunResult, run_suites
from hooks.suites import metrics
from hooks.suites.base import DeploymentInfo
from hooks.suites.metrics import MetricsSuiteKind, Window
from tests.helpers import each

REGION = "us-east-1"
DIMENSIONS = {
    "LoadBalancer": "app/shop/50dc6c495c0c9188",
    "TargetGroup": "targetgroup/shop-green/73e2d6bc24d8a067",
}
SUITE = """\
kind: metrics
name: golden-signals
window: 5m
delay: 30s
min_requests: 100
thresholds:
  http_req_failed: "rate < 0.01"
  http_req_duration: "avg < 300"
alarms: [shop-5xx]
queries:
  - name: checkout errors
    namespace: Shop
    metric: CheckoutErrors
    dimensions: {TargetGroup: "${target.target_group}"}
    stat: Sum
    threshold: "< 5"
    missing: zero
"""

#: The command line's own signing key: one process plays every ECS call here.
KEY = key_from_env({})


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in [n for n in __import__("os").environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("cloudwatch", region_name=REGION)
        client.put_metric_alarm(
            AlarmName="shop-5xx",
            MetricName="HTTPCode_Target_5XX_Count",
            Namespace="AWS/ApplicationELB",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=10,
            ComparisonOperator="GreaterThanThreshold",
        )
        yield client


def load(tmp_path: Path, text: str = SUITE) -> metrics.MetricsSuite:
    path = tmp_path / "signals.yaml"
    path.write_text(text)
    (suite,) = MetricsSuiteKind().load(path)
    assert isinstance(suite, metrics.MetricsSuite)
    return suite


def run(
    suite: metrics.MetricsSuite,
    since: float,
    *,
    dimensions: dict[str, str] = DIMENSIONS,
    seconds: float = 20,
    stage: str | None = None,
) -> dict[str, Any]:
    info = DeploymentInfo(
        "d-METRICS", "exec", LifecycleEvent.AFTER_ALLOW_TRAFFIC, stage=stage, since=since
    )
    result = run_suites(
        [suite],
        target=Target("http://127.0.0.1:9", dimensions=dimensions),
        deployment=info,
        deadline=Deadline.in_seconds(seconds),
    )
    (ran,) = result.suites
    return {"suite": ran, "checks": {c.name: c for c in ran.checks}, "run": result}


def put(client: Any, name: str, value: float, at: float, namespace: str = "AWS/ApplicationELB",
        dimensions: dict[str, str] = DIMENSIONS) -> None:  # fmt: skip
    client.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                "Timestamp": datetime.fromtimestamp(at, UTC),
                "Value": value,
            }
        ],
    )


def traffic(client: Any, window: Window, requests: int, errors: int, latency: float) -> None:
    """Minute by minute, as the load balancer publishes: requests, 5xx and response times."""
    minutes = int(window.period / 60)
    for minute in range(minutes):
        at = window.start + 60 * minute + 30
        put(client, "RequestCount", requests / minutes, at)
        if errors:
            put(client, "HTTPCode_Target_5XX_Count", errors / minutes, at)
        put(client, "TargetResponseTime", latency, at)


def a_closed_window() -> tuple[float, Window]:
    since = time.time() - 15 * 60
    return since, Window.of(since, 300, 30)


def test_a_healthy_window_passes_every_check(tmp_path: Path, cloudwatch: Any) -> None:
    since, window = a_closed_window()
    traffic(cloudwatch, window, requests=1000, errors=5, latency=0.05)
    # outside the window: neither counted nor judged
    put(cloudwatch, "HTTPCode_Target_5XX_Count", 900, window.start - 120)
    ran = run(load(tmp_path), since)
    checks = ran["checks"]
    assert {n: c.status for n, c in checks.items()} == {
        "requests in the window >= 100": Status.PASSED,
        "http_req_failed rate < 0.01": Status.PASSED,
        "http_req_duration avg < 300": Status.PASSED,
        "checkout errors": Status.PASSED,
        "alarm shop-5xx is OK": Status.PASSED,
    }, {n: c.message for n, c in checks.items()}
    assert checks["requests in the window >= 100"].message.startswith("1000 requests reached green")
    assert checks["http_req_failed rate < 0.01"].message.startswith("rate = 0.005 (0.50%) in ")
    assert checks["http_req_duration avg < 300"].message.startswith("avg = 50.0 ms")
    assert checks["checkout errors"].message.startswith("Shop CheckoutErrors Sum = 0 ")


def test_errors_alarms_and_a_custom_metric_fail_with_their_values(
    tmp_path: Path, cloudwatch: Any
) -> None:
    since, window = a_closed_window()
    traffic(cloudwatch, window, requests=1000, errors=40, latency=0.4)
    green = {"TargetGroup": DIMENSIONS["TargetGroup"]}
    put(cloudwatch, "CheckoutErrors", 7, window.start + 90, namespace="Shop", dimensions=green)
    cloudwatch.set_alarm_state(
        AlarmName="shop-5xx", StateValue="ALARM", StateReason="Threshold Crossed: 40 > 10"
    )
    checks = run(load(tmp_path), since)["checks"]
    failed = {n: c.message for n, c in checks.items() if c.status is Status.FAILED}
    assert set(failed) == {
        "http_req_failed rate < 0.01",
        "http_req_duration avg < 300",
        "checkout errors",
        "alarm shop-5xx is OK",
    }
    assert failed["http_req_failed rate < 0.01"].startswith("rate = 0.04 (4.00%) in ")
    assert failed["http_req_duration avg < 300"].startswith("avg = 400.0 ms")
    assert failed["checkout errors"].startswith("Shop CheckoutErrors Sum = 7 (threshold < 5)")
    assert failed["alarm shop-5xx is OK"] == "ALARM: Threshold Crossed: 40 > 10"


@pytest.mark.parametrize(
    ("state", "expected"),
    [("INSUFFICIENT_DATA", "INSUFFICIENT_DATA: no data yet"), (None, "no alarm named 'shop-5xx'")],
)
def test_an_alarm_not_ok_or_not_there_fails(
    tmp_path: Path, cloudwatch: Any, state: str | None, expected: str
) -> None:
    if state is None:
        cloudwatch.delete_alarms(AlarmNames=["shop-5xx"])
    else:
        cloudwatch.set_alarm_state(
            AlarmName="shop-5xx", StateValue=state, StateReason="no data yet"
        )
    suite = load(tmp_path, "kind: metrics\nname: alarms-only\nalarms: [shop-5xx]\n")
    since, _ = a_closed_window()
    (check,) = run(suite, since, dimensions={})["checks"].values()
    assert check.status is Status.FAILED
    assert check.message.startswith(expected)


def test_an_idle_window_is_not_a_pass(tmp_path: Path, cloudwatch: Any) -> None:
    since, _ = a_closed_window()
    checks = run(load(tmp_path), since)["checks"]
    assert checks["requests in the window >= 100"].status is Status.FAILED
    assert "0 requests reached green" in checks["requests in the window >= 100"].message
    assert "an idle window proves nothing" in checks["requests in the window >= 100"].message
    assert checks["http_req_failed rate < 0.01"].status is Status.FAILED
    assert checks["http_req_failed rate < 0.01"].message.startswith("no data in ")


@pytest.mark.timing
def test_a_window_still_open_times_out_at_once_and_ecs_calls_again(
    tmp_path: Path, cloudwatch: Any
) -> None:
    started = time.monotonic()
    ran = run(load(tmp_path), time.time(), seconds=20, stage="POST_TEST_TRAFFIC_SHIFT")
    # no waiting for a window that cannot close in time: far from the 20 s it would wait
    assert time.monotonic() - started < 20 / 2
    checks = ran["checks"]
    assert {c.status for c in checks.values()} == {Status.TIMED_OUT}
    message = next(iter(checks.values())).message
    assert "can be judged at" in message
    assert "(CloudWatch publishes 30s late)" in message
    assert "(Amazon ECS calls the hook again)" in message
    # the ECS gate answers IN_PROGRESS, carrying when it began
    summary, call = ecs_summary(ran["run"])
    settle(summary, call, settings(), KEY)
    assert summary.verdict.status.value == "InProgress", summary.verdict
    assert "unfinished golden-signals" in summary.verdict.reason


@pytest.mark.timing
def test_a_window_that_closes_within_the_deadline_is_waited_for(
    tmp_path: Path, cloudwatch: Any
) -> None:
    now = time.time()
    end = now // 60 * 60  # the last whole minute
    delay = round(now + 3 - end, 3)  # CloudWatch's delay ends 3 s from now
    since = end - 30
    window = Window.of(since, 60, delay)
    assert window.end == end
    text = SUITE.replace("window: 5m", "window: 1m").replace("delay: 30s", f"delay: {delay}")
    traffic(cloudwatch, window, requests=500, errors=0, latency=0.01)
    started = time.time()
    checks = run(load(tmp_path, text), since, seconds=90)["checks"]
    assert time.time() - started >= 2.5, "judged before CloudWatch had the window"
    assert checks["requests in the window >= 100"].status is Status.PASSED
    assert checks["requests in the window >= 100"].message.startswith("500 requests")


def test_without_green_s_dimensions_the_suite_says_what_to_set(
    tmp_path: Path, cloudwatch: Any
) -> None:
    since, _ = a_closed_window()
    checks = run(load(tmp_path), since, dimensions={})["checks"]
    assert {c.status for c in checks.values()} == {Status.FAILED}
    message = next(iter(checks.values())).message
    assert "green's target group is not known" in message
    assert (
        "set dimensions: {LoadBalancer: app/NAME/ID, TargetGroup: targetgroup/NAME/ID}" in message
    )


def expect_probe(stubber: Stubber, alarms: tuple[str, ...] = ()) -> None:
    """The suite's first calls: a past minute of one metric (and one alarm), as it starts."""
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": []},
        {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY},
    )
    if alarms:
        stubber.add_response(
            "describe_alarms", {"MetricAlarms": []}, {"AlarmNames": list(alarms), "MaxRecords": 1}
        )


def test_percentiles_are_asked_of_cloudwatch_over_the_whole_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto computes no percentile: the Stubber checks the call against the real model."""
    client = boto3.client("cloudwatch", region_name=REGION)
    stubber = Stubber(client)
    since, window = a_closed_window()
    text = "kind: metrics\nname: p99\nwindow: 5m\nthresholds:\n  http_req_duration: 'p(99) < 300'\n"
    expect_probe(stubber)
    stubber.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                {"Id": "requests", "Values": [1200.0], "StatusCode": "Complete"},
                {"Id": "failures0", "Values": [], "StatusCode": "Complete"},
                {"Id": "failures1", "Values": [], "StatusCode": "Complete"},
                {"Id": "latency_p99", "Values": [0.42], "StatusCode": "Complete"},
            ]
        },
        {
            "MetricDataQueries": ANY,
            "StartTime": datetime.fromtimestamp(window.start, UTC),
            "EndTime": datetime.fromtimestamp(window.end, UTC),
            "ScanBy": "TimestampAscending",
        },
    )
    asked: list[Any] = []
    client.meta.events.register(
        "provide-client-params.cloudwatch.GetMetricData",
        lambda params, **_: asked.append(params["MetricDataQueries"]),
    )
    monkeypatch.setattr(metrics, "cloudwatch", lambda: client)
    with stubber:
        checks = run(load(tmp_path, text), since)["checks"]
    stubber.assert_no_pending_responses()
    latency = next(q for q in asked[1] if q["Id"] == "latency_p99")["MetricStat"]
    assert latency["Stat"] == "p99"
    assert latency["Period"] == 300
    assert latency["Metric"]["MetricName"] == "TargetResponseTime"
    assert latency["Metric"]["Dimensions"] == [
        {"Name": "LoadBalancer", "Value": DIMENSIONS["LoadBalancer"]},
        {"Name": "TargetGroup", "Value": DIMENSIONS["TargetGroup"]},
    ]
    check = checks["http_req_duration p(99) < 300"]
    assert check.status is Status.FAILED
    assert check.message.startswith("p(99) = 420.0 ms in ")


def test_a_cloudwatch_error_is_an_error_naming_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = boto3.client("cloudwatch", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error(
        "get_metric_data", "AccessDenied", "not authorized to perform: cloudwatch:GetMetricData"
    )
    monkeypatch.setattr(metrics, "cloudwatch", lambda: client)
    since, _ = a_closed_window()
    with stubber:
        checks = run(load(tmp_path), since)["checks"]
    assert {c.status for c in checks.values()} == {Status.ERROR}
    message = next(iter(checks.values())).message
    assert message.startswith("cannot read CloudWatch: ")
    assert "GetMetricData" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: metrics\nname: m\n", "needs thresholds, queries or alarms"),
        (
            "kind: metrics\nname: m\nwindow: 2h\nalarms: [a]\n",
            "signals.yaml:3: at window: the window is 1 to 60 minutes",
        ),
        (
            "kind: metrics\nname: m\nthresholds:\n  http_req_duration: 'p99 < 3'\n",
            "signals.yaml:4: at thresholds.http_req_duration: http_req_duration has no "
            "aggregation 'p99'",
        ),
        (
            "kind: metrics\nname: m\nqueries:\n"
            "  - {name: q, namespace: N, metric: M, threshold: 'about 5'}\n",
            "signals.yaml:4: at queries[0].threshold: cannot read threshold 'about 5'",
        ),
    ],
)
def test_a_wrong_metrics_file_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    from hooks.core.exceptions import ConfigError

    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert message in str(caught.value)


def test_dimensions_come_from_the_arns() -> None:
    listener = (
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
        "listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2"
    )
    rule = listener.replace(":listener/", ":listener-rule/") + "/9683b2d02a6cabee"
    group = (
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
        "targetgroup/shop-green/73e2d6bc24d8a067"
    )
    assert cloudwatch_dimensions(listener, group) == DIMENSIONS
    assert cloudwatch_dimensions(rule, group) == DIMENSIONS
    assert cloudwatch_dimensions(None, None) == {}


def ecs_summary(run: RunResult) -> tuple[Any, Any]:
    from hooks.core.ecs_event import parse_ecs_event
    from hooks.gate.decision import decide
    from hooks.gate.plan import resolve_plan
    from hooks.gate.summary import RunSummary
    from tests.helpers import load_event

    call = parse_ecs_event(load_event("ecs_post_test_traffic_shift"))
    verdict = decide(run.suites, deadline_reached=run.deadline_reached)
    plan = resolve_plan(call.stage.lifecycle_event, settings(), None, stage=call.stage.value)
    summary = RunSummary(call.invocation(), verdict, run, plan=plan)
    assert GateState.of(call, time.time(), KEY, plan_digest(plan)).attempt == 1
    return summary, call


def settings() -> Any:
    from hooks.core.settings import Settings

    return Settings.from_env({})


def test_the_shipped_example_judges_a_good_and_a_bad_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """test_suites/examples/green-signals.yaml, its answers from the real service model."""
    from tests.helpers import SUITES

    (suite,) = MetricsSuiteKind().load(SUITES / "examples" / "green-signals.yaml")
    assert isinstance(suite, metrics.MetricsSuite)
    since, _ = a_closed_window()

    def answers(requests: float, errors: float, p99: float, avg: float, orders: float) -> Any:
        client = boto3.client("cloudwatch", region_name=REGION)
        stubber = Stubber(client)
        series = {
            "requests": [requests],
            "failures0": [errors] if errors else [],
            "failures1": [],
            "latency_average": [avg],
            "latency_p99": [p99],
            "q0": [orders] if orders else [],
        }
        expect_probe(stubber, ("shop-5xx",))
        stubber.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    {"Id": k, "Values": v, "StatusCode": "Complete"} for k, v in series.items()
                ]
            },
        )
        stubber.add_response(
            "describe_alarms",
            {"MetricAlarms": [{"AlarmName": "shop-5xx", "StateValue": "OK"}]},
            {"AlarmNames": ["shop-5xx"], "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]},
        )
        stubber.activate()
        monkeypatch.setattr(metrics, "cloudwatch", lambda: client)
        return stubber

    good = answers(requests=4000, errors=3, p99=0.21, avg=0.04, orders=0)
    checks = run(suite, since)["checks"]
    good.assert_no_pending_responses()
    assert {c.status for c in checks.values()} == {Status.PASSED}, {
        n: c.message for n, c in checks.items()
    }
    bad = answers(requests=4000, errors=3, p99=0.9, avg=0.04, orders=2)
    checks = run(suite, since)["checks"]
    bad.assert_no_pending_responses()
    failed = {n for n, c in checks.items() if c.status is Status.FAILED}
    assert failed == {"http_req_duration p(99) < 500", "no failed orders"}


@pytest.mark.timing
def test_a_missing_permission_is_said_as_the_suite_starts_not_after_its_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-minute window that closes a minute and a half from now, and a role without
    cloudwatch:GetMetricData: the suite fails at once, naming the permission."""
    client = boto3.client("cloudwatch", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error(
        "get_metric_data",
        service_error_code="AccessDenied",
        service_message="not authorized to perform cloudwatch:GetMetricData",
        http_status_code=403,
    )
    monkeypatch.setattr(metrics, "cloudwatch", lambda: client)
    text = "kind: metrics\nname: soon\nwindow: 1m\nthresholds:\n  http_req_failed: 'rate < 0.01'\n"
    seconds = 200.0
    started = time.monotonic()
    with stubber:
        ran = run(load(tmp_path, text), time.time(), seconds=seconds)
    took = time.monotonic() - started
    assert took < seconds / 3  # at once: the window would have kept it past 60 s
    messages = {c.message for c in each(ran["checks"].values())}
    assert len(messages) == 1
    (message,) = messages
    assert "missing the permission cloudwatch:GetMetricData" in message, message
    assert {c.status for c in ran["checks"].values()} == {Status.ERROR}
