"""Metrics to alarm on, in CloudWatch's embedded metric format (Powertools ``Metrics``).

One EMF line per run on stdout, which CloudWatch turns into metrics with no API call. Each
metric has two dimension sets: ``service, application, deployment_group, lifecycle_event``
(which gate, for dashboards) and ``service`` alone (every gate at once, for the template's
alarm on ``FailedOrUnreportedHooks``).

=========================  =======  ==================================================
``Succeeded``, ``Failed``  Count    the verdict (1 for the one reported, else 0)
``Unreported``             Count    1 when the report call failed: CodeDeploy waits
``FailedOrUnreportedHooks`` Count   what the alarm watches
``Crashed``                Count    1 from the fail-safe: the hook was killed
``InProgress``             Count    1 for an ECS call answered IN_PROGRESS (no verdict yet)
``Checks<Status>``         Count    checks by status: Passed, Failed, Error, TimedOut, Skipped
``Duration``               Seconds  the whole run
``TimeToReport``           Seconds  from the invocation's start to CodeDeploy's answer
=========================  =======  ==================================================
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from hooks.aws.codedeploy import ReportOutcome, ReportState
from hooks.core.results import Status
from hooks.core.verdict import VerdictStatus

if TYPE_CHECKING:
    from hooks.gate.summary import Crash, RunSummary

__all__ = [
    "DEFAULT_NAMESPACE",
    "UNKNOWN",
    "MetricsReporter",
    "check_metric",
    "emit_crash",
    "emit_run",
]

DEFAULT_NAMESPACE = "Greenlight"
UNKNOWN = "unknown"


def _metrics(**dimensions: str | None) -> Any:
    from aws_lambda_powertools import Metrics

    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or "greenlight"
    metrics = Metrics(
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE,
        service=service,
    )
    for name, value in dimensions.items():
        metrics.add_dimension(name, value or UNKNOWN)
    metrics.add_dimensions(service=service)
    return metrics


def check_metric(status: Status) -> str:
    """``ChecksPassed``, ``ChecksTimedOut``…: the metric counting checks of ``status``."""
    return "Checks" + "".join(word.title() for word in status.value.split("_"))


class MetricsReporter:
    """Writes a run's metrics (a hook reporter: after the report, never changing it)."""

    def publish(self, summary: RunSummary) -> None:
        emit_run(summary)


def emit_run(summary: RunSummary) -> None:
    metrics = _metrics(
        application=summary.application,
        deployment_group=summary.deployment_group,
        lifecycle_event=summary.invocation.lifecycle_event.value,
    )
    failed = summary.verdict.status is VerdictStatus.FAILED
    going_on = summary.verdict.status is VerdictStatus.IN_PROGRESS
    unreported = summary.report is not None and summary.report.state is ReportState.FAILED
    metrics.add_metric(name="Succeeded", unit="Count", value=int(summary.verdict.succeeded))
    metrics.add_metric(name="Failed", unit="Count", value=1 if failed else 0)
    metrics.add_metric(name="Unreported", unit="Count", value=1 if unreported else 0)
    metrics.add_metric(name="InProgress", unit="Count", value=int(going_on))
    metrics.add_metric(
        name="FailedOrUnreportedHooks", unit="Count", value=1 if failed or unreported else 0
    )
    suites = summary.run.suites if summary.run is not None else ()
    for status in Status:
        count = sum(suite.counts[status.value] for suite in suites)
        metrics.add_metric(name=check_metric(status), unit="Count", value=count)
    metrics.add_metric(name="Duration", unit="Seconds", value=round(summary.duration, 3))
    if summary.reported_after is not None:
        metrics.add_metric(
            name="TimeToReport", unit="Seconds", value=round(summary.reported_after, 3)
        )
    metrics.flush_metrics()


def emit_crash(crash: Crash, outcome: ReportOutcome) -> None:
    """The fail-safe's metrics: a killed hook, reported Failed (or not)."""
    event = crash.invocation.lifecycle_event.value if crash.invocation else None
    metrics = _metrics(lifecycle_event=event)
    reported = outcome.state is not ReportState.FAILED
    metrics.add_metric(name="Crashed", unit="Count", value=1)
    metrics.add_metric(name="Failed", unit="Count", value=1 if reported else 0)
    metrics.add_metric(name="Unreported", unit="Count", value=0 if reported else 1)
    metrics.add_metric(name="FailedOrUnreportedHooks", unit="Count", value=1)
    metrics.flush_metrics()
