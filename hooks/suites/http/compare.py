"""Blue versus green: the same request to production and to the new version, compared.

A check with ``compare:`` sends its request to green (the test listener) and to blue (the
production listener) and fails on differences: the status, the headers it names, the JSON
body (or the text, when it is not JSON) and, optionally, the latency::

    compare:
      headers: [Content-Type]
      ignore: ["/meta/request_id", "items[*].updated_at"]   # JSON Pointer or a dotted path
      latency: 1.2        # green's median no slower than 1.2 x blue's (over `samples`)
      latency_slack: 10   # ...nor than blue's + 10 ms, whichever is more (default 10)
      samples: 5

Noise is learned as Diffy does: blue is asked twice, and the fields that differ between its
two answers (timestamps, request ids) are not compared — no ignore rule needed for them.
Only safe methods (GET, HEAD, OPTIONS) unless ``allow_unsafe: true``: the request reaches
production too. Each difference is one readable line: ``body /items/0/price: blue 10, green 12``.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_LATENCY_SLACK_MS",
    "LISTED",
    "SAFE_METHODS",
    "Answer",
    "Compare",
    "compare",
    "differences",
    "judge_latency",
    "pattern",
    "pointer",
]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Differences listed in a check's result (the count says how many more).
LISTED = 20
_MISSING = object()
DEFAULT_LATENCY_SLACK_MS = 10.0


@dataclass(frozen=True)
class Compare:
    status: bool = True
    headers: tuple[str, ...] = ()
    body: bool = True
    ignore: tuple[tuple[str, ...], ...] = ()
    learn_noise: bool = True
    latency: float | None = None
    #: Milliseconds green may be slower than blue whatever the ratio: below it, a ratio of
    #: medians of a few milliseconds is noise (a scheduler's tick, a collection).
    latency_slack: float = DEFAULT_LATENCY_SLACK_MS
    samples: int = 1
    allow_unsafe: bool = False

    @classmethod
    def parse(cls, spec: Mapping[str, Any], method: str) -> Compare:
        """From the check's ``compare`` mapping (validated by the schema); raises ValueError."""
        if method.upper() not in SAFE_METHODS and not spec.get("allow_unsafe", False):
            raise ValueError(
                f"compare sends the request to production too: {method} is not a safe method "
                f"(use GET, HEAD or OPTIONS, or say allow_unsafe: true)"
            )
        latency = spec.get("latency")
        return cls(
            status=bool(spec.get("status", True)),
            headers=tuple(spec.get("headers", ())),
            body=bool(spec.get("body", True)),
            ignore=tuple(pattern(rule) for rule in spec.get("ignore", ())),
            learn_noise=bool(spec.get("learn_noise", True)),
            latency=float(latency) if latency is not None else None,
            latency_slack=float(spec.get("latency_slack", DEFAULT_LATENCY_SLACK_MS)),
            samples=int(spec.get("samples", 3 if latency is not None else 1)),
            allow_unsafe=bool(spec.get("allow_unsafe", False)),
        )


def pattern(rule: str) -> tuple[str, ...]:
    """A path pattern's segments: ``/a/*/b`` (JSON Pointer, ``*`` for any) or ``a[*].b``."""
    if rule.startswith("/") or rule == "":
        return tuple(s.replace("~1", "/").replace("~0", "~") for s in rule.split("/")[1:])
    if not re.fullmatch(r"[A-Za-z_][\w-]*(\[(\*|\d+)\]|\.[A-Za-z_][\w-]*)*", rule):
        raise ValueError(
            f"ignore {rule!r}: use a JSON Pointer (/items/*/id) or a dotted path (items[*].id)"
        )
    return tuple(s for s in re.split(r"\.|\[|\]", rule) if s)


def _matches(path: tuple[str, ...], rules: tuple[tuple[str, ...], ...]) -> bool:
    """Whether ``path`` is (under) one of the rules."""
    for rule in rules:
        if len(path) >= len(rule) and all(r in ("*", p) for r, p in zip(rule, path, strict=False)):
            return True
    return False


def differences(
    blue: Any, green: Any, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """Every leaf where two JSON documents differ: (path, blue's value, green's value)."""
    if isinstance(blue, dict) and isinstance(green, dict):
        for key in sorted(set(blue) | set(green), key=str):
            yield from differences(
                blue.get(key, _MISSING), green.get(key, _MISSING), (*path, str(key))
            )
    elif isinstance(blue, list) and isinstance(green, list):
        for index in range(max(len(blue), len(green))):
            left = blue[index] if index < len(blue) else _MISSING
            right = green[index] if index < len(green) else _MISSING
            yield from differences(left, right, (*path, str(index)))
    elif blue != green or type(blue) is not type(green):
        yield path, blue, green


def pointer(path: tuple[str, ...]) -> str:
    return "/" + "/".join(s.replace("~", "~0").replace("/", "~1") for s in path) if path else "/"


def _shown(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Answer:
    """What one side answered."""

    status: int
    headers: Mapping[str, str]
    text: str
    millis: float

    def json(self) -> Any:
        return json.loads(self.text)


def compare(spec: Compare, ask: Callable[[bool], Answer]) -> tuple[list[str], str]:
    """Ask blue (``ask(True)``) and green (``ask(False)``) and list the differences, with a
    one-line summary of what was compared. ``ask`` raises to fail the check."""
    green = ask(False)
    blue = ask(True)
    failures: list[str] = []
    if spec.status and blue.status != green.status:
        failures.append(f"status: blue {blue.status}, green {green.status}")
    for name in spec.headers:
        left, right = blue.headers.get(name), green.headers.get(name)
        if left != right:
            failures.append(f"header {name}: blue {left!r}, green {right!r}")
    noise: set[tuple[str, ...]] = set()
    if spec.body:
        try:
            blue_body, green_body = blue.json(), green.json()
        except ValueError:
            if blue.text != green.text:
                failures.append(
                    f"body (not JSON): blue {_shown(blue.text)}, green {_shown(green.text)}"
                )
        else:
            if spec.learn_noise:
                again = ask(True)
                try:
                    noise = {p for p, _, _ in differences(blue_body, again.json())}
                except ValueError:
                    noise = set()
            found = [
                (p, b, g)
                for p, b, g in differences(blue_body, green_body)
                if p not in noise and not _matches(p, spec.ignore)
            ]
            for path, left, right in found[:LISTED]:
                failures.append(f"body {pointer(path)}: blue {_shown(left)}, green {_shown(right)}")
            if len(found) > LISTED:
                failures.append(f"body: {len(found) - LISTED} more differences")
    summary = (
        f"blue {blue.status} in {blue.millis:.0f} ms, green {green.status} in {green.millis:.0f} ms"
    )
    if noise:
        noisy = ", ".join(sorted(pointer(p) for p in noise)[:5])
        summary += f"; {len(noise)} noisy field(s) ignored: {noisy}"
    if spec.latency is not None:
        blues, greens = [blue.millis], [green.millis]
        for _ in range(max(spec.samples, 1) - 1):
            greens.append(ask(False).millis)
            blues.append(ask(True).millis)
        summary += (
            f"; median latency blue {statistics.median(blues):.0f} ms, "
            f"green {statistics.median(greens):.0f} ms"
        )
        failure = judge_latency(spec.latency, spec.latency_slack, blues, greens)
        if failure is not None:
            failures.append(failure)
    return failures, summary


def judge_latency(
    ratio: float, slack_ms: float, blues: list[float], greens: list[float]
) -> str | None:
    """Green's median latency against blue's: over ``ratio`` x blue's median and over blue's
    plus ``slack_ms`` (a ratio of millisecond medians is noise), the failure; else None."""
    blue_p50, green_p50 = statistics.median(blues), statistics.median(greens)
    if green_p50 <= max(ratio * blue_p50, blue_p50 + slack_ms):
        return None
    return (
        f"latency: green's median {green_p50:.0f} ms is over {ratio:g} x blue's "
        f"{blue_p50:.0f} ms (over {len(greens)} requests each; {slack_ms:g} ms of slack)"
    )
