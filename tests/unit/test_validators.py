"""Validators compiled at build time behave as the ones compiled at run time, and a schema
that changed since the build is never checked by a stale one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest

from hooks.core import validators
from hooks.gate.plan import SCHEMA_PATH as PLAN_SCHEMA
from hooks.suites.http import SCHEMA_PATH as SUITE_SCHEMA


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The build's output, importable under a package name of the test's own."""
    dest = tmp_path / "built_validators_for_test"
    validators.write_validators([PLAN_SCHEMA, SUITE_SCHEMA], dest)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(validators, "PACKAGE", dest.name)
    return dest


def _error(validate: Any, data: Any) -> str | None:
    try:
        validate(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        return f"{exc.message} at {exc.path} ({exc.rule})"
    return None


SUITES = [
    {"name": "ok", "checks": [{"name": "c", "request": {"path": "/"}}]},
    {"name": "ok", "checks": [{"name": "c", "request": {"path": "/"}, "unknown": 1}]},
    {"name": 3, "checks": []},
    {"checks": [{"name": "c", "request": {"method": "BREW", "path": "/"}}]},
    [],
]


@pytest.mark.parametrize("data", SUITES)
def test_a_built_validator_decides_as_the_run_time_one(built: Path, data: Any) -> None:
    schema = json.loads(SUITE_SCHEMA.read_text())
    from_build = validators.built_validator(schema)
    assert from_build is not None
    assert from_build.__module__.startswith(built.name)
    assert _error(from_build, data) == _error(fastjsonschema.compile(schema), data)


def test_every_schema_given_is_compiled(built: Path) -> None:
    for path in (PLAN_SCHEMA, SUITE_SCHEMA):
        assert validators.built_validator(json.loads(path.read_text())) is not None
    assert len(list(built.glob("v_*.py"))) == 2


def test_a_schema_changed_after_the_build_is_not_validated_by_the_stale_one(
    built: Path,
) -> None:
    schema = json.loads(SUITE_SCHEMA.read_text())
    schema["properties"]["name"] = {"type": "integer"}
    assert validators.built_validator(schema) is None


def test_without_a_build_the_schema_is_compiled_at_run_time(tmp_path: Path) -> None:
    from hooks.core.yamlfile import compiled_schema

    compiled_schema.cache_clear()
    try:
        validate = compiled_schema(str(SUITE_SCHEMA))
        assert not (validate.__module__ or "").startswith(validators.PACKAGE)
        assert _error(validate, {"name": 3, "checks": []}) is not None
    finally:
        compiled_schema.cache_clear()
