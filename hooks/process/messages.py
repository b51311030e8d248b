"""The records a worker sends its supervisor: one JSON object per line, versioned.

Each record is ``{"v": 1, "type": ..., ...}``. The worker writes them to a pipe of its own
(never its stdout, where suites may print); the supervisor reads them as they come, so
either side can be tested alone with a list of records.

``prepared`` the catalog worker has loaded the suites (before its job), and how many of
            them need a worker of their own (a hint: the supervisor may prepare for them)
``suites``  every suite the worker will run or knows it cannot run, with the names of the
            checks known up front and whether the suite needs a worker of its own
``expect``  check names a suite learned while running (pytest, after collection)
``start``   a suite started
``check``   one check result
``finish``  a suite returned (``error`` when it raised or did not finish its work)
``error``   the worker cannot go on (``config``: a configuration error; else a crash)
``done``    the worker finished everything it was given
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hooks.core.results import CheckResult, Evidence, Policy, Status, SuiteResult, cut

VERSION = 1
#: A record longer than this is cut off and treated as a protocol error.
MAX_RECORD_BYTES = 4 * 1024 * 1024


class ProtocolError(ValueError):
    """A line from a worker that is not a record of this protocol."""


def encode(record_type: str, **fields: Any) -> bytes:
    data = {"v": VERSION, "type": record_type, **fields}
    return (json.dumps(data, default=str) + "\n").encode()


def decode(line: bytes) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {line[:80]!r}") from exc
    if not isinstance(record, dict) or record.get("v") != VERSION or "type" not in record:
        raise ProtocolError(f"not a version {VERSION} record: {line[:80]!r}")
    return record


def check_to_record(result: CheckResult) -> dict[str, Any]:
    return result.to_dict()


#: What the supervisor keeps of one check: its texts are cut, its failures counted.
MAX_TEXT = 4000
MAX_FAILURES = 20


def check_from_record(data: Mapping[str, Any]) -> CheckResult:
    evidence = data.get("evidence")
    failures = [cut(str(f), MAX_TEXT) for f in list(data.get("failures") or ())[:MAX_FAILURES]]
    extra = len(data.get("failures") or ()) - MAX_FAILURES
    if extra > 0:
        failures.append(f"... and {extra} more failures")
    return CheckResult(
        name=cut(str(data["name"]), 500),
        status=Status(data["status"]),
        duration=float(data.get("duration") or 0.0),
        message=cut(str(data.get("message") or ""), MAX_TEXT),
        failures=tuple(failures),
        evidence=Evidence(**evidence) if isinstance(evidence, dict) else None,
        location=cut(str(data["location"]), 500) if data.get("location") else None,
        data=data["data"] if isinstance(data.get("data"), dict) else None,
    )


def suite_from_record(data: Mapping[str, Any]) -> SuiteResult:
    """A suite's result as :meth:`SuiteResult.to_dict` wrote it (a shard's answer)."""
    return SuiteResult(
        name=str(data["name"]),
        kind=str(data.get("kind") or "unknown"),
        checks=tuple(check_from_record(c) for c in data.get("checks") or ()),
        error=str(data["error"]) if data.get("error") is not None else None,
        policy=policy_from_record(data.get("policy")),
        duration=float(data.get("duration") or 0.0),
        source=str(data["source"]) if data.get("source") else None,
        loaded=bool(data.get("loaded", True)),
    )


def policy_from_record(data: Mapping[str, Any] | None) -> Policy:
    data = data or {}
    return Policy(
        report_only=bool(data.get("report_only", False)),
        failure_limit=int(data.get("failure_limit", 0)),
    )
