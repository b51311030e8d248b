"""Amazon ECS native blue/green hooks: the same suites through the second protocol.

The services under test are real loopback servers; ECS and ELBv2 are real botocore clients
under a Stubber (each call validated against the service model). Each test drives the
handler the way ECS does: one call per stage, the answer its return value.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from hooks.adapters.ecs import EcsReturn, handle_ecs
from hooks.adapters.hook import handle
from hooks.aws.discovery import Discovery
from hooks.aws.ecs_discovery import EcsDiscovery
from hooks.cli.local import LocalContext
from hooks.core.ecs_event import parse_ecs_event
from hooks.core.lifecycle import LifecycleEvent
from hooks.gate.carried import STATE_KEY
from hooks.gate.summary import Runtime
from tests.functional.test_hook_protocol import EVENT, expect_report
from tests.helpers import EVENTS, http_server, reply

GREEN = "arn:aws:ecs:us-east-1:123456789012:service-revision/shop-cluster/shop/5537418823990012346"
BLUE = "arn:aws:ecs:us-east-1:123456789012:service-revision/shop-cluster/shop/4431937224318812345"
ELB = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
DEPLOYMENT = (
    "arn:aws:ecs:us-east-1:123456789012:service-deployment/shop-cluster/shop/r0NlXfA1sGpM2vQ3kT7bZ"
)


def ecs_event(stage: str = "POST_TEST_TRAFFIC_SHIFT", **changes: Any) -> dict[str, Any]:
    name = "ecs_production_traffic_shift" if stage == "PRODUCTION_TRAFFIC_SHIFT" else None
    event: dict[str, Any] = json.loads(
        (EVENTS / f"{name or 'ecs_' + stage.lower()}.json").read_text()
    )
    event.update(changes)
    return event


class Service:
    """Records each request's path and headers; /slow answers after ``slow`` seconds."""

    def __init__(self, broken: bool = False, slow: float = 0.0) -> None:
        self.broken = broken
        self.slow = slow
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()

    def __call__(self, handler: Any) -> None:
        with self.lock:
            self.requests.append((handler.path, dict(handler.headers)))
        if handler.path == "/slow":
            time.sleep(self.slow)
        reply(handler, 500 if self.broken and handler.path == "/orders" else 200, {"ok": True})

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


SUITES = {
    "fast.yaml": "name: fast\nchecks:\n  - name: orders\n    request: {path: /orders}\n",
    "slow.yaml": (
        "name: slow\nchecks:\n  - name: report\n    request: {path: /slow, timeout: 30}\n"
    ),
    "traffic.yaml": (
        "name: traffic\nchecks:\n  - name: weights\n    request:\n      path: /weights\n"
        "      headers:\n        X-Test-Weight: '${traffic.test_weight}'\n"
        "        X-Production-Weight: '${traffic.production_weight}'\n"
        "        X-Stage: '${deployment.stage}'\n"
    ),
}


def suites(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "suites"
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_text(SUITES[name])
    return folder


@pytest.fixture
def service() -> Iterator[tuple[Service, str]]:
    svc = Service()
    with http_server(svc) as url:
        yield svc, url


def ecs_runtime(env: dict[str, str], **extra: Any) -> Runtime:
    return Runtime(protocol=EcsReturn(), env=env, **extra)


@pytest.mark.parametrize("broken", [False, True], ids=["good release", "broken release"])
def test_the_same_suites_give_the_same_verdict_under_both_protocols(
    broken: bool, tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: Any
) -> None:
    svc = Service(broken=broken)
    with http_server(svc) as url:
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites(tmp_path, "fast.yaml")),
            "GREENLIGHT_TARGET_URL": url,
        }
        _, stubber = codedeploy
        expect_report(stubber, "Failed" if broken else "Succeeded")
        codedeploy_result = handle(
            EVENT,
            LocalContext(30),
            LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
            Runtime(protocol=callback, env=env),
        )
        ecs_answer = handle_ecs(ecs_event(), LocalContext(30), ecs_runtime(env))
    assert codedeploy_result["verdict"] == ("Failed" if broken else "Succeeded")
    assert ecs_answer == {"hookStatus": "FAILED" if broken else "SUCCEEDED"}
    assert svc.paths().count("/orders") == 2  # once per protocol


@pytest.mark.parametrize(
    "event",
    [
        {},
        "not an event",
        None,
        {"lifecycleStage": "POST_TEST_TRAFFIC_SHIFT"},
        {"executionId": "x", "lifecycleStage": "AFTER_LUNCH"},
        {"executionId": "x", "lifecycleStage": "POST_SCALE_UP", "executionDetails": "oops"},
        {
            "executionId": "x",
            "lifecycleStage": "POST_SCALE_UP",
            "executionDetails": {"testTrafficWeights": {"a": "ten"}},
        },
        {"executionId": "x", "lifecycleStage": "POST_SCALE_UP", "hookDetails": "{not json"},
    ],
    ids=["empty", "text", "null", "no id", "bad stage", "bad details", "bad weights", "bad hook"],
)
def test_a_malformed_event_is_a_failed_answer_never_an_exception(event: Any) -> None:
    answer = handle_ecs(event, LocalContext(5), ecs_runtime({}))
    assert answer == {"hookStatus": "FAILED"}


def test_the_flat_event_of_the_older_documentation_is_accepted() -> None:
    nested = ecs_event()
    flat = {
        **{k: v for k, v in nested.items() if k != "executionDetails"},
        **nested["executionDetails"],
    }
    assert parse_ecs_event(flat) == parse_ecs_event(nested)


def test_stages_map_to_the_lifecycle_events_that_test_the_same_thing() -> None:
    expected = {
        "reconcile_service": "BeforeInstall",
        "pre_scale_up": "BeforeInstall",
        "post_scale_up": "AfterInstall",
        "test_traffic_shift": "AfterAllowTestTraffic",
        "post_test_traffic_shift": "AfterAllowTestTraffic",
        "pre_production_traffic_shift": "BeforeAllowTraffic",
        "production_traffic_shift": "AfterAllowTraffic",
        "post_production_traffic_shift": "AfterAllowTraffic",
    }
    for name, event in expected.items():
        call = parse_ecs_event(json.loads((EVENTS / f"ecs_{name}.json").read_text()))
        assert call.stage.lifecycle_event.value == event


def rollback_call() -> dict[str, Any]:
    return json.loads((EVENTS / "ecs_production_traffic_shift_rollback.json").read_text())


def _ecs_stub(rollback: bool) -> tuple[Any, Stubber]:
    client = boto3.client("ecs", region_name="us-east-1")
    stubber = Stubber(client)
    deployment: dict[str, Any] = {
        "serviceDeploymentArn": DEPLOYMENT,
        "status": "ROLLBACK_IN_PROGRESS" if rollback else "IN_PROGRESS",
    }
    if rollback:
        deployment["rollback"] = {"reason": "a hook failed", "serviceRevisionArn": BLUE}
    stubber.add_response(
        "describe_service_deployments",
        {"serviceDeployments": [deployment]},
        {"serviceDeploymentArns": [DEPLOYMENT]},
    )
    return client, stubber


def _answer_rollback(tmp_path: Path, url: str, client: Any, stubber: Stubber) -> dict[str, Any]:
    """The hook's answer to ECS's rollback call, its ECS API the stubbed ``client`` (every
    response it was given asked for)."""
    env = {
        "GREENLIGHT_SUITES_DIR": str(suites(tmp_path, "fast.yaml")),
        "GREENLIGHT_TARGET_URL": url,
    }
    with stubber:
        answer = handle_ecs(
            rollback_call(),
            LocalContext(30),
            ecs_runtime(env, ecs_discovery=EcsDiscovery(client, None)),
        )
        stubber.assert_no_pending_responses()
    return answer


@pytest.mark.parametrize("rolling_back", [True, False], ids=["rollback", "not a rollback"])
def test_a_rollback_call_is_answered_succeeded_without_testing(
    rolling_back: bool, tmp_path: Path, service: tuple[Service, str]
) -> None:
    """A call with ECS's rollback signature (green at 0 everywhere) is not tested — unless
    the service deployment says it is not rolling back: Succeeded is earned."""
    svc, url = service
    client, stubber = _ecs_stub(rollback=rolling_back)
    answer = _answer_rollback(tmp_path, url, client, stubber)
    assert answer == {"hookStatus": "SUCCEEDED"}
    assert ("/orders" in svc.paths()) is not rolling_back


def test_a_plan_longer_than_one_run_goes_on_with_in_progress_then_decides(
    tmp_path: Path,
) -> None:
    """Call 1 runs out of time with `slow` unfinished: IN_PROGRESS, carrying `fast` as passed.
    Call 2 (ECS sends the hookDetails back) runs only `slow` and succeeds."""
    svc = Service(slow=4.0)
    with http_server(svc) as url:
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites(tmp_path, "fast.yaml", "slow.yaml")),
            "GREENLIGHT_TARGET_URL": url,
            "GREENLIGHT_SAFETY_MARGIN": "0.5",
            "GREENLIGHT_ECS_CALLBACK_DELAY": "15",
        }
        event = ecs_event(hookDetails={"team": "shop"})
        first = handle_ecs(event, LocalContext(3), ecs_runtime(env))
        assert first["hookStatus"] == "IN_PROGRESS", first
        assert first["callBackDelay"] == 15
        sealed = first["hookDetails"][STATE_KEY]
        assert first["hookDetails"]["team"] == "shop"  # the user's own details are kept
        state = sealed["content"]
        assert sorted(state["passed"]) == ["fast", "reachability"]
        assert state["attempt"] == 1
        assert sealed["binding"]["execution"] == event["executionId"]
        assert len(sealed["sig"]) == 64
        before = svc.paths().count("/orders")

        second = handle_ecs(
            {**event, "hookDetails": first["hookDetails"]}, LocalContext(30), ecs_runtime(env)
        )
    assert second == {"hookStatus": "SUCCEEDED"}
    assert svc.paths().count("/orders") == before  # `fast` did not run again
    assert svc.paths().count("/slow") == 2


@pytest.mark.timing
def test_a_gate_fails_closed_when_its_own_budget_is_spent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Call 1 leaves `slow` unfinished; call 2 comes 61 s later, past the 60 s budget."""
    from hooks.adapters import ecs

    svc = Service(slow=4.0)
    with http_server(svc) as url:
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites(tmp_path, "slow.yaml")),
            "GREENLIGHT_TARGET_URL": url,
            "GREENLIGHT_SAFETY_MARGIN": "0.5",
            "GREENLIGHT_ECS_BUDGET": "60",
        }
        event = ecs_event()
        first = handle_ecs(event, LocalContext(3), ecs_runtime(env))
        assert first["hookStatus"] == "IN_PROGRESS", first
        later = time.time() + 61
        monkeypatch.setattr(ecs, "now", lambda: later)
        answer = handle_ecs(
            {**event, "hookDetails": first["hookDetails"]}, LocalContext(3), ecs_runtime(env)
        )
    assert answer == {"hookStatus": "FAILED"}


@pytest.mark.parametrize("value", ["soon", "0", "nan"])
def test_a_bad_gate_budget_is_a_failed_answer_naming_it(
    value: str, tmp_path: Path, service: tuple[Service, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = service
    env = {
        "GREENLIGHT_SUITES_DIR": str(suites(tmp_path, "fast.yaml")),
        "GREENLIGHT_TARGET_URL": url,
        "GREENLIGHT_ECS_BUDGET": value,
    }
    assert handle_ecs(ecs_event(), LocalContext(30), ecs_runtime(env)) == {"hookStatus": "FAILED"}
    assert any("GREENLIGHT_ECS_BUDGET" in r.getMessage() for r in caplog.records)


def test_progress_of_another_execution_is_not_trusted(tmp_path: Path) -> None:
    """hookDetails from another hook execution (another deployment) start the gate afresh."""
    svc = Service()
    with http_server(svc) as url:
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites(tmp_path, "fast.yaml")),
            "GREENLIGHT_TARGET_URL": url,
        }
        foreign = {STATE_KEY: {"execution": "another", "started": 0, "passed": ["fast"]}}
        answer = handle_ecs(ecs_event(hookDetails=foreign), LocalContext(30), ecs_runtime(env))
    assert answer == {"hookStatus": "SUCCEEDED"}
    assert "/orders" in svc.paths()  # `fast` ran: it was not skipped on another's word


def test_each_canary_step_is_tested_with_its_weights(tmp_path: Path) -> None:
    svc = Service()
    with http_server(svc) as url:
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites(tmp_path, "traffic.yaml")),
            "GREENLIGHT_TARGET_URL": url,
        }
        for step in (10, 50, 100):
            event = ecs_event("PRODUCTION_TRAFFIC_SHIFT")
            event["executionDetails"]["productionTrafficWeights"] = {GREEN: step, BLUE: 100 - step}
            answer = handle_ecs(event, LocalContext(30), ecs_runtime(env))
            assert answer == {"hookStatus": "SUCCEEDED"}
    seen = [h for path, h in svc.requests if path == "/weights"]
    assert [h["X-Production-Weight"] for h in seen] == ["10", "50", "100"]
    assert {h["X-Test-Weight"] for h in seen} == {"100"}
    assert {h["X-Stage"] for h in seen} == {"PRODUCTION_TRAFFIC_SHIFT"}


def test_a_plan_names_ecs_stages_and_matches_cluster_and_service(tmp_path: Path) -> None:
    svc = Service()
    folder = suites(tmp_path, "fast.yaml", "traffic.yaml")
    (folder / "greenlight.yaml").write_text(
        "version: 1\n"
        "defaults:\n  suites:\n    AfterAllowTestTraffic: [fast]\n"
        "groups:\n"
        "  - match: {cluster: shop-*, service: shop}\n"
        "    suites:\n      POST_TEST_TRAFFIC_SHIFT: [traffic]\n"
    )
    with http_server(svc) as url:
        env = {"GREENLIGHT_SUITES_DIR": str(folder), "GREENLIGHT_TARGET_URL": url}
        answer = handle_ecs(ecs_event(), LocalContext(30), ecs_runtime(env))
        other = handle_ecs(ecs_event("TEST_TRAFFIC_SHIFT"), LocalContext(30), ecs_runtime(env))
    assert answer == other == {"hookStatus": "SUCCEEDED"}
    # POST_TEST_TRAFFIC_SHIFT is named by the matching group; TEST_TRAFFIC_SHIFT falls back
    # to its lifecycle event in the defaults.
    assert svc.paths().count("/weights") == 1
    assert svc.paths().count("/orders") == 1


def test_discovery_finds_green_through_the_test_listener_rule(tmp_path: Path) -> None:
    """ECS and ELBv2 as their service models describe them; the load balancer's address is
    the loopback server, and the test rule routes on a header the checks must carry."""
    svc = Service()
    with http_server(svc) as url:
        port = int(url.rsplit(":", 1)[1])
        ecs = boto3.client("ecs", region_name="us-east-1")
        elbv2 = boto3.client("elbv2", region_name="us-east-1")
        lb = f"{ELB}:loadbalancer/app/shop/50dc6c495c0c9188"
        listener = lb.replace(":loadbalancer/", ":listener/") + "/f2f7dc8efc522ab2"
        rule = listener.replace(":listener/", ":listener-rule/") + "/9683b2d02a6cabee"
        prod_rule = listener.replace(":listener/", ":listener-rule/") + "/1111b2d02a6cabee"
        group = f"{ELB}:targetgroup/shop-green/73e2d6bc24d8a067"
        with Stubber(ecs) as ecs_stub, Stubber(elbv2) as elb_stub:
            # The service's greenlight:* tags choose its plan, as a deployment group's do.
            ecs_stub.add_response(
                "list_tags_for_resource",
                {"tags": [{"key": "greenlight:host", "value": "shop.example"}]},
                {"resourceArn": ecs_event()["executionDetails"]["serviceArn"]},
            )
            ecs_stub.add_response(
                "describe_service_revisions",
                {
                    "serviceRevisions": [
                        {
                            "serviceRevisionArn": GREEN,
                            "loadBalancers": [
                                {
                                    "targetGroupArn": group,
                                    "advancedConfiguration": {
                                        "alternateTargetGroupArn": group,
                                        "productionListenerRule": prod_rule,
                                        "testListenerRule": rule,
                                        "roleArn": "arn:aws:iam::123456789012:role/ecs-elb",
                                    },
                                }
                            ],
                            "resolvedConfiguration": {"loadBalancers": [{"targetGroupArn": group}]},
                        }
                    ]
                },
                {"serviceRevisionArns": [GREEN]},
            )
            elb_stub.add_response(
                "describe_rules",
                {
                    "Rules": [
                        {
                            "RuleArn": rule,
                            "Conditions": [
                                {
                                    "Field": "http-header",
                                    "HttpHeaderConfig": {
                                        "HttpHeaderName": "X-Green",
                                        "Values": ["yes"],
                                    },
                                }
                            ],
                        },
                        {"RuleArn": prod_rule, "Conditions": []},
                    ]
                },
                {"RuleArns": [rule, prod_rule]},
            )
            elb_stub.add_response(
                "describe_listeners",
                {
                    "Listeners": [
                        {
                            "ListenerArn": listener,
                            "LoadBalancerArn": lb,
                            "Port": port,
                            "Protocol": "HTTP",
                        }
                    ]
                },
                {"ListenerArns": [listener]},
            )
            elb_stub.add_response(
                "describe_load_balancers",
                {"LoadBalancers": [{"LoadBalancerArn": lb, "DNSName": "127.0.0.1"}]},
                {"LoadBalancerArns": [lb]},
            )
            elb_stub.add_response(
                "describe_target_health",
                {
                    "TargetHealthDescriptions": [
                        {
                            "Target": {"Id": "10.0.0.5", "Port": 8080},
                            "TargetHealth": {"State": "healthy"},
                        }
                    ]
                },
                {"TargetGroupArn": group},
            )
            env = {"GREENLIGHT_SUITES_DIR": str(suites(tmp_path, "fast.yaml"))}
            runtime = ecs_runtime(
                env,
                ecs_discovery=EcsDiscovery(ecs, elbv2),
                discovery=Discovery(None, elbv2),
            )
            answer = handle_ecs(ecs_event(), LocalContext(30), runtime)
            ecs_stub.assert_no_pending_responses()
            elb_stub.assert_no_pending_responses()
    assert answer == {"hookStatus": "SUCCEEDED"}
    (orders,) = [h for path, h in svc.requests if path == "/orders"]
    assert orders["X-Green"] == "yes"
    assert orders["Host"] == "shop.example"


def test_service_connect_is_reached_with_the_test_header() -> None:
    ecs = boto3.client("ecs", region_name="us-east-1")
    with Stubber(ecs) as stub:
        stub.add_response(
            "describe_service_revisions",
            {
                "serviceRevisions": [
                    {
                        "serviceRevisionArn": GREEN,
                        "serviceConnectConfiguration": {
                            "enabled": True,
                            "services": [
                                {
                                    "portName": "http",
                                    "discoveryName": "shop",
                                    "clientAliases": [{"port": 8080, "dnsName": "shop.internal"}],
                                }
                            ],
                        },
                    }
                ]
            },
            {"serviceRevisionArns": [GREEN]},
        )
        target = EcsDiscovery(ecs, None).target(DEPLOYMENT, GREEN)
    assert target.url == "http://shop.internal:8080"
    assert target.headers == {"x-amzn-ecs-bluegreen-test": "true"}
    assert target.source == "Service Connect"


def test_greenlight_invoke_prints_the_ecs_answer(
    tmp_path: Path, service: tuple[Service, str]
) -> None:
    from tests.functional.test_cli import greenlight

    _, url = service
    folder = suites(tmp_path, "fast.yaml")
    done = greenlight(
        "invoke",
        "EcsHook",
        "--event",
        str(EVENTS / "ecs_post_test_traffic_shift.json"),
        "--target-url",
        url,
        env={"GREENLIGHT_SUITES_DIR": str(folder)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"hookStatus": "SUCCEEDED"' in done.stdout


def test_ecs_hooks_prints_the_lifecycle_hooks_block() -> None:
    from tests.functional.test_cli import greenlight
    from tests.helpers import SUITES as EXAMPLES

    done = greenlight(
        "ecs-hooks",
        "--suites-dir",
        str(EXAMPLES / "examples"),
        "--hook-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:Greenlight_greenlight-EcsHook",
        "--role-arn",
        "arn:aws:iam::123456789012:role/invoke",
    )
    assert done.returncode == 0, done.stderr
    (hook,) = json.loads(done.stdout)["lifecycleHooks"]
    # The examples plan AfterAllowTestTraffic, BeforeAllowTraffic and AfterAllowTraffic.
    assert hook["lifecycleStages"] == [
        "POST_TEST_TRAFFIC_SHIFT",
        "PRE_PRODUCTION_TRAFFIC_SHIFT",
        "PRODUCTION_TRAFFIC_SHIFT",
    ]
    assert hook["roleArn"] == "arn:aws:iam::123456789012:role/invoke"
    bad = greenlight("ecs-hooks", "--stage", "AFTER_LUNCH")
    assert bad.returncode == 2
    assert "AFTER_LUNCH" in bad.stderr


class FlakyOnce(Service):
    """/slow is slow the first time only: the gate needs a second call."""

    def __call__(self, handler: Any) -> None:
        if handler.path == "/slow" and self.slow and "/slow" in self.paths():
            self.slow = 0.0
        super().__call__(handler)


def test_rehearse_walks_ecs_stages_with_a_continuation_and_a_canary(tmp_path: Path) -> None:
    from hooks.cli.console import Console
    from hooks.cli.rehearse_ecs import rehearse_ecs

    folder = suites(tmp_path, "fast.yaml", "slow.yaml", "traffic.yaml")
    (folder / "greenlight.yaml").write_text(
        "version: 1\ndefaults:\n  suites:\n"
        "    AfterAllowTestTraffic: [fast, slow]\n    AfterAllowTraffic: [traffic]\n"
    )
    svc = FlakyOnce(slow=4.0)
    out = io.StringIO()
    with http_server(svc) as url:
        rehearsal = rehearse_ecs(
            url,
            url,
            console=Console(out, color=False),
            timeout=3,
            suites_dir=folder,
            canary=(10, 50, 100),
        )
    text = out.getvalue()
    assert rehearsal.shifted, text
    assert "IN_PROGRESS: ECS calls again" in text
    stages = [(c.stage.value, c.production_weight, c.calls) for c in rehearsal.calls]
    assert stages == [
        ("POST_TEST_TRAFFIC_SHIFT", 0, 2),
        ("PRODUCTION_TRAFFIC_SHIFT", 10, 1),
        ("PRODUCTION_TRAFFIC_SHIFT", 50, 1),
        ("PRODUCTION_TRAFFIC_SHIFT", 100, 1),
    ]
    weights = [h["X-Production-Weight"] for path, h in svc.requests if path == "/weights"]
    assert weights == ["10", "50", "100"]


def test_rehearse_a_broken_release_rolls_back_without_testing_the_rollback(
    tmp_path: Path,
) -> None:
    from tests.functional.test_cli import greenlight

    svc = Service(broken=True)
    folder = suites(tmp_path, "fast.yaml")
    (folder / "greenlight.yaml").write_text(
        "version: 1\ndefaults:\n  suites:\n    AfterAllowTestTraffic: [fast]\n"
        "    AfterAllowTraffic: [fast]\n"
    )
    with http_server(svc) as url:
        done = greenlight(
            "rehearse",
            "--protocol",
            "ecs",
            "--prod-url",
            url,
            "--test-url",
            url,
            "--suites-dir",
            str(folder),
            "--timeout",
            "20",
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ECS rolls back" in done.stdout
    assert "(rollback): SUCCEEDED (not tested)" in done.stdout
    assert "Outcome: rolled back at POST_TEST_TRAFFIC_SHIFT" in done.stdout


# ---- carried state is data: forged, stale or foreign progress never skips a suite ----


def _reseal(sealed: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """What a holder of the key could write: the same binding, changed progress."""
    from hooks.aws import signing
    from hooks.gate.carried import PURPOSE

    return signing.seal(
        signing.key_from_env({}), PURPOSE, sealed["binding"], {**sealed["content"], **changes}
    )


def _first_call(env: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A call that leaves `slow` unfinished: its event and its IN_PROGRESS answer."""
    event = ecs_event()
    first = handle_ecs(event, LocalContext(3), ecs_runtime(env))
    assert first["hookStatus"] == "IN_PROGRESS", first
    return event, first


@pytest.mark.parametrize(
    "forge",
    [
        "unsigned passed list",
        "signed for another stage",
        "signed, start NaN",
        "signed, start far in the future",
        "signature of another content",
    ],
)
def test_forged_or_stale_progress_runs_every_suite_again(tmp_path: Path, forge: str) -> None:
    """GIVEN a gate whose `fast` suite fails against green
    WHEN a call carries progress saying `fast` passed (unsigned, or sealed for another
    stage, or with a start this call cannot believe, or a signature over other content)
    THEN the progress is discarded: `fast` runs again and the answer is FAILED."""
    svc = Service(slow=4.0)
    with http_server(svc) as url:
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites(tmp_path, "fast.yaml", "slow.yaml")),
            "GREENLIGHT_TARGET_URL": url,
            "GREENLIGHT_SAFETY_MARGIN": "0.5",
        }
        event, first = _first_call(env)
        sealed = first["hookDetails"][STATE_KEY]
        svc.broken = True  # from now on `fast` fails
        passed = ["fast", "reachability", "slow"]
        forged = {
            "unsigned passed list": {"execution": event["executionId"], "passed": passed},
            "signed for another stage": _reseal(
                {**sealed, "binding": {**sealed["binding"], "stage": "PRE_SCALE_UP"}},
                passed=passed,
            ),
            "signed, start NaN": _reseal(sealed, started=float("nan"), passed=passed),
            "signed, start far in the future": _reseal(
                sealed, started=time.time() + 10**9, passed=passed
            ),
            "signature of another content": {
                **sealed,
                "content": {**sealed["content"], "passed": passed},
            },
        }[forge]
        before = svc.paths().count("/orders")
        answer = handle_ecs(
            {**event, "hookDetails": {STATE_KEY: forged}}, LocalContext(30), ecs_runtime(env)
        )
    assert answer == {"hookStatus": "FAILED"}
    assert svc.paths().count("/orders") == before + 1  # `fast` ran again, and failed


def test_a_rollback_signature_that_ecs_does_not_confirm_is_tested(
    tmp_path: Path, service: tuple[Service, str]
) -> None:
    """Green at 0 % everywhere, and the ECS API denied: the call is tested as any other, so a
    failing gate answers FAILED, not SUCCEEDED untested."""
    svc, url = service
    svc.broken = True
    client = boto3.client("ecs", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error(
        "describe_service_deployments", "AccessDeniedException", "not authorized"
    )
    answer = _answer_rollback(tmp_path, url, client, stubber)  # ECS was asked: no answer
    assert answer == {"hookStatus": "FAILED"}
    assert "/orders" in svc.paths()


def test_without_a_signing_key_in_lambda_a_gate_cannot_go_on_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = Service(slow=4.0)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "Greenlight-EcsHook")
    with http_server(svc) as url:
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites(tmp_path, "fast.yaml", "slow.yaml")),
            "GREENLIGHT_TARGET_URL": url,
            "GREENLIGHT_SAFETY_MARGIN": "0.5",
            "AWS_LAMBDA_FUNCTION_NAME": "Greenlight-EcsHook",
        }
        answer = handle_ecs(ecs_event(), LocalContext(3), ecs_runtime(env))
    assert answer == {"hookStatus": "FAILED"}


def test_greenlight_invoke_of_the_ecs_hook_follows_the_one_exit_rule(
    tmp_path: Path, service: tuple[Service, str]
) -> None:
    """0 passed, 1 failed, 2 cannot run as configured — for the ECS hook as for CodeDeploy's:
    a malformed event and a plan the ECS hook refuses exit 2, naming why; a failing suite
    exits 1."""
    from tests.functional.test_cli import greenlight

    _, url = service
    bad_event = tmp_path / "bad.json"
    bad_event.write_text(json.dumps({"executionId": "e-1", "lifecycleStage": "NOT_A_STAGE"}))
    (tmp_path / "refused").mkdir()
    (tmp_path / "failing").mkdir()
    refused = suites(tmp_path / "refused", "fast.yaml")
    (refused / "greenlight.yaml").write_text("version: 1\ndefaults:\n  runner: stepfunctions\n")
    failing = suites(tmp_path / "failing", "fast.yaml")
    (failing / "broken.yaml").write_text(
        "name: broken\nchecks:\n  - name: missing\n    request: {path: /nope}\n"
        "    assert:\n      - status: 299\n"
    )
    good_event = str(EVENTS / "ecs_post_test_traffic_shift.json")
    cases = {
        "malformed": (str(bad_event), refused, 2, "unknown lifecycleStage 'NOT_A_STAGE'"),
        "refused": (good_event, refused, 2, "configuration error"),
        "failing": (good_event, failing, 1, '"hookStatus": "FAILED"'),
    }
    for name, (event, folder, code, said) in cases.items():
        done = greenlight(
            "invoke",
            "EcsHook",
            "--event",
            event,
            "--target-url",
            url,
            env={"GREENLIGHT_SUITES_DIR": str(folder)},
        )
        output = done.stdout + done.stderr
        assert (name, done.returncode) == (name, code), output
        assert said in output, (name, output)
