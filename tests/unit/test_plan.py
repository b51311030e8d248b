"""The plan: sources and their precedence, per deployment group and lifecycle event."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import Policy
from hooks.core.settings import Settings
from hooks.gate.plan import PlanFile, resolve_plan

AATT = LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC
BAT = LifecycleEvent.BEFORE_ALLOW_TRAFFIC

PLAN = """\
version: 1
defaults:
  suites:
    AfterAllowTestTraffic: [smoke]
    default: [reachability]
  readiness_timeout: 90
  tls:
    ca_bundle: certs/ca.pem
groups:
  - match: {application: shop, deployment_group: "orders-*"}
    suites:
      AfterAllowTestTraffic: [smoke, orders-flow]
    host: orders.shop.example
    concurrency: 4
    policy:
      orders-flow: {report_only: true}
  - match: {deployment_group: "payments"}
    suites:
      AfterAllowTestTraffic: [payments-api]
    tls: {verify: false}
"""


@pytest.fixture
def plan_file(tmp_path: Path) -> PlanFile:
    path = tmp_path / "greenlight.yaml"
    path.write_text(PLAN)
    loaded = PlanFile.load(path)
    assert loaded is not None
    return loaded


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"GREENLIGHT_SUITES_DIR": str(tmp_path), **env})


def test_two_groups_sharing_one_stack_get_different_suites(
    plan_file: PlanFile, tmp_path: Path
) -> None:
    orders = resolve_plan(
        AATT, settings(tmp_path), plan_file, application="shop", deployment_group="orders-prod"
    )
    payments = resolve_plan(
        AATT, settings(tmp_path), plan_file, application="bank", deployment_group="payments"
    )
    assert orders.suites == ("smoke", "orders-flow")
    assert orders.host == "orders.shop.example"
    assert orders.concurrency == 4
    assert orders.policies == {"orders-flow": Policy(report_only=True)}
    assert payments.suites == ("payments-api",)
    assert payments.verify is False
    assert (
        orders.sources["suites"]
        == f"file {plan_file.path}:10 (group application=shop, deployment_group=orders-*)"
    )


def test_unlisted_groups_get_the_defaults(plan_file: PlanFile, tmp_path: Path) -> None:
    plan = resolve_plan(AATT, settings(tmp_path), plan_file, application="x", deployment_group="y")
    assert plan.suites == ("smoke",)
    assert plan.readiness_timeout == 90
    assert plan.ca_bundle == str((tmp_path / "certs" / "ca.pem").resolve())
    assert plan.sources["suites"].endswith(":2 (defaults)")
    other_event = resolve_plan(BAT, settings(tmp_path), plan_file)
    assert other_event.suites == ("reachability",)  # the 'default' key


def test_field_by_field_merge_keeps_defaults_the_group_does_not_set(
    plan_file: PlanFile, tmp_path: Path
) -> None:
    plan = resolve_plan(
        AATT, settings(tmp_path), plan_file, application="shop", deployment_group="orders-1"
    )
    assert plan.readiness_timeout == 90
    assert plan.sources["readiness_timeout"].endswith("(defaults)")


def test_tags_override_the_file_and_the_environment_overrides_tags(
    plan_file: PlanFile, tmp_path: Path
) -> None:
    tags = {
        "greenlight:suites": "smoke,canary",
        "greenlight:host": "tagged.example",
        "greenlight:report-only": "canary",
    }
    tagged = resolve_plan(
        AATT,
        settings(tmp_path),
        plan_file,
        application="shop",
        deployment_group="orders-1",
        tags=tags,
    )
    assert tagged.suites == ("smoke", "canary")
    assert tagged.host == "tagged.example"
    assert tagged.policies["canary"] == Policy(report_only=True)
    assert tagged.sources["suites"] == "tag greenlight:suites"

    per_event = resolve_plan(
        AATT,
        settings(tmp_path),
        plan_file,
        tags={**tags, "greenlight:suites:AfterAllowTestTraffic": "only-this"},
    )
    assert per_event.suites == ("only-this",)

    env = settings(tmp_path, GREENLIGHT_SUITES="from-env", GREENLIGHT_TARGET_HOST="env.example")
    overridden = resolve_plan(
        AATT, env, plan_file, application="shop", deployment_group="orders-1", tags=tags
    )
    assert overridden.suites == ("from-env",)
    assert overridden.host == "env.example"
    assert overridden.sources["suites"] == "env GREENLIGHT_SUITES"


def test_without_any_source_every_suite_for_the_event_runs(tmp_path: Path) -> None:
    plan = resolve_plan(AATT, settings(tmp_path), None)
    assert plan.suites is None
    assert plan.verify is True
    assert plan.sources["suites"] == "default"


def test_an_invalid_plan_file_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "greenlight.yaml"
    path.write_text(PLAN.replace("    concurrency: 4", "    concurrency: four"))
    with pytest.raises(ConfigError, match=r"greenlight.yaml:14: at groups\[0\].concurrency"):
        PlanFile.load(path)
    path.write_text(PLAN.replace("AfterAllowTestTraffic: [smoke]", "AfterTestTraffic: [smoke]"))
    with pytest.raises(ConfigError, match=r"greenlight.yaml:\d+: .*suites"):
        PlanFile.load(path)


def test_a_missing_plan_file_is_no_plan(tmp_path: Path) -> None:
    assert PlanFile.load(tmp_path / "greenlight.yaml") is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GREENLIGHT_CONCURRENCY", "0", "=0.0 must be from 1 to 256"),
        ("GREENLIGHT_CONCURRENCY", "nan", "=nan must be a finite number"),
        ("GREENLIGHT_CONCURRENCY", "inf", "=inf must be a finite number"),
        ("GREENLIGHT_CONCURRENCY", "2.5", "='2.5' is not a whole number"),
        ("GREENLIGHT_CONCURRENCY", "100000", "=100000.0 must be from 1 to 256"),
        ("GREENLIGHT_REQUEST_TIMEOUT", "-1", "=-1.0 must be from"),
        ("GREENLIGHT_REQUEST_TIMEOUT", "1e308", "=1e+308 must be from 0.001 to 900"),
        ("GREENLIGHT_SAFETY_MARGIN", "-inf", "=-inf must be a finite number"),
        ("GREENLIGHT_MAX_BODY_BYTES", "10", "=10.0 must be from 1024"),
        ("GREENLIGHT_TLS_VERIFY", "maybe", "='maybe' must be true or false"),
        ("GREENLIGHT_READINESS_TIMEOUT", "soon", "='soon' is not a number"),
    ],
)
def test_invalid_environment_values_are_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{name}{message}")):
        Settings.from_env({name: value})


@pytest.mark.parametrize("value", [".nan", ".inf", "-1", "100000"])
def test_plan_file_numbers_out_of_range_are_errors_naming_key_and_file(
    tmp_path: Path, value: str
) -> None:
    plan = tmp_path / "greenlight.yaml"
    plan.write_text(f"version: 1\ndefaults:\n  request_timeout: {value}\n")
    with pytest.raises(ConfigError, match="request_timeout") as raised:
        resolve_plan(
            LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
            Settings.from_env({}),
            PlanFile.load(plan),
        )
    assert str(plan) in str(raised.value)


def test_pytest_plugins_come_from_the_plan_group_over_defaults_with_their_source(
    tmp_path: Path,
) -> None:
    path = tmp_path / "greenlight.yaml"
    path.write_text(
        "version: 1\ndefaults:\n  plugins: [hypothesispytest]\n"
        "groups:\n  - match: {deployment_group: payments}\n    plugins: [anyio, my_plugin.mod]\n"
    )
    loaded = PlanFile.load(path)
    assert loaded is not None
    other = resolve_plan(AATT, settings(tmp_path), loaded, deployment_group="orders")
    payments = resolve_plan(AATT, settings(tmp_path), loaded, deployment_group="payments")
    assert other.plugins == ("hypothesispytest",)
    assert payments.plugins == ("anyio", "my_plugin.mod")
    assert "group deployment_group=payments" in payments.sources["plugins"]
    assert payments.describe()["plugins"] == ["anyio", "my_plugin.mod"]
    nothing = resolve_plan(AATT, settings(tmp_path), None)
    assert nothing.plugins == ()
    assert nothing.sources["plugins"] == "default"


@pytest.mark.parametrize("plugins", ["[a, a]", "['-p no:x']", "hypothesispytest", "['']"])
def test_a_malformed_plugins_list_is_refused_naming_the_line(tmp_path: Path, plugins: str) -> None:
    path = tmp_path / "greenlight.yaml"
    path.write_text(f"version: 1\ndefaults:\n  plugins: {plugins}\n")
    with pytest.raises(ConfigError, match=r"greenlight\.yaml:3"):
        PlanFile.load(path)
