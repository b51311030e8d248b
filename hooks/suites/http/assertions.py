"""Assertions: a query on the response and predicates on its value (Hurl's model).

Every predicate of every assertion is evaluated; each failure is a line that shows the
value actually seen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cached_property, lru_cache
from typing import Any

from hooks.core.results import cut

__all__ = [
    "MAX_PATTERN_LENGTH",
    "MAX_PATTERN_NESTING",
    "MAX_REPEAT",
    "PREDICATES",
    "QUERIES",
    "PatternError",
    "Response",
    "compile_pattern",
    "evaluate",
    "query",
    "search",
    "show",
]

QUERIES = ("status", "header", "jmespath", "body", "duration")
_MISSING = object()
#: Bounds on a regular expression: its length, nesting and repetition counts.
MAX_PATTERN_LENGTH = 1000
MAX_PATTERN_NESTING = 32
MAX_REPEAT = 10_000
_REPEAT_COUNTS = re.compile(r"(?<!\\)\{(\d+)(?:,(\d*))?\}")


class PatternError(ValueError):
    """A regular expression that does not compile, or is larger than the bounds allow."""


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled, or a :class:`PatternError` saying what is wrong with it."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"longer than {MAX_PATTERN_LENGTH} characters")
    depth = deepest = 0
    escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    if deepest > MAX_PATTERN_NESTING:
        raise PatternError(f"groups nested deeper than {MAX_PATTERN_NESTING}")
    for low, high in _REPEAT_COUNTS.findall(pattern):
        if int(low) > MAX_REPEAT or (high and int(high) > MAX_REPEAT):
            raise PatternError(f"a repetition count above {MAX_REPEAT}")
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError, MemoryError) as exc:
        raise PatternError(str(exc) or type(exc).__name__) from None


class Response:
    """What assertions and captures look at. The body is decoded and parsed only if used."""

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],  # case-insensitive, from requests
        text: str | Callable[[], str],
        elapsed_ms: float,
    ) -> None:
        self.status = status
        self.headers = headers
        self._text = text
        self.elapsed_ms = elapsed_ms

    @cached_property
    def text(self) -> str:
        return self._text if isinstance(self._text, str) else self._text()

    @cached_property
    def document(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        return json.loads(self.text)

    def json(self) -> Any:
        return self.document


@lru_cache(maxsize=512)
def _jmespath(expression: str) -> Any:
    import jmespath

    return jmespath.compile(expression)


def search(expression: str, document: Any) -> Any:
    return _jmespath(expression).search(document)


def query(assertion: Mapping[str, Any], response: Response) -> tuple[str, Any]:
    """The assertion's label and the value its query finds (``_MISSING`` when absent)."""
    if "status" in assertion:
        return "status", response.status
    if "header" in assertion:
        name = assertion["header"]
        return f"header {name}", response.headers.get(name, _MISSING)
    if "jmespath" in assertion:
        expression = assertion["jmespath"]
        try:
            document = response.json()
        except ValueError:
            return f"jmespath {expression}", _NotJson(response.text)
        value = search(expression, document)
        return f"jmespath {expression}", _MISSING if value is None else value
    if "body" in assertion:
        return "body", response.text
    return "duration", response.elapsed_ms


class _NotJson:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"a body that is not JSON: {cut(self.text, 120)!r}"


def show(value: Any) -> str:
    if value is _MISSING:
        return "nothing (absent)"
    if isinstance(value, _NotJson):
        return repr(value)
    if isinstance(value, str):
        return repr(cut(value, 200))
    if isinstance(value, float):
        return f"{value:.1f}"
    return cut(json.dumps(value, default=str), 200)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _equals(actual: Any, expected: Any) -> bool:
    if actual is _MISSING or isinstance(actual, bool) != isinstance(expected, bool):
        return False
    if isinstance(actual, str) and not isinstance(expected, str):
        # A header or body is text: compare with the expected value written as JSON/text.
        return actual == (
            str(expected) if isinstance(expected, int | float) else json.dumps(expected)
        )
    return bool(actual == expected)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return str(expected) in actual
    if isinstance(actual, list):
        return any(_equals(item, expected) for item in actual)
    if isinstance(actual, dict):
        return expected in actual
    return False


def _matches(actual: Any, pattern: str) -> bool:
    return isinstance(actual, str) and compile_pattern(pattern).search(actual) is not None


def _compare(op: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    def check(actual: Any, expected: Any) -> bool:
        number = _number(actual)
        return number is not None and op(number, float(expected))

    return check


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None or v is _MISSING,
}


def _status_class(actual: Any, expected: Any) -> bool:
    if isinstance(expected, list):
        return actual in expected
    if isinstance(expected, str):
        return str(actual)[0] == expected[0]
    return bool(actual == expected)


PREDICATES: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "equals": ("equal", _equals),
    "in": ("be one of", lambda a, e: any(_equals(a, x) for x in e)),
    "contains": ("contain", _contains),
    "matches": ("match", _matches),
    "exists": ("exist", lambda a, e: (a is not _MISSING) == bool(e)),
    "less_than": ("be <", _compare(lambda a, e: a < e)),
    "less_or_equal": ("be <=", _compare(lambda a, e: a <= e)),
    "greater_than": ("be >", _compare(lambda a, e: a > e)),
    "greater_or_equal": ("be >=", _compare(lambda a, e: a >= e)),
    "type": ("be of type", lambda a, e: _JSON_TYPES[e](a)),
    "length": ("have length", lambda a, e: isinstance(a, str | list | dict) and len(a) == e),
}


def evaluate(assertion: Mapping[str, Any], response: Response) -> list[str]:
    """Every failed predicate of ``assertion``, each showing the actual value."""
    label, actual = query(assertion, response)
    negate = bool(assertion.get("not", False))
    failures: list[str] = []
    checks: list[tuple[str, str, Any, Callable[[Any, Any], bool]]] = []
    if assertion.get("status") not in (None, True):
        checks.append(("status", "be", assertion["status"], _status_class))
    for key, (verb, predicate) in PREDICATES.items():
        if key in assertion:
            checks.append((key, verb, assertion[key], predicate))
    if not checks:  # a bare query asserts presence
        checks.append(("exists", "exist", True, PREDICATES["exists"][1]))
    for key, verb, expected, predicate in checks:
        try:
            ok = predicate(actual, expected)
        except PatternError as exc:
            failures.append(f"{label}: invalid regular expression {expected!r}: {exc}")
            continue
        if ok == negate:
            want = f"{'not ' if negate else ''}{verb}"
            target = "" if key == "exists" else f" {_expected_text(key, expected)}"
            failures.append(f"{label}: expected to {want}{target}, got {_seen(key, actual)}")
    return failures


def _seen(key: str, actual: Any) -> str:
    """The value seen: for a length, the length (and the type), not the whole value."""
    if key == "length" and isinstance(actual, str | list | dict):
        return f"length {len(actual)} ({type(actual).__name__})"
    return show(actual)


def _expected_text(key: str, expected: Any) -> str:
    if key == "status":
        if isinstance(expected, list):
            return " or ".join(str(code) for code in expected)
        return str(expected)
    if key == "matches":
        return f"/{expected}/"  # the pattern as written, without repr's doubled backslashes
    return show(expected)
