"""Loading declarative suites: the schema, with errors naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import LifecycleEvent
from hooks.suites.base import declared_kind
from hooks.suites.http import HttpSuite, HttpSuiteKind
from hooks.suites.registry import discover
from tests.helpers import SUITES

KIND = HttpSuiteKind()


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        KIND.load(write(tmp_path, text))
    return str(info.value)


GOOD = """\
name: shop
events: [AfterAllowTestTraffic]
checks:
  - name: health
    request: {path: /health}
    assert:
      - status: 200
"""


def test_a_valid_suite_loads_with_its_metadata(tmp_path: Path) -> None:
    (suite,) = KIND.load(write(tmp_path, GOOD))
    assert isinstance(suite, HttpSuite)
    assert suite.name == "shop"
    assert suite.events == frozenset({LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC})
    assert suite.check_names() == ["health"]
    assert not suite.sequential


def test_an_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, GOOD.replace("      - status: 200", "      - stauts: 200"))
    assert message.startswith(f"{tmp_path / 'suite.yaml'}:7:")
    assert "unknown key 'stauts'" in message
    assert "checks[0].assert[0]" in message


def test_a_misspelt_check_key_is_reported_on_its_line(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    request: {path: /health}", "    request: {path: /health}\n    retires: 3"
    )
    message = load_error(tmp_path, text)
    assert ":6:" in message
    assert "unknown key 'retires'" in message


def test_a_wrong_type_names_the_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, GOOD.replace("status: 200", "status: two hundred"))
    assert ":7:" in message
    assert "checks[0].assert[0].status" in message


def test_two_queries_in_one_assertion_are_explained(tmp_path: Path) -> None:
    message = load_error(
        tmp_path, GOOD.replace("- status: 200", "- status: 200\n        header: X")
    )
    assert "exactly one query" in message


def test_an_unknown_lifecycle_event_is_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, GOOD.replace("[AfterAllowTestTraffic]", "[AfterTestTraffic]"))
    assert ":2:" in message
    assert "events" in message


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "name: shop\nchecks:\n  - name: [unclosed\n")
    assert "YAML syntax error" in message
    assert f"{tmp_path / 'suite.yaml'}:" in message


def test_a_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    assert "must be a mapping" in load_error(tmp_path, "- just\n- a list\n")


def test_duplicate_check_names(tmp_path: Path) -> None:
    text = GOOD + "  - name: health\n    request: {path: /other}\n"
    message = load_error(tmp_path, text)
    assert ":8:" in message
    assert "duplicate check name 'health'" in message


def test_an_invalid_regex_fails_validation_not_the_gate(tmp_path: Path) -> None:
    message = load_error(tmp_path, GOOD.replace("- status: 200", "- body:\n        matches: '(['"))
    assert "invalid regular expression" in message


def test_an_invalid_jmespath_fails_validation(tmp_path: Path) -> None:
    message = load_error(tmp_path, GOOD.replace("- status: 200", "- jmespath: 'items[?'"))
    assert "invalid JMESPath" in message


def test_a_variable_used_before_it_is_captured(tmp_path: Path) -> None:
    text = GOOD.replace("{path: /health}", "{path: '/orders/${order_id}'}")
    message = load_error(tmp_path, text)
    assert "${order_id} is not defined here" in message
    assert ":5:" in message


def test_json_and_body_together_are_rejected(tmp_path: Path) -> None:
    text = GOOD.replace("{path: /health}", "{path: /x, json: {a: 1}, body: raw}")
    assert "either 'json' or 'body'" in load_error(tmp_path, text)


def test_a_suite_with_captures_runs_in_order(tmp_path: Path) -> None:
    text = GOOD + "    capture:\n      v: {header: X-Version}\n"
    (suite,) = KIND.load(write(tmp_path, text))
    assert isinstance(suite, HttpSuite)
    assert suite.sequential


EXAMPLES = sorted(p for p in (SUITES / "examples").glob("*.yaml") if p.name != "greenlight.yaml")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_shipped_examples_are_valid(path: Path) -> None:
    catalog = discover(None)
    (kind,) = [k for k in catalog.kinds.values() if k.claims(path)]
    assert kind.name == (declared_kind(path) or "http")
    assert kind.load(path)


def test_a_large_suite_without_aliases_is_not_mistaken_for_an_alias_bomb(tmp_path: Path) -> None:
    # 10,000 checks write out ~150,000 values: large, but nothing is expanded by aliases.
    lines = ["name: big\nchecks:"] + [
        f"  - {{name: c{i}, request: {{path: /r{i}}}, assert: [{{status: 200}}]}}"
        for i in range(10_000)
    ]
    path = tmp_path / "big.yaml"
    path.write_text("\n".join(lines) + "\n")
    (suite,) = HttpSuiteKind().load(path)
    assert len(suite.check_names()) == 10_000


def test_a_yaml_file_goes_to_the_kind_it_declares(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: plain\nchecks: [{name: c, request: {path: /}}]\n")
    said = tmp_path / "said.yaml"
    said.write_text(
        "kind: http   # the default, said out loud\n" + plain.read_text().replace("plain", "said")
    )
    other = tmp_path / "other.yaml"
    other.write_text("name: other\nkind: 'load'\n")
    assert KIND.claims(plain)
    assert KIND.claims(said)
    assert not KIND.claims(other)
    assert [s.name for s in KIND.load(said)] == ["said"]
    catalog = discover(tmp_path)
    broken = {b.name: b.error for b in catalog.broken}
    assert set(broken) == {"other"}  # claimed by the load kind, which finds it incomplete
    assert "other.yaml" in broken["other"]
