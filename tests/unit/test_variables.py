from __future__ import annotations

import pytest

from hooks.suites.http.template import UnknownVariableError, render


def test_variables_are_replaced_in_nested_values() -> None:
    value = {"path": "/orders/${id}", "json": {"sku": "${sku}", "n": 2, "tags": ["${sku}"]}}
    assert render(value, {"id": "7", "sku": "A"}) == {
        "path": "/orders/7",
        "json": {"sku": "A", "n": 2, "tags": ["A"]},
    }


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "s3cret")
    assert render("Bearer ${env:API_TOKEN}", {}) == "Bearer s3cret"


def test_an_unset_environment_variable_is_named() -> None:
    with pytest.raises(UnknownVariableError, match="'NOPE_NOT_SET' is not set"):
        render("${env:NOPE_NOT_SET}", {})


def test_an_unknown_variable_lists_the_known_ones() -> None:
    with pytest.raises(UnknownVariableError, match=r"unknown variable \$\{x\} \(known: a, b\)"):
        render("${x}", {"a": "1", "b": "2"})


def test_double_dollar_escapes() -> None:
    assert render("$${literal}", {}) == "${literal}"
