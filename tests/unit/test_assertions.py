"""Every query and predicate, passing and failing, with the actual value in the message."""

from __future__ import annotations

from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from hooks.suites.http.assertions import PREDICATES, QUERIES, Response, evaluate

BODY = '{"status": "ok", "items": [1, 2, 3], "count": 3, "name": "shop", "ready": true}'


def response(
    status: int = 200, text: str = BODY, headers: dict[str, str] | None = None, ms: float = 120.5
) -> Response:
    base = {"Content-Type": "application/json", "X-App-Version": "1.5.0"}
    return Response(status, CaseInsensitiveDict({**base, **(headers or {})}), text, ms)


PASSING: list[dict[str, Any]] = [
    {"status": 200},
    {"status": [200, 204]},
    {"status": "2xx"},
    {"header": "content-type", "contains": "json"},
    {"header": "X-App-Version", "matches": r"^\d+\.\d+\.\d+$"},
    {"header": "X-App-Version", "equals": "1.5.0"},
    {"header": "X-App-Version"},  # a bare query asserts presence
    {"header": "X-Missing", "exists": False},
    {"jmespath": "status", "equals": "ok"},
    {"jmespath": "count", "equals": 3},
    {"jmespath": "count", "in": [1, 3]},
    {"jmespath": "items", "contains": 2},
    {"jmespath": "items", "length": 3},
    {"jmespath": "items", "type": "array"},
    {"jmespath": "ready", "type": "boolean"},
    {"jmespath": "ready", "equals": True},
    {"jmespath": "count", "less_than": 4},
    {"jmespath": "count", "less_or_equal": 3},
    {"jmespath": "count", "greater_than": 2},
    {"jmespath": "count", "greater_or_equal": 3},
    {"jmespath": "missing", "exists": False},
    {"body": None, "contains": '"status": "ok"'},
    {"body": None, "matches": "shop"},
    {"duration": None, "less_than": 500},
    {"status": 500, "not": True},
    {"jmespath": "status", "equals": "down", "not": True},
]


@pytest.mark.parametrize("assertion", PASSING, ids=repr)
def test_passing_assertions_report_nothing(assertion: dict[str, Any]) -> None:
    assert evaluate(assertion, response()) == []


FAILING: list[tuple[dict[str, Any], str]] = [
    ({"status": 201}, "status: expected to be 201, got 200"),
    ({"status": [201, 204]}, "status: expected to be 201 or 204, got 200"),
    ({"status": "5xx"}, "status: expected to be 5xx, got 200"),
    ({"header": "Content-Type", "contains": "xml"}, "got 'application/json'"),
    ({"header": "X-App-Version", "matches": "^2"}, "expected to match /^2/, got '1.5.0'"),
    ({"header": "X-Missing"}, "header X-Missing: expected to exist, got nothing (absent)"),
    ({"header": "X-App-Version", "exists": False}, "got '1.5.0'"),
    (
        {"jmespath": "status", "equals": "down"},
        "jmespath status: expected to equal 'down', got 'ok'",
    ),
    ({"jmespath": "count", "equals": "3"}, "expected to equal '3', got 3"),
    ({"jmespath": "count", "in": [1, 2]}, "expected to be one of [1, 2], got 3"),
    ({"jmespath": "items", "contains": 9}, "expected to contain 9, got [1, 2, 3]"),
    ({"jmespath": "items", "length": 2}, "expected to have length 2, got length 3 (list)"),
    ({"jmespath": "name", "type": "number"}, "expected to be of type 'number', got 'shop'"),
    ({"jmespath": "ready", "equals": 1}, "expected to equal 1, got true"),
    ({"jmespath": "count", "less_than": 3}, "expected to be < 3, got 3"),
    ({"jmespath": "count", "less_or_equal": 2}, "expected to be <= 2, got 3"),
    ({"jmespath": "count", "greater_than": 3}, "expected to be > 3, got 3"),
    ({"jmespath": "count", "greater_or_equal": 4}, "expected to be >= 4, got 3"),
    ({"jmespath": "missing"}, "jmespath missing: expected to exist, got nothing (absent)"),
    ({"body": None, "contains": "error"}, "body: expected to contain 'error'"),
    ({"body": None, "matches": r"^<\w+"}, r"body: expected to match /^<\w+/"),
    ({"duration": None, "less_than": 100}, "duration: expected to be < 100, got 120.5"),
    ({"status": 200, "not": True}, "status: expected to not be 200, got 200"),
    ({"jmespath": "status", "equals": "ok", "not": True}, "expected to not equal 'ok', got 'ok'"),
]


@pytest.mark.parametrize(("assertion", "message"), FAILING, ids=repr)
def test_failing_assertions_show_the_actual_value(assertion: dict[str, Any], message: str) -> None:
    failures = evaluate(assertion, response())
    assert len(failures) == 1
    assert message in failures[0]


def test_jmespath_on_a_body_that_is_not_json_says_so() -> None:
    failures = evaluate({"jmespath": "status", "equals": "ok"}, response(text="<html>oops"))
    assert "a body that is not JSON: '<html>oops'" in failures[0]


def test_every_failing_predicate_of_one_assertion_is_reported() -> None:
    failures = evaluate(
        {"jmespath": "count", "greater_than": 5, "less_than": 1, "type": "string"}, response()
    )
    assert len(failures) == 3


def test_long_actual_values_are_cut() -> None:
    failures = evaluate({"body": None, "contains": "x"}, response(text="a" * 5000))
    assert len(failures[0]) < 400
    assert "more characters" in failures[0]


def test_every_query_and_predicate_is_covered_here() -> None:
    """Meta-test: a new query or predicate needs a passing and a failing case above."""
    for cases in (PASSING, [a for a, _ in FAILING]):
        used = {key for assertion in cases for key in assertion}
        assert set(QUERIES) <= used
        assert set(PREDICATES) <= used
