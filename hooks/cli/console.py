"""Terminal output: progress as checks finish, failures with actual values, a summary.

Colour and symbols only on a terminal (and not with ``NO_COLOR``); otherwise plain,
parseable words: ``PASS``, ``FAIL``, ``ERROR``, ``TIMEOUT``, ``SKIP``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from hooks.core.results import CheckResult, Status
from hooks.evidence.reports import summary_to_json

if TYPE_CHECKING:
    from hooks.gate.summary import RunSummary

__all__ = ["Console", "indent"]

_SYMBOLS = {
    Status.PASSED: ("✓", "32"),
    Status.FAILED: ("✗", "31"),
    Status.ERROR: ("!", "31"),
    Status.TIMED_OUT: ("⏱", "33"),
    Status.SKIPPED: ("-", "90"),
}
_WORDS = {
    Status.PASSED: "PASS",
    Status.FAILED: "FAIL",
    Status.ERROR: "ERROR",
    Status.TIMED_OUT: "TIMEOUT",
    Status.SKIPPED: "SKIP",
}


def indent(text: str, width: int) -> str:
    """``text`` with every line after the first indented by ``width`` spaces."""
    return text.replace("\n", "\n" + " " * width)


class Console:
    def __init__(self, stream: IO[str] | None = None, color: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        if color is None:
            color = (
                self.stream.isatty()
                and "NO_COLOR" not in os.environ
                and os.environ.get("TERM") != "dumb"
            )
        self.color = color
        self._lock = threading.Lock()
        #: Checks done while a live line shows (None: no live line).
        self._live: int | None = None

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def bold(self, text: str) -> str:
        return self.paint(text, "1")

    def mark(self, status: Status) -> str:
        if self.color:
            symbol, code = _SYMBOLS[status]
            return self.paint(symbol, code)
        return f"{_WORDS[status]:<7}"

    def line(self, text: str = "") -> None:
        with self._lock:
            clear = "\r\033[2K" if self._live is not None else ""
            self.stream.write(clear + text + "\n")
            self.stream.flush()

    @contextmanager
    def live(self, what: str) -> Iterator[None]:
        """On a terminal, a status line under the progress: what runs, checks done, time."""
        if not self.color:
            yield
            return
        stop = threading.Event()
        started = time.monotonic()
        self._live = 0

        def tick() -> None:
            while not stop.wait(0.2):
                with self._lock:
                    done = self._live or 0
                    self.stream.write(
                        f"\r\033[2K  {self.paint('…', '90')} {what}: "
                        f"{done} checks done, {time.monotonic() - started:.1f}s"
                    )
                    self.stream.flush()

        ticker = threading.Thread(target=tick, name="greenlight-live", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join(1)
            with self._lock:
                self.stream.write("\r\033[2K")
                self.stream.flush()
            self._live = None

    def on_check(self, suite: Any, result: CheckResult) -> None:
        """Progress: one line per check as it finishes."""
        if self._live is not None:
            self._live += 1
        took = f"{result.duration * 1000:.0f} ms"
        text = f"  {self.mark(result.status)} {suite.name} / {result.name} ({took})"
        if result.status.is_failure and result.message:
            message = indent(result.message, 6)
            text += f"\n      {self.paint(message, '31') if self.color else message}"
        self.line(text)

    def verdict(self, status: str) -> str:
        if not self.color:
            return status
        return self.paint(status, "1;32" if status == "Succeeded" else "1;31")

    def failures(self, summary: RunSummary) -> None:
        """Every failing assertion of every failed check, with the value seen."""

        self.failures_of(summary_to_json(summary))

    def failures_of(self, report: dict[str, Any]) -> None:
        """The same, from a JSON report (``greenlight report`` reads the evidence bundle's)."""
        for suite in report.get("suites_detail") or ():
            failed = [c for c in suite["checks"] if Status(c["status"]).is_failure]
            if not failed and suite.get("error") is None:
                continue
            policy = " (report only)" if suite["policy"].get("report_only") else ""
            source = f" [{suite['source']}]" if suite.get("source") else ""
            self.line(self.bold(f"{suite['name']}{policy}") + source)
            if suite.get("error") is not None:
                self.line(f"  {self.mark(Status.ERROR)} {suite['error']}")
            for check in failed:
                where = f" ({check['location']})" if check.get("location") else ""
                self.line(f"  {self.mark(Status(check['status']))} {check['name']}{where}")
                for failure in check.get("failures") or (check.get("message", ""),):
                    self.line(indent(f"      - {failure}", 8))
                evidence = check.get("evidence") or {}
                if evidence.get("request"):
                    seen = f" -> HTTP {evidence['status']}" if evidence.get("status") else ""
                    self.line(f"      {evidence['request']}{seen}")
                    if evidence.get("body"):
                        self.line(indent(f"      body: {evidence['body']}", 12))

    def summary(self, summary: RunSummary | dict[str, Any]) -> None:
        """The verdict, its reason (which carries the counts) and the time it took."""
        data = summary if isinstance(summary, dict) else summary.to_dict()
        self.line(f"{self.verdict(data['verdict'])}: {data['reason']} [{data['duration']:.2f}s]")
