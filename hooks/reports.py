"""File reports of a run: JSON (the results as data) and JUnit XML (for CI systems)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from hooks.results import Status

if TYPE_CHECKING:
    from hooks.hook import RunSummary


#: The JSON report's schema (documented in the README).
SCHEMA_PATH = Path(__file__).with_name("report_schema.json")
REPORT_VERSION = 1


def summary_to_json(summary: RunSummary) -> dict[str, Any]:
    """The run as data; its shape is ``report_schema.json``. Secrets are redacted."""
    from hooks import redact

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


class JUnitReport:
    """Writes JUnit XML: a testsuite per suite, a testcase per check.

    A ``report_only`` suite's failures are ``<skipped>`` elements carrying the failure
    text (and the suite a ``greenlight.report_only`` property), so CI does not turn red
    for a gate that succeeded. Each testcase has its duration and, when known, ``file``
    and ``line``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def publish(self, summary: RunSummary) -> None:
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(root).write(self.path, encoding="utf-8", xml_declaration=True)
