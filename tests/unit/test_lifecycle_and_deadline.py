from __future__ import annotations

import time
from typing import Any

import pytest

from hooks.cli.local import LocalContext
from hooks.core.deadline import Deadline
from hooks.core.exceptions import InvalidEventError
from hooks.core.lifecycle import LifecycleEvent, parse_event
from tests.helpers import each, load_event


def test_parse_a_sample_event() -> None:
    invocation = parse_event(
        load_event("before_allow_traffic"), LifecycleEvent.BEFORE_ALLOW_TRAFFIC
    )
    assert invocation.deployment_id == "d-EXAMPLE11"
    assert invocation.lifecycle_event is LifecycleEvent.BEFORE_ALLOW_TRAFFIC


def test_extra_keys_are_tolerated_but_ids_are_required() -> None:
    event = {**load_event("after_install"), "Extra": 1}
    assert parse_event(event, LifecycleEvent.AFTER_INSTALL).execution_id
    with pytest.raises(InvalidEventError, match="LifecycleEventHookExecutionId"):
        parse_event(
            {"DeploymentId": "d-1", "LifecycleEventHookExecutionId": "  "},
            LifecycleEvent.AFTER_INSTALL,
        )


def test_events_in_codedeploy_order_and_rollback() -> None:
    assert [e.value for e in LifecycleEvent] == [
        "BeforeInstall",
        "AfterInstall",
        "AfterAllowTestTraffic",
        "BeforeAllowTraffic",
        "AfterAllowTraffic",
    ]
    assert not LifecycleEvent.BEFORE_INSTALL.can_roll_back
    assert all(e.can_roll_back for e in each(list(LifecycleEvent)[1:]))
    assert (
        LifecycleEvent.parse("after_allow_test_traffic") is LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC
    )
    with pytest.raises(ValueError, match="expected one of"):
        LifecycleEvent.parse("AllowTraffic")


def test_deadline_keeps_the_safety_margin() -> None:
    deadline = Deadline.from_context(LocalContext(60), safety_margin=10)
    assert 49 < deadline.remaining() <= 50


def test_a_short_context_keeps_at_most_a_third_for_reporting() -> None:
    deadline = Deadline.from_context(LocalContext(3), safety_margin=10)
    assert 1.9 < deadline.remaining() <= 2.0


@pytest.mark.timing
def test_clamp_never_exceeds_the_deadline() -> None:
    deadline = Deadline.in_seconds(0.5)
    assert deadline.clamp(30) <= 0.5
    expired = Deadline(time.monotonic() - 1)
    assert expired.expired()
    assert expired.clamp(30) == 0.001


@pytest.mark.parametrize(
    ("event", "missing"),
    [
        ({1: "x", "other": "y"}, "DeploymentId"),
        ({None: 1}, "DeploymentId"),
        ({("a",): "b", "DeploymentId": "d-1"}, "LifecycleEventHookExecutionId"),
    ],
    ids=["an int key", "a None key", "a tuple key"],
)
def test_an_event_with_keys_that_are_not_text_is_an_invalid_event(event: Any, missing: str) -> None:
    with pytest.raises(InvalidEventError, match=f"the event has no '{missing}'; got keys"):
        parse_event(event, LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC)
