"""Thresholds in k6's language, shared by the ``load`` and ``metrics`` suite kinds.

A threshold is an aggregation of a metric, an operator and a number::

    http_req_duration: ["p(99) < 300", "avg < 120"]     # milliseconds
    http_req_failed:   ["rate < 0.01"]
    http_reqs:         ["count >= 100"]

A metric may be narrowed to one named request, as in k6: ``http_req_duration{request:checkout}``.
Each expression becomes one check of the suite, named after it, whose message gives the
value measured.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "HTTP_METRICS",
    "Threshold",
    "ThresholdError",
    "parse",
    "parse_all",
    "parse_seconds",
    "parse_section",
    "show",
]

#: The HTTP metrics both the load generator and the load balancer measure, and their
#: aggregations: ``p()`` stands for any percentile ``p(N)``.
HTTP_METRICS: Mapping[str, frozenset[str]] = {
    "http_req_duration": frozenset({"p()", "avg", "min", "max", "med"}),
    "http_req_failed": frozenset({"rate", "count"}),
    "http_reqs": frozenset({"count", "rate"}),
}

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_EXPRESSION = re.compile(
    r"^\s*(?P<agg>p\(\s*(?P<q>\d+(?:\.\d+)?)\s*\)|[a-z]+[0-9]*)\s*"
    r"(?P<op><=|>=|==|!=|<|>)\s*(?P<value>-?\d+(?:\.\d+)?)\s*$"
)
_METRIC = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*)(?:\{request:(?P<request>[^}]+)\})?$")


class ThresholdError(ValueError):
    """A threshold that cannot be read; the message says what is expected."""


@dataclass(frozen=True)
class Threshold:
    """``metric[{request:NAME}]: aggregation operator value``."""

    metric: str
    aggregation: str  # "p(99)", "avg", "rate", ...
    op: str
    value: float
    request: str | None = None

    @property
    def quantile(self) -> float | None:
        """0.99 for ``p(99)``; None for other aggregations."""
        if self.aggregation.startswith("p("):
            return float(self.aggregation[2:-1]) / 100
        return None

    @property
    def label(self) -> str:
        scope = f"{{request:{self.request}}}" if self.request else ""
        return f"{self.metric}{scope} {self.aggregation} {self.op} {self.value:g}"

    def holds(self, measured: float | None) -> bool:
        """True when ``measured`` meets the threshold; a missing or NaN value never does."""
        if measured is None or math.isnan(measured):
            return False
        return _OPERATORS[self.op](measured, self.value)


def show(threshold: Threshold, measured: float | None) -> str:
    """``p(99) = 212.4 ms``, ``rate = 0.004 (0.40%)``, ``count = 80``: the value measured."""
    if measured is None:
        return f"{threshold.aggregation} = n/a"
    if threshold.metric == "http_req_duration":
        return f"{threshold.aggregation} = {measured:.1f} ms"
    if threshold.metric == "http_req_failed" and threshold.aggregation == "rate":
        return f"rate = {measured:.4g} ({measured:.2%})"
    return f"{threshold.aggregation} = {measured:.4g}"


def parse_section(
    spec: Mapping[str, object],
    aggregations: Mapping[str, frozenset[str]],
    located: Callable[[list[str | int], str], Exception],
) -> list[Threshold]:
    """A file's ``thresholds:`` mapping; an error names the metric's key (``located``)."""
    found: list[Threshold] = []
    for metric, expressions in spec.items():
        try:
            found += parse_all({metric: expressions}, aggregations)
        except ThresholdError as exc:
            raise located(["thresholds", metric], str(exc)) from None
    return found


def parse(metric: str, expression: str, aggregations: Mapping[str, frozenset[str]]) -> Threshold:
    """One threshold; ``aggregations`` maps each metric to the aggregations it has."""
    named = _METRIC.match(metric)
    if named is None or named["name"] not in aggregations:
        known = ", ".join(sorted(aggregations))
        raise ThresholdError(f"unknown metric {metric!r} (known: {known})")
    found = _EXPRESSION.match(expression)
    if found is None:
        raise ThresholdError(
            f"cannot read threshold {expression!r}: expected an aggregation, an operator and "
            f"a number, such as 'p(99) < 300', 'avg <= 120' or 'rate < 0.01'"
        )
    allowed = aggregations[named["name"]]
    aggregation = "p()" if found["q"] is not None else found["agg"]
    if aggregation not in allowed:
        shown = ", ".join(sorted("p(N)" if a == "p()" else a for a in allowed))
        raise ThresholdError(
            f"{named['name']} has no aggregation {found['agg']!r} (it has {shown})"
        )
    if found["q"] is not None and not 0 < float(found["q"]) < 100:
        raise ThresholdError(f"a percentile is between 0 and 100, exclusive: {found['agg']!r}")
    return Threshold(
        named["name"],
        f"p({found['q']})" if found["q"] is not None else found["agg"],
        found["op"],
        float(found["value"]),
        named["request"],
    )


def parse_all(
    spec: Mapping[str, object], aggregations: Mapping[str, frozenset[str]]
) -> list[Threshold]:
    """Every threshold of a ``thresholds:`` mapping (a metric -> an expression or a list)."""
    found: list[Threshold] = []
    for metric, expressions in spec.items():
        for expression in expressions if isinstance(expressions, list) else [expressions]:
            found.append(parse(str(metric), str(expression), aggregations))
    return found


_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_seconds(value: object) -> float:
    """A span of time: a number of seconds, or ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``."""
    if isinstance(value, bool):
        raise ThresholdError(f"expected a span of time such as 30s or 5m, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    found = _SPAN.match(str(value))
    if found is None:
        raise ThresholdError(f"expected a span of time such as 30s or 5m, got {value!r}")
    return float(found[1]) * _UNIT_SECONDS[found[2]]
