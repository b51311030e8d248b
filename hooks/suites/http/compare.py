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

Noise is learned as Diffy does: blue is asked twice (``noise_samples`` times), and what
differs between its answers is not compared — a field (timestamps, request ids), a named
header's value, the order of a list (then compared as a multiset), a token in a line of
text — no ignore rule needed. A noisy field still fails when it vanishes or changes type.
Only safe methods (GET, HEAD, OPTIONS) unless ``allow_unsafe: true``: the request reaches
production too. Each difference is one readable line: ``body /items/0/price: blue 10, green 12``.
"""

from __future__ import annotations

import json
import re
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
    #: How many times blue is asked to learn what varies (``learn_noise``): 2 by default.
    noise_samples: int = 2

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
            noise_samples=int(spec.get("noise_samples", 2)),
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
    one-line summary of what was compared. ``ask`` raises to fail the check.

    Blue is asked ``noise_samples`` times (2 by default; 1 with ``learn_noise: false``):
    what varies between its answers is learned — a header's value, a field, the order of a
    list, a token in a line of text — and not compared. A noisy field still fails when it
    vanishes from green or changes its JSON type."""
    green = ask(False)
    blues = [ask(True) for _ in range(spec.noise_samples if spec.learn_noise else 1)]
    blue = blues[0]
    failures: list[str] = []
    if spec.status and blue.status != green.status:
        failures.append(f"status: blue {blue.status}, green {green.status}")
    failures += _header_differences(spec.headers, blues, green)
    noise: set[tuple[str, ...]] = set()
    if spec.body:
        found, noise = _body_differences(spec, blues, green)
        failures += found
    summary = (
        f"blue {blue.status} in {blue.millis:.0f} ms, green {green.status} in {green.millis:.0f} ms"
    )
    if len(blues) > 1:
        summary += f"; blue asked {len(blues)} times to learn its noise"
    if noise:
        noisy = ", ".join(sorted(pointer(p) for p in noise)[:5])
        summary += f"; {len(noise)} noisy field(s) ignored: {noisy}"
    if spec.latency is not None:
        failure, said = _latency(spec, ask, blue, green)
        summary += said
        if failure is not None:
            failures.append(failure)
    return failures, summary


def _header_differences(names: tuple[str, ...], blues: list[Answer], green: Answer) -> list[str]:
    """A named header that blue answers the same each time must be the same on green; one
    whose value varies on blue (a date, a request id) must only be there on green too."""
    found = []
    for name in names:
        seen = [b.headers.get(name) for b in blues]
        left, right = seen[0], green.headers.get(name)
        if len(set(seen)) > 1:  # noisy on blue: present or absent is what counts
            if all(v is not None for v in seen) and right is None:
                found.append(f"header {name}: blue sends it (it varies), green does not")
        elif left != right:
            found.append(f"header {name}: blue {left!r}, green {right!r}")
    return found


def _body_differences(
    spec: Compare, blues: list[Answer], green: Answer
) -> tuple[list[str], set[tuple[str, ...]]]:
    try:
        blue_bodies = [b.json() for b in blues]
        green_body = green.json()
    except ValueError:
        return _text_differences([b.text for b in blues], green.text), set()
    unordered = set().union(*(_reordered(blue_bodies[0], b) for b in blue_bodies[1:]))
    blue_bodies = [_canonical(b, unordered) for b in blue_bodies]
    green_body = _canonical(green_body, unordered)
    noise: set[tuple[str, ...]] = set()
    for other in blue_bodies[1:]:
        noise |= {p for p, _, _ in differences(blue_bodies[0], other)}
    found = []
    for path, left, right in differences(blue_bodies[0], green_body):
        if _matches(path, spec.ignore):
            continue
        if path in noise:
            seen = [_at(b, path) for b in blue_bodies]
            changed = _type_change(seen, right)
            if changed is not None:
                found.append(f"body {pointer(path)}: {changed}")
            continue
        found.append(f"body {pointer(path)}: blue {_shown(left)}, green {_shown(right)}")
    failures = found[:LISTED]
    if len(found) > LISTED:
        failures.append(f"body: {len(found) - LISTED} more differences")
    return failures, noise


def _type_change(seen: list[Any], green: Any) -> str | None:
    """Why a noisy field still fails: it vanished, or its JSON type is not blue's."""
    if any(v is _MISSING for v in seen):
        return None  # blue itself sometimes leaves it out
    if green is _MISSING:
        return "blue always has it (its value varies), green has none"
    kinds = {_kind(v) for v in seen}
    if len(kinds) == 1 and _kind(green) not in kinds:
        return f"blue's is always a {kinds.pop()} (its value varies), green's is a {_kind(green)}"
    return None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "list", dict: "object", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _at(document: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return _MISSING
    return document


def _reordered(left: Any, right: Any, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Paths (indices as ``*``) of lists whose items two answers hold in another order."""
    found: set[tuple[str, ...]] = set()
    if isinstance(left, dict) and isinstance(right, dict):
        for key in set(left) & set(right):
            found |= _reordered(left[key], right[key], (*path, str(key)))
    elif isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        if left != right and sorted(map(_key, left)) == sorted(map(_key, right)):
            found.add(path)
        for a, b in zip(left, right, strict=True):
            found |= _reordered(a, b, (*path, "*"))
    return found


def _canonical(value: Any, unordered: set[tuple[str, ...]], path: tuple[str, ...] = ()) -> Any:
    """``value`` with the lists at ``unordered`` paths sorted: compared as multisets."""
    if isinstance(value, dict):
        return {k: _canonical(v, unordered, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v, unordered, (*path, "*")) for v in value]
        return sorted(items, key=_key) if path in unordered else items
    return value


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


#: A token of a line of text: what varies between blue's answers is learned per token.
_TOKEN = re.compile(r"\w+|\W")


def _text_differences(blues: list[str], green: str) -> list[str]:
    """Text bodies line by line: a line blue answers the same each time must be the same on
    green; in a line that varies on blue, the tokens that vary (a time, an id) match any."""
    lines = [b.splitlines() for b in blues]
    green_lines = green.splitlines()
    if len({len(x) for x in lines}) > 1:  # blue's own line count varies: compare the set
        common = set(lines[0]).intersection(*map(set, lines[1:]))
        missing = sorted(common - set(green_lines))
        return [f"body line (not JSON): green lacks {_shown(line)}" for line in missing[:LISTED]]
    found = []
    for number in range(max(len(lines[0]), len(green_lines))):
        seen = [x[number] if number < len(x) else None for x in lines]
        mine = green_lines[number] if number < len(green_lines) else None
        if not _line_matches(seen, mine):
            found.append(
                f"body line {number + 1} (not JSON): blue {_shown(seen[0])}, green {_shown(mine)}"
            )
    return found[:LISTED] + (
        [f"body: {len(found) - LISTED} more differences"] if len(found) > LISTED else []
    )


def _line_matches(seen: list[str | None], green: str | None) -> bool:
    if green is None or any(s is None for s in seen):
        return green is None and all(s is None for s in seen)
    if len(set(seen)) == 1:
        return green == seen[0]
    tokens = [_TOKEN.findall(s or "") for s in seen]
    if len({len(t) for t in tokens}) > 1:
        return True  # blue's own line changes shape: nothing to hold green to
    mine = _TOKEN.findall(green)
    if len(mine) != len(tokens[0]):
        return False
    return all(len({t[i] for t in tokens}) > 1 or mine[i] == tokens[0][i] for i in range(len(mine)))


def _latency(
    spec: Compare, ask: Callable[[bool], Answer], blue: Answer, green: Answer
) -> tuple[str | None, str]:
    import statistics  # on use: with fractions and decimal, for latency comparisons only

    blues, greens = [blue.millis], [green.millis]
    for _ in range(max(spec.samples, 1) - 1):
        greens.append(ask(False).millis)
        blues.append(ask(True).millis)
    said = (
        f"; median latency blue {statistics.median(blues):.0f} ms, "
        f"green {statistics.median(greens):.0f} ms"
    )
    return judge_latency(spec.latency or 0.0, spec.latency_slack, blues, greens), said


def judge_latency(
    ratio: float, slack_ms: float, blues: list[float], greens: list[float]
) -> str | None:
    """Green's median latency against blue's: over ``ratio`` x blue's median and over blue's
    plus ``slack_ms`` (a ratio of millisecond medians is noise), the failure; else None."""
    import statistics  # on use: with fractions and decimal, for latency comparisons only

    blue_p50, green_p50 = statistics.median(blues), statistics.median(greens)
    if green_p50 <= max(ratio * blue_p50, blue_p50 + slack_ms):
        return None
    return (
        f"latency: green's median {green_p50:.0f} ms is over {ratio:g} x blue's "
        f"{blue_p50:.0f} ms (over {len(greens)} requests each; {slack_ms:g} ms of slack)"
    )
