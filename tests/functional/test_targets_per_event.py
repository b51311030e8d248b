"""The right tasks at every lifecycle event, HTTPS by default, and proof that it was green.

moto plays ELBv2, ACM and CodeDeploy with the seed's topology (an ALB with 443 and 8443,
two target groups); loopback servers on several 127.0.0.x addresses stand in for the
green tasks, one of them broken; trustme certificates stand in for a custom-domain TLS
listener reached at an address whose name does not match.
"""

from __future__ import annotations

import io
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import trustme
from botocore.stub import Stubber

from hooks.adapters.hook import handle
from hooks.aws.codedeploy import CodeDeployCallback
from hooks.cli.local import LocalContext
from hooks.core.exceptions import DiscoveryError
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.log import get_logger
from hooks.core.settings import Settings
from hooks.gate.plan import resolve_plan
from hooks.gate.summary import Runtime
from hooks.gate.targets import with_host
from hooks.process.messages import GreenTask
from hooks.process.worker import fan_out
from hooks.suites.base import CheckSuite
from hooks.suites.registry import BrokenSuite
from tests.functional.test_discovery import REGION, Topology, build
from tests.functional.test_hook_protocol import EVENT, expect_report
from tests.helpers import each, http_server, reply

AI = LifecycleEvent.AFTER_INSTALL
AATT = LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC
SMOKE = "name: smoke\nchecks:\n  - name: root answers\n    request: {path: /}\n"


@pytest.fixture
def aws() -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


def forward(arn: str) -> list[dict[str, Any]]:
    return [{"Type": "forward", "TargetGroupArn": arn}]


def run_hook(
    topology: Topology,
    callback: CodeDeployCallback,
    stubber: Stubber,
    event: LifecycleEvent,
    status: str,
    env: dict[str, str],
    seconds: float = 30,
) -> dict[str, Any]:
    payload = {"DeploymentId": topology.deployment_id, "LifecycleEventHookExecutionId": "exec-9"}
    expect_report(stubber, status, payload)
    return handle(
        payload,
        LocalContext(seconds),
        event,
        Runtime(protocol=callback, discovery=discovery(topology), env=env),
    )


def discovery(topology: Topology) -> Any:
    from hooks.aws.discovery import Discovery

    return Discovery(
        topology.codedeploy, topology.elbv2, acm=boto3.client("acm", region_name=REGION)
    )


def register(topology: Topology, urls: list[str]) -> None:
    """Put the loopback 'tasks' in the green target group, instead of the default one."""
    topology.elbv2.deregister_targets(
        TargetGroupArn=topology.green_tg, Targets=[{"Id": "10.0.1.10", "Port": 8080}]
    )
    targets = []
    for url in urls:
        address, port = url.split("//")[1].rsplit(":", 1)
        targets.append({"Id": address, "Port": int(port)})
    topology.elbv2.register_targets(TargetGroupArn=topology.green_tg, Targets=targets)


# ---- which target group is green ----


@pytest.mark.usefixtures("aws")
def test_green_comes_from_the_pair_and_production_not_from_the_test_listener() -> None:
    topology = build()
    # AfterInstall: the test listener still forwards to the original (blue) group.
    topology.elbv2.modify_listener(
        ListenerArn=topology.test_listener, DefaultActions=forward(topology.blue_tg)
    )
    found = discovery(topology)
    stack = found.stack(found.deployment(topology.deployment_id), AI)
    assert [g.arn for g in stack.green] == [topology.green_tg]
    assert stack.green_source.startswith("the target-group pair")
    # After AllowTraffic, production serves green: green is production's group.
    topology.elbv2.modify_listener(
        ListenerArn=topology.prod_listener, DefaultActions=forward(topology.green_tg)
    )
    after = found.stack(
        found.deployment(topology.deployment_id), LifecycleEvent.AFTER_ALLOW_TRAFFIC
    )
    assert [g.arn for g in after.green] == [topology.green_tg]


@pytest.mark.usefixtures("aws")
def test_a_test_listener_that_still_forwards_to_blue_fails_the_gate_naming_it(
    tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    topology = build(https=False)
    topology.elbv2.modify_listener(
        ListenerArn=topology.test_listener, DefaultActions=forward(topology.blue_tg)
    )
    (tmp_path / "smoke.yaml").write_text(SMOKE)
    _, stubber = codedeploy
    result = run_hook(
        topology, callback, stubber, AATT, "Failed", {"GREENLIGHT_SUITES_DIR": str(tmp_path)}
    )
    assert (
        "forwards to sample-springboot-app-qa-tg2, not to this deployment's green "
        in (result["reason"])
    )
    assert "sample-springboot-app-qa-tg1" in result["reason"]
    assert result["checks"] == 0  # nothing ran against blue


@pytest.mark.usefixtures("aws")
def test_the_rule_for_the_planned_host_is_the_route_that_must_reach_green() -> None:
    topology = build(https=False)
    # The default action still goes to blue; the service's host has its own rule to green.
    topology.elbv2.modify_listener(
        ListenerArn=topology.test_listener, DefaultActions=forward(topology.blue_tg)
    )
    topology.elbv2.create_rule(
        ListenerArn=topology.test_listener,
        Priority=10,
        Conditions=[
            {"Field": "host-header", "HostHeaderConfig": {"Values": ["orders.example.com"]}}
        ],
        Actions=forward(topology.green_tg),
    )
    found = discovery(topology)
    stack = found.stack(found.deployment(topology.deployment_id), AATT)
    stack.prove_green("orders.example.com")  # the rule: green
    with pytest.raises(DiscoveryError, match="its default action"):
        stack.prove_green(None)
    with pytest.raises(DiscoveryError, match=r"host other\.example\.com"):
        stack.prove_green("other.example.com")


# ---- HTTPS host names ----


def plan(**env: str) -> Any:
    return resolve_plan(AATT, Settings.from_env(env))


@pytest.mark.usefixtures("aws")
def test_an_https_listener_gets_its_host_from_an_exact_host_rule() -> None:
    topology = build(https=True)
    topology.elbv2.create_rule(
        ListenerArn=topology.test_listener,
        Priority=5,
        Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": ["shop.example.com"]}}],
        Actions=forward(topology.green_tg),
    )
    found = discovery(topology)
    stack = found.stack(found.deployment(topology.deployment_id), AATT)
    resolved = with_host(plan(), stack, found)
    assert resolved.host == "shop.example.com"
    assert resolved.sources["host"].startswith("derived from the test listener's rule arn:")


@pytest.mark.usefixtures("aws")
def test_an_https_listener_gets_its_host_from_its_certificate_skipping_wildcards() -> None:
    topology = build(https=True)  # certificate for app.example.com
    found = discovery(topology)
    stack = found.stack(found.deployment(topology.deployment_id), AATT)
    resolved = with_host(plan(), stack, found)
    assert resolved.host == "app.example.com"
    assert resolved.sources["host"].startswith("derived from the test listener's certificate")
    wildcard = boto3.client("acm", region_name=REGION).request_certificate(
        DomainName="*.example.com", SubjectAlternativeNames=["*.example.com", "pay.example.com"]
    )["CertificateArn"]
    stack = replace(stack, certificate_arn=wildcard)
    assert with_host(plan(), stack, found).host == "pay.example.com"
    # A configured host wins, with its own source.
    configured = with_host(plan(GREENLIGHT_TARGET_HOST="mine.example.com"), stack, found)
    assert configured.sources["host"] == "env GREENLIGHT_TARGET_HOST"


# ---- every task, not one ----


def broken(handler: BaseHTTPRequestHandler) -> None:
    reply(handler, 503, {"error": "this task is broken"})


def healthy(handler: BaseHTTPRequestHandler) -> None:
    reply(handler, 200, {"status": "ok"})


@pytest.mark.usefixtures("aws")
def test_after_install_tests_each_green_task_directly_and_one_bad_task_fails(
    tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    topology = build(https=False)
    # AfterInstall: both listeners still send everything to blue.
    topology.elbv2.modify_listener(
        ListenerArn=topology.test_listener, DefaultActions=forward(topology.blue_tg)
    )
    (tmp_path / "smoke.yaml").write_text(SMOKE)
    _, stubber = codedeploy
    with ExitStack() as stack:
        urls = [
            stack.enter_context(http_server(handler, f"127.0.0.{i}"))
            for i, handler in ((2, healthy), (3, broken), (4, healthy))
        ]
        register(topology, urls)
        result = run_hook(
            topology, callback, stubber, AI, "Failed", {"GREENLIGHT_SUITES_DIR": str(tmp_path)}
        )
    bad = urls[1].removeprefix("http://")
    assert result["reason"].startswith("suites failed:")
    assert any(f"smoke @ {bad} / root answers" in f and "503" in f for f in result["failed"])
    good = [u.removeprefix("http://") for u in (urls[0], urls[2])]
    assert not any(g in f for g in each(good) for f in result["failed"])
    # Every task ran every suite (smoke and the built-in reachability), nothing through a listener.
    assert result["suites"] == 6
    assert result["counts"]["passed"] == 4


@pytest.mark.usefixtures("aws")
def test_after_install_reaches_tls_tasks_with_the_certificates_host_name(
    tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    topology = build(https=True, target_protocol="HTTPS")  # certificate: app.example.com
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "smoke.yaml").write_text(SMOKE)
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    sni: list[str | None] = []
    _, stubber = codedeploy
    with tls_task(ca, "app.example.com", "127.0.0.5", sni) as url:
        register(topology, [url])
        env = {
            "GREENLIGHT_SUITES_DIR": str(tmp_path / "suites"),
            "GREENLIGHT_CA_BUNDLE": str(ca_file),
        }
        result = run_hook(topology, callback, stubber, AI, "Succeeded", env)
    assert result["verdict"] == "Succeeded", result
    assert set(sni) == {"app.example.com"}  # not 127.0.0.5: verified against the service's name


@contextmanager
def tls_task(ca: trustme.CA, name: str, address: str, sni: list[str | None]) -> Iterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    context.sni_callback = lambda sock, server_name, ctx: sni.append(server_name)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            reply(self, 200, {"ok": True})

    server = ThreadingHTTPServer((address, 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://{address}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_per_target_suites_run_through_the_listener_and_on_every_task() -> None:
    one = CheckSuite(name="one", kind="http", checks=[])
    every = CheckSuite(name="every", kind="http", checks=[])
    every.per_target = True
    missing = BrokenSuite("gone", "missing", "planned suite 'gone' does not exist")
    green = [
        GreenTask("http://127.0.0.2:81", "127.0.0.2:81"),
        GreenTask("http://127.0.0.3:81", "127.0.0.3:81"),
    ]
    names = [
        s.name
        for s in fan_out([one, every, missing], green, all_suites=False, through_listener=True)
    ]
    assert names == ["one", "every", "every @ 127.0.0.2:81", "every @ 127.0.0.3:81", "gone"]
    # The plan's per_target (and AfterInstall) fans out every suite; AfterInstall not the listener.
    names = [s.name for s in fan_out([one], green, all_suites=True, through_listener=False)]
    assert names == ["one @ 127.0.0.2:81", "one @ 127.0.0.3:81"]


# ---- BeforeInstall and production ----


def test_before_install_refuses_checks_that_address_the_test_listener(
    tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    (tmp_path / "preflight.yaml").write_text(
        "name: preflight\nchecks:\n"
        "  - name: production answers\n    request: {path: /, listener: prod}\n"
        "  - name: green answers\n    request: {path: /health}\n"
    )
    _, stubber = codedeploy
    with http_server(healthy) as prod:
        expect_report(stubber, "Failed")
        result = handle(
            EVENT,
            LocalContext(20),
            LifecycleEvent.BEFORE_INSTALL,
            Runtime(
                protocol=callback,
                env={
                    "GREENLIGHT_SUITES_DIR": str(tmp_path),
                    "GREENLIGHT_PROD_URL": prod,
                    "GREENLIGHT_TARGET_URL": "http://127.0.0.1:9",
                },
            ),
        )
    (failure,) = [f for f in result["failed"] if f.startswith("preflight")]
    assert "check 'green answers' addresses the test listener" in failure
    assert "listener: prod" in failure
    assert result["target"] == prod  # BeforeInstall's target is production


@pytest.mark.parametrize(
    "check",
    [
        "request: {path: /, listener: prod}",
        'request: {url: "${target.prod_url}/status"}',
    ],
)
def test_production_without_a_production_url_is_an_error_never_green(
    tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback, check: str
) -> None:
    (tmp_path / "prod.yaml").write_text(f"name: prod\nchecks:\n  - name: blue\n    {check}\n")
    seen: list[str] = []

    def record(handler: BaseHTTPRequestHandler) -> None:
        seen.append(handler.path)
        reply(handler, 200, {})

    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    with http_server(record) as green:
        result = handle(
            EVENT,
            LocalContext(20),
            AATT,
            Runtime(
                protocol=callback,
                env={
                    "GREENLIGHT_SUITES_DIR": str(tmp_path),
                    "GREENLIGHT_TARGET_URL": green,
                    "GREENLIGHT_SUITES": "prod",
                },
            ),
        )
    (failure,) = result["failed"]
    assert "no production URL is known" in failure
    assert seen == []  # nothing was sent to green in production's place


# ---- reachability told plainly ----


@pytest.mark.usefixtures("aws")
def test_an_internal_load_balancer_outside_a_vpc_is_named_in_the_warning_and_the_verdict(
    tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    topology = build(https=False, scheme="internal")
    stream = io.StringIO()
    get_logger(stream=stream, level="INFO")
    _, stubber = codedeploy
    env = {
        "GREENLIGHT_SUITES_DIR": str(tmp_path),
        "GREENLIGHT_IN_VPC": "false",
        "GREENLIGHT_REQUEST_TIMEOUT": "2",
    }
    result = run_hook(topology, callback, stubber, AATT, "Failed", env)
    assert result["reason"].endswith(
        "(internal load balancer: deploy with SubnetIds/SecurityGroupIds)"
    )
    warnings = [json.loads(line) for line in stream.getvalue().splitlines() if '"WARNING"' in line]
    assert any("is internal and this function is not in a VPC" in w["message"] for w in warnings)
