"""Notifications: a message per ``Failed`` verdict (or every verdict) on an SNS topic.

Teams subscribe email, chat integrations or their own handlers. The message is plain text
for email and chat, JSON for Lambda, SQS and HTTPS subscribers (SNS's per-protocol
``MessageStructure``), and carries message attributes (``verdict``, ``lifecycle_event``,
``application``, ``deployment_group``) for subscription filter policies. Everything in it
comes from the redacted summary.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hooks.aws.codedeploy import ReportOutcome
from hooks.core import redact
from hooks.core.verdict import VerdictStatus

if TYPE_CHECKING:
    from hooks.gate.summary import Crash, RunSummary

__all__ = ["LISTED_FAILURES", "NOTIFY_ON", "Notifier", "message_text", "notify_crash", "send"]

log = logging.getLogger(__name__)

NOTIFY_ON = ("FAILED", "ALL")
#: Failed checks listed in a message (the evidence bundle has them all).
LISTED_FAILURES = 20


class Notifier:
    """Publishes the verdict to ``summary.settings.notify_topic`` (a hook reporter)."""

    def __init__(self, sns: Callable[[], Any] | Any) -> None:
        self._sns = sns

    def publish(self, summary: RunSummary) -> None:

        settings = summary.settings
        if settings is None or not settings.notify_topic:
            return
        status = summary.verdict.status
        if status is VerdictStatus.IN_PROGRESS:
            return  # an ECS gate that goes on has no verdict yet
        if status is not VerdictStatus.FAILED and settings.notify_on != "ALL":
            return
        data = redact.redact_data(summary.to_dict())
        data["failures"] = redact.redact_data(summary.failure_details(LISTED_FAILURES))
        data["failures_not_listed"] = max(len(summary.verdict.failed) - len(data["failures"]), 0)
        sns = self._sns() if callable(self._sns) else self._sns
        send(sns, settings.notify_topic, data)
        log.info("notified %s of %s", settings.notify_topic, data["verdict"])


def message_text(data: dict[str, Any]) -> str:
    """The message for people: verdict, reason, where to look."""
    where = "/".join(
        part for part in (data.get("application"), data.get("deployment_group")) if part
    )
    lines = [
        f"Greenlight {data['verdict']} at {data['lifecycle_event']} of {data['deployment_id']}"
        + (f" ({where})" if where else ""),
        "",
        f"Reason: {data['reason']}",
    ]
    if data.get("target"):
        lines.append(f"Target: {data['target']}")
    for failure in data.get("failures") or ():
        lines.append(f"  - {failure['check']}: {failure['message']}")
        if failure.get("request"):
            lines.append(f"      {failure['request']}")
    if data.get("failures_not_listed"):
        lines.append(f"  … and {data['failures_not_listed']} more")
    if data.get("evidence"):
        lines += ["", f"Evidence: {data['evidence']}report.html"]
        lines.append(
            f"  greenlight report {data['deployment_id']} --event {data['lifecycle_event']}"
        )
    return "\n".join(lines)


def send(sns: Any, topic: str, data: dict[str, Any]) -> None:
    text = message_text(data)
    document = json.dumps(data, default=str)
    subject = f"Greenlight {data['verdict']}: {data['lifecycle_event']} {data['deployment_id']}"
    attributes = {
        key: {"DataType": "String", "StringValue": str(data[key])}
        for key in ("verdict", "lifecycle_event", "application", "deployment_group")
        if data.get(key)
    }
    sns.publish(
        TopicArn=topic,
        Subject=subject[:100],
        MessageStructure="json",
        Message=json.dumps(
            {"default": text, "email": text, "lambda": document, "sqs": document, "https": document}
        ),
        MessageAttributes=attributes,
    )


def notify_crash(crash: Crash, outcome: ReportOutcome) -> None:
    """The fail-safe's message: always sent (a killed hook is a Failed verdict)."""
    topic = os.environ.get("GREENLIGHT_NOTIFY_TOPIC")
    if not topic or crash.invocation is None:
        return
    import boto3

    data = {
        "verdict": "Failed",
        "reason": crash.reason,
        "lifecycle_event": crash.invocation.lifecycle_event.value,
        "deployment_id": crash.invocation.deployment_id,
        "report": outcome.state.value,
        "crashed": True,
    }
    send(boto3.client("sns"), topic, data)
