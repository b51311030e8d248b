"""What a run leaves for an operator: the evidence bundle in S3, the summary log line, the
metrics, the notification, and `greenlight report` reading the bundle back.

S3 and SNS are moto's; CodeDeploy's report is a real client under a Stubber. The service
under test is a real loopback server; the suites are real files.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import boto3
import fastjsonschema
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from hooks.adapters.hook import handle
from hooks.aws.codedeploy import CodeDeployCallback
from hooks.cli.local import LocalContext
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.log import get_logger
from hooks.evidence.metrics import MetricsReporter
from hooks.evidence.notify import Notifier
from hooks.evidence.reports import SCHEMA_PATH, EvidenceBundle
from hooks.gate.summary import Runtime
from tests.functional.test_hook_protocol import EVENT, expect_report
from tests.helpers import each, http_server, reply

AATT = LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC
BUCKET = "greenlight-evidence"
SECRET = "s3cr3t-token-value"
SUITE = f"""\
name: api
checks:
  - name: health
    request: {{path: /health}}
    assert:
      - status: 200
  - name: orders
    request:
      path: /orders
      headers: {{Authorization: "Bearer {SECRET}"}}
    assert:
      - status: 200
      - jmespath: count
        equals: 3
"""


@pytest.fixture
def service() -> Iterator[str]:
    """Healthy, but /orders answers 500 with a body that echoes the secret."""

    def handle_request(handler: Any) -> None:
        if handler.path == "/orders":
            reply(handler, 500, {"count": 1, "error": f"token {SECRET} rejected"})
        else:
            reply(handler, 200, {"status": "ok"})

    with http_server(handle_request) as url:
        yield url


@pytest.fixture
def env(tmp_path: Path, service: str) -> dict[str, str]:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "api.yaml").write_text(SUITE)
    return {
        "GREENLIGHT_SUITES_DIR": str(suites),
        "GREENLIGHT_TARGET_URL": service,
        "GREENLIGHT_APPLICATION": "shop",
        "GREENLIGHT_DEPLOYMENT_GROUP": "shop-prod",
        "GREENLIGHT_EVIDENCE_BUCKET": BUCKET,
    }


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield


def run_hook(
    callback: CodeDeployCallback,
    env: dict[str, str],
    reporters: tuple[Any, ...],
    seconds: float = 30,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The hook, with its log lines (JSON, as in Lambda) captured."""
    stream = io.StringIO()
    handler = get_logger().registered_handler
    previous = getattr(handler, "stream", None)
    level = get_logger().log_level
    get_logger(stream=stream, level="INFO")
    try:
        result = handle(
            EVENT,
            LocalContext(seconds),
            AATT,
            Runtime(protocol=callback, env=env, reporters=reporters),
        )
    finally:
        get_logger(stream=previous, level=logging.getLevelName(level))
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    return result, lines


def prefix() -> str:
    return f"shop/shop-prod/{EVENT['DeploymentId']}/AfterAllowTestTraffic/"


def test_the_bundle_holds_json_junit_and_html_and_the_log_line_says_where(
    aws: None, env: dict[str, str], codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    result, lines = run_hook(callback, env, (EvidenceBundle(boto3.client("s3")),))

    location = f"s3://{BUCKET}/{prefix()}"
    assert result["verdict"] == "Failed"
    assert result["evidence"] == location
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix())["Contents"]
    assert sorted(o["Key"].removeprefix(prefix()) for o in listed) == [
        "junit.xml",
        "report.html",
        "result.json",
    ]
    data = json.loads(s3.get_object(Bucket=BUCKET, Key=prefix() + "result.json")["Body"].read())
    fastjsonschema.compile(json.loads(SCHEMA_PATH.read_text()))(data)
    (api,) = [s for s in data["suites_detail"] if s["name"] == "api"]
    (orders,) = [c for c in api["checks"] if c["name"] == "orders"]
    assert orders["evidence"]["status"] == 500
    junit = ET.fromstring(s3.get_object(Bucket=BUCKET, Key=prefix() + "junit.xml")["Body"].read())
    assert junit.get("failures") == "1"
    page = s3.get_object(Bucket=BUCKET, Key=prefix() + "report.html")
    assert page["ContentType"].startswith("text/html")
    html = page["Body"].read().decode()
    assert "api / orders" in html
    assert "HTTP 500" in html
    # Redacted everywhere: the header's secret was echoed in the response body.
    for key in ("result.json", "junit.xml", "report.html"):
        assert (
            SECRET not in s3.get_object(Bucket=BUCKET, Key=prefix() + key)["Body"].read().decode()
        )
    summary = lines[-1]
    assert summary["level"] == "ERROR"
    assert summary["evidence"] == location


def test_the_failed_summary_is_an_error_line_listing_each_failure_with_its_request(
    env: dict[str, str], codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    env = {**env, "GREENLIGHT_EVIDENCE_BUCKET": ""}
    _, lines = run_hook(callback, env, ())

    summary = lines[-1]
    assert summary["level"] == "ERROR"
    assert summary["message"].startswith("greenlight Failed: suites failed: api")
    (failure,) = summary["failures"]
    assert failure["check"] == "api / orders"
    assert failure["message"] == "status: expected to be 200, got 500"
    assert failure["request"].endswith("/orders -> HTTP 500")
    assert summary["failures_not_listed"] == 0
    assert SECRET not in json.dumps(lines)
    # Every line of the invocation carries the request id and the cold-start flag.
    assert all("function_request_id" in line and "cold_start" in line for line in each(lines))
    assert len({line["function_request_id"] for line in lines}) == 1


@pytest.fixture
def passing(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The same suite against a service that satisfies it."""
    with http_server(lambda h: reply(h, 200, {"count": 3})) as url:
        suites = tmp_path / "ok"
        suites.mkdir()
        (suites / "api.yaml").write_text(SUITE)
        yield {"GREENLIGHT_SUITES_DIR": str(suites), "GREENLIGHT_TARGET_URL": url}


def test_a_succeeded_summary_stays_at_info(
    passing: dict[str, str], codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    result, lines = run_hook(callback, passing, ())
    assert result["verdict"] == "Succeeded"
    assert lines[-1]["level"] == "INFO"
    assert "failures" not in lines[-1]


class _Unreachable:
    """An S3 client whose every call fails, or hangs (a black-holed endpoint)."""

    def __init__(self, hang: float = 0.0) -> None:
        self.hang = hang
        self.calls: list[float] = []

    def put_object(self, **kwargs: Any) -> None:
        self.calls.append(time.monotonic())
        if self.hang:
            time.sleep(self.hang)
        raise ConnectionError("s3 is not reachable")


class _RecordingCallback(CodeDeployCallback):
    def __init__(self, client: Any) -> None:
        super().__init__(client, sleep=lambda s: None)
        self.reported_at: float | None = None

    def report(self, *args: Any, **kwargs: Any) -> Any:
        outcome = super().report(*args, **kwargs)
        self.reported_at = time.monotonic()
        return outcome


@pytest.mark.timing
@pytest.mark.parametrize("hang", [0.0, 30.0], ids=["fails", "hangs"])
def test_an_upload_that_fails_or_hangs_changes_nothing_and_comes_after_the_report(
    hang: float, env: dict[str, str], codedeploy: tuple[Any, Stubber]
) -> None:
    client, stubber = codedeploy
    expect_report(stubber, "Failed")
    callback = _RecordingCallback(client)
    s3 = _Unreachable(hang)
    started = time.monotonic()
    result, lines = run_hook(callback, env, (EvidenceBundle(s3),), seconds=6)
    took = time.monotonic() - started

    assert result["verdict"] == "Failed"
    assert result["report"] == "reported"
    assert result["evidence"] is None
    assert callback.reported_at is not None
    assert s3.calls
    assert s3.calls[0] > callback.reported_at
    assert took < 6  # within the function's own time, even when the upload hangs
    assert any("EvidenceBundle" in line["message"] for line in lines if line["level"] == "ERROR")


def emitted_metrics(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, env: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A failing run's one EMF line on stdout, and its CloudWatch directive."""
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    out = io.StringIO()
    with redirect_stdout(out):
        run_hook(callback, {**env, "GREENLIGHT_EVIDENCE_BUCKET": ""}, (MetricsReporter(),))
    (emf,) = [json.loads(line) for line in out.getvalue().splitlines() if '"_aws"' in line]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    return emf, directive


def test_metrics_are_one_emf_line_with_both_dimension_sets(
    env: dict[str, str], codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    emf, directive = emitted_metrics(codedeploy, callback, env)
    assert directive["Namespace"] == "Greenlight"
    assert sorted(map(sorted, directive["Dimensions"])) == [
        ["application", "deployment_group", "lifecycle_event", "service"],
        ["service"],
    ]
    assert (emf["application"], emf["deployment_group"]) == ("shop", "shop-prod")
    assert emf["lifecycle_event"] == "AfterAllowTestTraffic"
    assert emf["Failed"] == [1.0]
    assert emf["Succeeded"] == [0.0]
    assert emf["FailedOrUnreportedHooks"] == [1.0]
    assert emf["Unreported"] == [0.0]
    assert emf["ChecksPassed"] == [2.0]
    assert emf["ChecksFailed"] == [1.0]
    assert emf["ChecksTimedOut"] == [0.0]
    assert 0 < emf["TimeToReport"][0] <= emf["Duration"][0]
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units["Duration"] == units["TimeToReport"] == "Seconds"
    assert units["Failed"] == "Count"


@pytest.fixture
def inbox(aws: None) -> Iterator[tuple[str, Any, str]]:
    """A topic with an SQS subscriber (raw delivery off: the SNS envelope is kept)."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="greenlight")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["QueueArn"])
    return topic, sqs, queue


def _received(sqs: Any, queue: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def test_a_failed_verdict_is_notified_once_with_reason_failures_and_evidence(
    inbox: tuple[str, Any, str],
    env: dict[str, str],
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
) -> None:
    topic, sqs, queue = inbox
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    reporters = (EvidenceBundle(boto3.client("s3")), Notifier(boto3.client("sns")))
    run_hook(callback, {**env, "GREENLIGHT_NOTIFY_TOPIC": topic}, reporters)

    (envelope,) = _received(sqs, queue)
    assert envelope["Subject"].startswith("Greenlight Failed: AfterAllowTestTraffic d-")
    document = json.loads(envelope["Message"])  # the sqs protocol's JSON document
    assert document["verdict"] == "Failed"
    assert document["evidence"] == f"s3://{BUCKET}/{prefix()}"
    assert document["failures"][0]["check"] == "api / orders"
    assert SECRET not in envelope["Message"]
    attributes = envelope["MessageAttributes"]
    assert attributes["verdict"]["Value"] == "Failed"
    assert attributes["deployment_group"]["Value"] == "shop-prod"


@pytest.mark.parametrize(("notify_on", "expected"), [("FAILED", 0), ("ALL", 1)])
def test_a_succeeded_verdict_is_notified_only_when_asked(
    notify_on: str,
    expected: int,
    inbox: tuple[str, Any, str],
    passing: dict[str, str],
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
) -> None:
    topic, sqs, queue = inbox
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    env = {**passing, "GREENLIGHT_NOTIFY_TOPIC": topic, "GREENLIGHT_NOTIFY_ON": notify_on}
    run_hook(callback, env, (Notifier(boto3.client("sns")),))
    assert len(_received(sqs, queue)) == expected


def test_a_bad_notification_setting_fails_closed_naming_it(
    env: dict[str, str], codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    result, _ = run_hook(callback, {**env, "GREENLIGHT_NOTIFY_ON": "sometimes"}, ())
    assert result["configuration_error"] is True
    assert "GREENLIGHT_NOTIFY_ON='SOMETIMES' must be one of FAILED, ALL" in result["reason"]


def test_greenlight_report_prints_the_run_view_from_the_bundle(
    aws: None,
    env: dict[str, str],
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hooks.cli.main import main

    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    run_hook(callback, env, (EvidenceBundle(boto3.client("s3")),))
    capsys.readouterr()

    pages = tmp_path / "pages"
    package = logging.getLogger("hooks")
    saved = package.handlers[:], package.level
    powertools = get_logger().registered_handler
    stream = getattr(powertools, "stream", None)
    filters = powertools.filters[:]
    try:
        code = main(
            [
                "report",
                EVENT["DeploymentId"],
                "--bucket",
                BUCKET,
                "--application",
                "shop",
                "--deployment-group",
                "shop-prod",
                "--html",
                str(pages),
            ]
        )
    finally:  # the command line set its own log handler: the next tests log as the hook
        package.handlers, _ = saved
        package.setLevel(saved[1])
        if isinstance(powertools, logging.StreamHandler):
            powertools.setStream(stream)
        powertools.filters = filters
    out = capsys.readouterr().out
    assert code == 1
    assert f"AfterAllowTestTraffic of {EVENT['DeploymentId']} (shop/shop-prod)" in out
    assert "FAIL    orders" in out
    assert "- status: expected to be 200, got 500" in out
    assert "/orders -> HTTP 500" in out
    assert "Failed: suites failed: api" in out
    (page,) = pages.glob("*.html")
    assert "api / orders" in page.read_text()


def test_greenlight_report_finds_the_application_with_get_deployment(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from hooks.cli.report import deployment_names, fetch

    client = boto3.client("codedeploy", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_response(
            "get_deployment",
            {"deploymentInfo": {"applicationName": "shop", "deploymentGroupName": "shop-prod"}},
            {"deploymentId": "d-123456789"},
        )
        assert deployment_names("d-123456789", None, None, client) == ("shop", "shop-prod")
    from hooks.core.exceptions import ConfigError

    with pytest.raises(ConfigError, match=r"no evidence for d-123456789 in s3://.*/shop/shop-prod"):
        fetch(boto3.client("s3"), BUCKET, "shop", "shop-prod", "d-123456789")


@pytest.mark.timing
def test_the_reporters_run_one_at_a_time_after_the_report(
    env: dict[str, str], codedeploy: tuple[Any, Stubber]
) -> None:
    """Order matters: the bundle first, so the metrics and the message can say where it is."""
    client, stubber = codedeploy
    expect_report(stubber, "Failed")
    callback = _RecordingCallback(client)
    seen: list[tuple[str, float, str | None]] = []
    lock = threading.Lock()

    class Probe:
        def __init__(self, name: str) -> None:
            self.name = name

        def publish(self, summary: Any) -> None:
            with lock:
                seen.append((self.name, time.monotonic(), summary.evidence))
            if self.name == "first":
                summary.evidence = "s3://b/p/"

    run_hook(callback, {**env, "GREENLIGHT_EVIDENCE_BUCKET": ""}, (Probe("first"), Probe("second")))
    assert [name for name, _, _ in seen] == ["first", "second"]
    assert callback.reported_at is not None
    assert seen[0][1] > callback.reported_at
    assert seen[1][2] == "s3://b/p/"


def test_the_templates_alarm_watches_a_metric_the_hooks_emit(
    env: dict[str, str], codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    """The run's EMF line, published as CloudWatch extracts it (moto), gives the template's
    alarm a datapoint at its threshold: same namespace, metric name and dimensions."""
    from datetime import UTC, datetime, timedelta

    from hooks.cli.template import load_template
    from tests.helpers import ROOT

    emf, directive = emitted_metrics(codedeploy, callback, env)
    alarm = load_template(ROOT / "template.yaml")["Resources"]["FailureAlarmResource"]
    props = alarm["Properties"]
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch")
        for dimensions in directive["Dimensions"]:  # what CloudWatch makes of the line
            cloudwatch.put_metric_data(
                Namespace=directive["Namespace"],
                MetricData=[
                    {
                        "MetricName": metric["Name"],
                        "Dimensions": [{"Name": d, "Value": emf[d]} for d in dimensions],
                        "Value": emf[metric["Name"]][0],
                        "Unit": metric["Unit"],
                    }
                    for metric in directive["Metrics"]
                ],
            )
        keys = ("Namespace", "MetricName", "Dimensions", "Statistic", "Period")
        cloudwatch.put_metric_alarm(
            AlarmName="greenlight-failed",
            **{key: props[key] for key in keys},
            EvaluationPeriods=props["EvaluationPeriods"],
            Threshold=props["Threshold"],
            ComparisonOperator=props["ComparisonOperator"],
        )
        now = datetime.now(UTC)
        stats = cloudwatch.get_metric_statistics(
            Namespace=props["Namespace"],
            MetricName=props["MetricName"],
            Dimensions=props["Dimensions"],
            StartTime=now - timedelta(minutes=5),
            EndTime=now + timedelta(minutes=5),
            Period=props["Period"],
            Statistics=[props["Statistic"]],
        )
    assert sum(p["Sum"] for p in stats["Datapoints"]) >= props["Threshold"]
