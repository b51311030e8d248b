"""Reports of a run: JSON (the results as data), JUnit XML (for CI systems), the HTML page,
as files on a laptop or as the evidence bundle a hook writes to S3."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from hooks.core import redact
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import Status
from hooks.evidence.html_report import render

if TYPE_CHECKING:
    from hooks.gate.summary import RunSummary

__all__ = [
    "BUNDLE_FILES",
    "REPORT_VERSION",
    "SCHEMA_PATH",
    "CaptureReport",
    "EvidenceBundle",
    "HtmlReport",
    "JUnitReport",
    "JsonReport",
    "bundle_files",
    "bundle_prefix",
    "bundle_prefix_of",
    "junit_xml",
    "summary_to_json",
]


log = logging.getLogger(__name__)

#: The JSON report's schema (documented in the README).
SCHEMA_PATH = Path(__file__).with_name("report_schema.json")
REPORT_VERSION = 1
#: The files of an evidence bundle, under its prefix.
BUNDLE_FILES = {
    "result.json": "application/json",
    "junit.xml": "application/xml",
    "report.html": "text/html; charset=utf-8",
}


def summary_to_json(summary: RunSummary) -> dict[str, Any]:
    """The run as data; its shape is ``report_schema.json``. Secrets are redacted."""

    data = {"report_version": REPORT_VERSION, **summary.to_dict()}
    data["suites_detail"] = summary.run.to_dict()["suites"] if summary.run is not None else []
    data["plan"] = summary.plan.describe() if summary.plan is not None else None
    redacted: dict[str, Any] = redact.redact_data(data)
    return redacted


class CaptureReport:
    """Keeps the last run's summary, for output after the handler returns."""

    def __init__(self) -> None:
        self.summary: RunSummary | None = None

    def publish(self, summary: RunSummary) -> None:
        self.summary = summary


class JsonReport:
    """Writes the whole run as JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def publish(self, summary: RunSummary) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(summary_to_json(summary), indent=2) + "\n")


class HtmlReport:
    """Writes the HTML report (:mod:`hooks.evidence.html_report`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def publish(self, summary: RunSummary) -> None:

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(render(summary_to_json(summary)), encoding="utf-8")


class JUnitReport:
    """Writes JUnit XML (:func:`junit_xml`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def publish(self, summary: RunSummary) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(junit_xml(summary))


def junit_xml(summary: RunSummary) -> bytes:
    """JUnit XML: a testsuite per suite, a testcase per check.

    A ``report_only`` suite's failures are ``<skipped>`` elements carrying the failure
    text (and the suite a ``greenlight.report_only`` property), so CI does not turn red
    for a gate that succeeded. Each testcase has its duration and, when known, ``file``
    and ``line``. Secrets are redacted.
    """
    # Long: the XML document, top to bottom.

    root = ET.Element("testsuites", name=f"greenlight {summary.invocation.lifecycle_event}")
    suites = summary.run.suites if summary.run is not None else ()
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        element = ET.SubElement(root, "testsuite", name=suite.name)
        counts = {"tests": len(suite.checks), "failures": 0, "errors": 0, "skipped": 0}
        report_only = suite.policy.report_only
        properties = ET.SubElement(element, "properties")
        for name, text in (
            ("greenlight.kind", suite.kind),
            ("greenlight.source", suite.source or ""),
            ("greenlight.report_only", str(report_only).lower()),
        ):
            ET.SubElement(properties, "property", name=name, value=text)
        if suite.error is not None:
            case = ET.SubElement(element, "testcase", name="(load)", classname=suite.name)
            ET.SubElement(case, "error", message=suite.error).text = suite.error
            counts["tests"] += 1
            counts["errors"] += 1
        for check in suite.checks:
            case = ET.SubElement(
                element,
                "testcase",
                name=check.name,
                classname=suite.name,
                time=f"{check.duration:.3f}",
            )
            if check.location:
                file, _, line = check.location.rpartition(":")
                case.set("file", file if line.isdigit() else check.location)
                if line.isdigit():
                    case.set("line", line)
            detail = "\n".join(check.failures) or check.message
            if check.status.is_failure and report_only:
                message = f"report-only, not blocking: {check.message}"
                ET.SubElement(case, "skipped", message=message).text = detail
                counts["skipped"] += 1
            elif check.status in (Status.FAILED, Status.TIMED_OUT):
                ET.SubElement(case, "failure", message=check.message).text = detail
                counts["failures"] += 1
            elif check.status is Status.ERROR:
                ET.SubElement(case, "error", message=check.message).text = detail
                counts["errors"] += 1
            elif check.status is Status.SKIPPED:
                ET.SubElement(case, "skipped", message=check.message)
                counts["skipped"] += 1
            if check.evidence is not None and check.evidence.request:
                seen = (
                    f" -> HTTP {check.evidence.status}"
                    if check.evidence.status is not None
                    else " -> no response"
                )
                ET.SubElement(case, "system-out").text = f"{check.evidence.request}{seen}"
        element.set("time", f"{suite.duration:.3f}")
        for key, value in counts.items():
            element.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    text = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + redact.redact(text)).encode()


def bundle_prefix(summary: RunSummary) -> str:
    """``<application>/<deployment group>/<deployment id>/<event>/``: one run's folder."""
    invocation = summary.invocation
    folder: str | LifecycleEvent = invocation.lifecycle_event
    if invocation.ecs is not None:
        # An ECS stage, and at a traffic step the production weight: each step its own.
        weight = invocation.ecs.traffic()["traffic.production_weight"]
        step = f"-{weight}" if invocation.ecs.stage.shifts_traffic and weight else ""
        folder = f"{invocation.ecs.stage.value}{step}"
    return bundle_prefix_of(
        summary.application, summary.deployment_group, invocation.deployment_id, folder
    )


def bundle_prefix_of(
    application: str | None,
    group: str | None,
    deployment_id: str,
    event: LifecycleEvent | str | None,
) -> str:
    """The folder of one run's bundle (or, without ``event``, of the deployment's)."""

    def part(value: str | None, unknown: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.@+=,-]", "_", value) if value else unknown

    parts = [
        part(application, "_unknown-application"),
        part(group, "_unknown-deployment-group"),
        part(deployment_id, "_unknown-deployment"),
    ]
    folder = event.value if isinstance(event, LifecycleEvent) else event
    return "/".join([*parts, *([folder] if folder else []), ""])


def bundle_files(summary: RunSummary) -> dict[str, bytes]:
    """The bundle's files: the JSON result, the JUnit XML and the HTML page."""

    data = summary_to_json(summary)
    return {
        "result.json": (json.dumps(data, indent=1) + "\n").encode(),
        "junit.xml": junit_xml(summary),
        "report.html": render(data).encode(),
    }


class EvidenceBundle:
    """Writes each run's bundle to S3 and records where on the summary (for the log line,
    the notification and the return value). Runs after the report, bounded by the hook."""

    def __init__(self, s3: Callable[[], Any] | Any, bucket: str | None = None) -> None:
        self._s3 = s3
        #: The bucket; None: the run's ``GREENLIGHT_EVIDENCE_BUCKET`` (none set: no bundle).
        self.bucket = bucket

    def publish(self, summary: RunSummary) -> None:
        bucket = self.bucket or (summary.settings.evidence_bucket if summary.settings else None)
        if not bucket:
            return
        s3 = self._s3() if callable(self._s3) else self._s3
        prefix = bundle_prefix(summary)
        for name, body in bundle_files(summary).items():
            s3.put_object(
                Bucket=bucket, Key=prefix + name, Body=body, ContentType=BUNDLE_FILES[name]
            )
        where = getattr(s3, "url", None)  # a folder on a laptop says where it is
        summary.evidence = where(prefix) if callable(where) else f"s3://{bucket}/{prefix}"
        log.info("evidence written to %s", summary.evidence)
