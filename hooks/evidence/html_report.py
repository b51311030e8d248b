"""The HTML report: one self-contained page an operator can open from the evidence bundle.

Rendered from the JSON report (``report_schema.json``), so ``greenlight run --html``, the
bundle's ``report.html`` and ``greenlight report --open`` show the same page. The verdict
and its reason come first, then every failure with the mismatches and the values seen, the
request and an excerpt of the response; then every suite and check, then the plan with the
source of each value. No script, no external resource: it reads the same in a browser with
JavaScript off, from a file, from S3, or printed. Everything shown is escaped, and comes
from a report that was redacted before it was written.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["SHOWN_FAILURES", "render"]

#: Failures shown in full at the top of the page; the rest are in the suites below.
SHOWN_FAILURES = 200

_STYLE = """
:root { color-scheme: light dark; --ok: #116329; --bad: #b3261e; --muted: #5f6368; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
  max-width: 72rem; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.5rem; margin: .2rem 0 .4rem; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .5rem; border-bottom: 1px solid #8884; }
.verdict { display: inline-block; padding: .15rem .6rem; border-radius: .3rem; color: #fff;
  font-weight: 700; }
.Succeeded { background: var(--ok); } .Failed { background: var(--bad); }
.InProgress { background: #7a5c00; }
.reason { font-size: 1.05rem; margin: .3rem 0 .6rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem;
  margin: .4rem 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.failure { border-left: 4px solid var(--bad); padding: .3rem .8rem; margin: .6rem 0;
  background: #b3261e0d; }
.failure h3 { font-size: 1rem; margin: 0; overflow-wrap: anywhere; }
.status { font-weight: 700; font-family: ui-monospace, monospace; font-size: .85rem; }
.passed { color: var(--ok); } .failed, .error, .timed_out { color: var(--bad); }
.skipped, .muted { color: var(--muted); }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #8881; padding: .4rem .6rem;
  margin: .3rem 0; font-size: .85rem; max-height: 18rem; overflow: auto; }
ul.mismatches { margin: .3rem 0; padding-left: 1.2rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid #8883;
  vertical-align: top; overflow-wrap: anywhere; }
details { margin: .3rem 0; } summary { cursor: pointer; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _status(status: str) -> str:
    words = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "timed_out": "TIMEOUT"}
    return f'<span class="status {_e(status)}">{_e(words.get(status, status.upper()))}</span>'


def _facts(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in pairs if v not in (None, "", []))
    return f'<dl class="facts">{rows}</dl>'


def _evidence(evidence: Mapping[str, Any] | None) -> str:
    if not evidence or not evidence.get("request"):
        return ""
    seen = evidence.get("status")
    answer = f"HTTP {seen}" if seen is not None else "no response"
    attempts = evidence.get("attempts") or 1
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    out = f"<p><code>{_e(evidence['request'])}</code> → {_e(answer)}{_e(tries)}</p>"
    if evidence.get("body"):
        out += f"<pre>{_e(evidence['body'])}</pre>"
    return out


def _failure(suite: Mapping[str, Any], check: Mapping[str, Any]) -> str:
    where = f' <span class="muted">{_e(check["location"])}</span>' if check.get("location") else ""
    policy = " (report only, not blocking)" if suite["policy"].get("report_only") else ""
    mismatches = check.get("failures") or ([check["message"]] if check.get("message") else [])
    items = "".join(f"<li><pre>{_e(m)}</pre></li>" for m in mismatches)
    return (
        f'<div class="failure"><h3>{_status(check["status"])} {_e(suite["name"])} / '
        f"{_e(check['name'])}{_e(policy)}{where}</h3>"
        f'<ul class="mismatches">{items}</ul>{_evidence(check.get("evidence"))}</div>'
    )


#: What became of the report, in words (a local run's was recorded, never sent).
_REPORTED = {
    "reported": "reported",
    "recorded": "not reported: a local run (recorded, never sent)",
    "already_completed": "not reported: CodeDeploy already had a status",
    "failed": "the report failed",
}


def _failures(report: Mapping[str, Any]) -> str:
    parts: list[str] = []
    total = 0
    for suite in report.get("suites_detail") or ():
        if suite.get("error"):
            total += 1
            if len(parts) < SHOWN_FAILURES:
                parts.append(
                    f'<div class="failure"><h3>{_status("error")} {_e(suite["name"])}: the '
                    f"suite did not run</h3><pre>{_e(suite['error'])}</pre></div>"
                )
        for check in suite["checks"]:
            if check["status"] in ("failed", "error", "timed_out"):
                total += 1
                if len(parts) < SHOWN_FAILURES:
                    parts.append(_failure(suite, check))
    if not parts:
        if report["verdict"] == "Failed":
            return (
                "<h2>Failures</h2><p>No check failed: the reason above is why the gate failed.</p>"
            )
        return ""
    more = (
        f"<p>… and {total - len(parts)} more, listed with their suites below.</p>"
        if total > len(parts)
        else ""
    )
    return f"<h2>Failures ({total})</h2>{''.join(parts)}{more}"


def _suites(report: Mapping[str, Any]) -> str:
    blocks: list[str] = []
    for suite in report.get("suites_detail") or ():
        checks = suite["checks"]
        rows = "".join(
            f"<tr><td>{_status(c['status'])}</td><td>{_e(c['name'])}</td>"
            f"<td>{c['duration'] * 1000:.0f} ms</td><td>{_e(c.get('message'))}</td></tr>"
            for c in checks
        )
        state = "passed" if suite["passed"] else "failed"
        policy = suite.get("policy") or {}
        notes = [f"{len(checks)} checks", f"{suite['duration']:.2f}s", suite.get("kind")]
        if policy.get("report_only"):
            notes.append("report only")
        if policy.get("failure_limit"):
            notes.append(f"failure limit {policy['failure_limit']}")
        table = (
            "<table><thead><tr><th>Status</th><th>Check</th><th>Time</th><th>Message</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>"
            if rows
            else f"<pre>{_e(suite.get('error') or 'no checks')}</pre>"
        )
        blocks.append(
            f"<details{' open' if state == 'failed' else ''}><summary>{_status(state)} "
            f'<strong>{_e(suite["name"])}</strong> <span class="muted">'
            f"{_e(', '.join(str(n) for n in notes if n))}"
            f"{' · ' + _e(suite['source']) if suite.get('source') else ''}</span></summary>"
            f"{table}</details>"
        )
    return f"<h2>Suites</h2>{''.join(blocks)}" if blocks else ""


def _plan(report: Mapping[str, Any]) -> str:
    plan = report.get("plan")
    if not plan:
        return ""
    sources = plan.get("sources") or {}
    rows = "".join(
        f"<tr><td>{_e(key)}</td><td>{_e(value)}</td>"
        f'<td class="muted">{_e(sources.get(key) or sources.get(_source_key(key)) or "")}'
        "</td></tr>"
        for key, value in plan.items()
        if key != "sources"
    )
    return (
        "<h2>Plan</h2><table><thead><tr><th>Setting</th><th>Value</th><th>Source</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _source_key(key: str) -> str:
    return {"tls_verify": "verify"}.get(key, key)


def render(report: Mapping[str, Any]) -> str:
    """The page for one run's JSON report."""
    verdict = report["verdict"]
    counts = report.get("counts") or {}
    title = f"{verdict}: {report['lifecycle_event']} of {report['deployment_id']}"
    facts = _facts(
        [
            ("Lifecycle event", report["lifecycle_event"]),
            ("Deployment", report["deployment_id"]),
            ("Application", report.get("application")),
            ("Deployment group", report.get("deployment_group")),
            ("Target", report.get("target")),
            (
                "Checks",
                ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n)
                or "none ran",
            ),
            (
                "Reported to CodeDeploy",
                _REPORTED.get(str(report.get("report")), report.get("report")),
            ),
            ("Took", f"{report.get('duration', 0):.2f}s"),
            ("Configuration error", "yes" if report.get("configuration_error") else None),
        ]
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Greenlight {_e(title)}</title><style>{_STYLE}</style></head><body>"
        f'<header><h1><span class="verdict {_e(verdict)}" id="verdict">{_e(verdict)}</span> '
        f"Greenlight {_e(report['lifecycle_event'])}</h1>"
        f'<p class="reason" id="reason">{_e(report["reason"])}</p>{facts}</header>'
        f'<main><section id="failures">{_failures(report)}</section>'
        f'<section id="suites">{_suites(report)}</section>'
        f'<section id="plan">{_plan(report)}</section></main></body></html>\n'
    )
