"""Discovery of the green stack, on moto's CodeDeploy and ELBv2 (Stubber where moto cannot).

The topology is the seed article's: one ALB with a production listener on 443 and a test
listener on 8443, two target groups, a BLUE_GREEN / WITH_TRAFFIC_CONTROL deployment group.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from hooks.adapters.hook import handle
from hooks.aws.codedeploy import CodeDeployCallback
from hooks.aws.discovery import Discovery
from hooks.cli.local import LocalContext
from hooks.core.deadline import Deadline
from hooks.core.exceptions import DiscoveryError, TargetNotReadyError
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.log import get_logger
from hooks.gate.summary import Runtime
from tests.functional.test_hook_protocol import expect_report

REGION = "us-east-1"
APP = "AppECS-sample-springboot-app-qa-bg"
GROUP = "DgpECS-sample-springboot-app-qa-bg"


@dataclass
class Topology:
    codedeploy: Any
    elbv2: Any
    ec2: Any
    dns_name: str
    prod_listener: str
    test_listener: str
    green_tg: str
    blue_tg: str
    deployment_id: str

    def discovery(self) -> Discovery:
        return Discovery(self.codedeploy, self.elbv2)


def build(
    https: bool = True,
    lb_info: bool = True,
    tags: dict[str, str] | None = None,
    *,
    scheme: str = "internet-facing",
    target_protocol: str = "HTTP",
) -> Topology:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}"
        )["Subnet"]["SubnetId"]
        for i, zone in ((1, "a"), (2, "b"))
    ]
    elb = boto3.client("elbv2", region_name=REGION)
    lb = elb.create_load_balancer(
        Name="sample-springboot-app-qa-alb",
        Subnets=subnets,
        Scheme=scheme,
        Type="application",
    )["LoadBalancers"][0]
    groups = [
        elb.create_target_group(
            Name=f"sample-springboot-app-qa-tg{i}",
            Protocol=target_protocol,
            Port=8080,
            VpcId=vpc,
            TargetType="ip",
        )["TargetGroups"][0]
        for i in (1, 2)
    ]
    green, blue = (g["TargetGroupArn"] for g in groups)
    listener: dict[str, Any] = {"Protocol": "HTTP"}
    if https:
        cert = boto3.client("acm", region_name=REGION).request_certificate(
            DomainName="app.example.com"
        )["CertificateArn"]
        listener = {"Protocol": "HTTPS", "Certificates": [{"CertificateArn": cert}]}
    ports = (443, 8443) if https else (80, 8080)
    prod = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Port=ports[0],
        DefaultActions=[{"Type": "forward", "TargetGroupArn": blue}],
        **listener,
    )["Listeners"][0]["ListenerArn"]
    test = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Port=ports[1],
        DefaultActions=[{"Type": "forward", "TargetGroupArn": green}],
        **listener,
    )["Listeners"][0]["ListenerArn"]
    codedeploy = boto3.client("codedeploy", region_name=REGION)
    codedeploy.create_application(applicationName=APP, computePlatform="ECS")
    extra: dict[str, Any] = {}
    if lb_info:
        extra["loadBalancerInfo"] = {
            "targetGroupPairInfoList": [
                {
                    "targetGroups": [{"name": g["TargetGroupName"]} for g in groups],
                    "prodTrafficRoute": {"listenerArns": [prod]},
                    "testTrafficRoute": {"listenerArns": [test]},
                }
            ]
        }
    codedeploy.create_deployment_group(
        applicationName=APP,
        deploymentGroupName=GROUP,
        deploymentConfigName="CodeDeployDefault.ECSAllAtOnce",
        serviceRoleArn="arn:aws:iam::123456789012:role/ecs_service_role",
        deploymentStyle={
            "deploymentType": "BLUE_GREEN",
            "deploymentOption": "WITH_TRAFFIC_CONTROL",
        },
        blueGreenDeploymentConfiguration={
            "terminateBlueInstancesOnDeploymentSuccess": {
                "action": "TERMINATE",
                "terminationWaitTimeInMinutes": 15,
            },
            "deploymentReadyOption": {"actionOnTimeout": "CONTINUE_DEPLOYMENT"},
        },
        ecsServices=[{"serviceName": "sample-springboot-app-qa", "clusterName": "my-test-cluster"}],
        tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
        **extra,
    )
    deployment_id = codedeploy.create_deployment(
        applicationName=APP,
        deploymentGroupName=GROUP,
        revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": "{}"}},
    )["deploymentId"]
    elb.register_targets(TargetGroupArn=green, Targets=[{"Id": "10.0.1.10", "Port": 8080}])
    return Topology(codedeploy, elb, ec2, lb["DNSName"], prod, test, green, blue, deployment_id)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.mark.usefixtures("aws")
def test_the_seed_topology_gives_the_test_and_production_urls() -> None:
    topology = build(https=True)
    discovery = topology.discovery()
    deployment = discovery.deployment(topology.deployment_id)
    assert (deployment.application, deployment.deployment_group) == (APP, GROUP)
    stack = discovery.stack(deployment)
    assert stack.test.url == f"https://{topology.dns_name}:8443"
    assert stack.prod is not None
    assert stack.prod.url == f"https://{topology.dns_name}:443"
    assert stack.green_target_groups == (topology.green_tg,)
    test_url, prod_url = stack.urls(LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC)
    assert (test_url, prod_url) == (stack.test.url, stack.prod.url)
    # After AllowTraffic the production listener is the one that serves green.
    assert stack.urls(LifecycleEvent.AFTER_ALLOW_TRAFFIC) == (stack.prod.url, stack.prod.url)


@pytest.mark.usefixtures("aws")
def test_http_listeners_give_http_urls() -> None:
    topology = build(https=False)
    stack = topology.discovery().stack(topology.discovery().deployment(topology.deployment_id))
    assert stack.test.url == f"http://{topology.dns_name}:8080"
    assert stack.prod is not None
    assert stack.prod.url == f"http://{topology.dns_name}:80"


@pytest.mark.usefixtures("aws")
def test_a_deployment_group_without_load_balancer_info_says_what_to_fix() -> None:
    topology = build(lb_info=False)
    discovery = topology.discovery()
    with pytest.raises(
        DiscoveryError, match=r"has no loadBalancerInfo\.targetGroupPairInfoList"
    ) as info:
        discovery.stack(discovery.deployment(topology.deployment_id))
    assert "GREENLIGHT_TARGET_URL" in str(info.value)


@pytest.mark.usefixtures("aws")
def test_a_listener_deleted_mid_deployment_is_named() -> None:
    topology = build()
    topology.elbv2.delete_listener(ListenerArn=topology.test_listener)
    discovery = topology.discovery()
    with pytest.raises(DiscoveryError, match="no longer exists") as info:
        discovery.stack(discovery.deployment(topology.deployment_id))
    assert topology.test_listener in str(info.value)


@pytest.mark.usefixtures("aws")
def test_an_unknown_deployment_names_the_call() -> None:
    topology = build()
    with pytest.raises(
        DiscoveryError,
        match=r"codedeploy:GetDeployment failed: "
        r"DeploymentDoesNotExistException",
    ):
        topology.discovery().deployment("d-NOPE12345")


@pytest.mark.timing
@pytest.mark.usefixtures("aws")
def test_healthy_green_targets_are_ready_at_once() -> None:
    topology = build()
    sleeps: list[float] = []
    topology.discovery().wait_ready(
        (topology.green_tg,), timeout=30, deadline=Deadline.in_seconds(30), sleep=sleeps.append
    )
    assert sleeps == []


@pytest.mark.timing
@pytest.mark.usefixtures("aws")
def test_green_targets_that_never_recover_are_named_with_their_reasons() -> None:
    topology = build()
    image = topology.ec2.describe_images()["Images"][0]["ImageId"]
    instance = topology.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    topology.elbv2.register_targets(
        TargetGroupArn=topology.green_tg, Targets=[{"Id": instance, "Port": 8080}]
    )
    topology.ec2.stop_instances(InstanceIds=[instance])
    with pytest.raises(TargetNotReadyError) as info:
        topology.discovery().wait_ready(
            (topology.green_tg,), timeout=1, deadline=Deadline.in_seconds(30), interval=0.2
        )
    message = str(info.value)
    checks = re.search(r"after (\d+) checks", message)
    assert checks is not None
    assert int(checks.group(1)) >= 2  # it polled before giving up
    assert f"target {instance}:8080 is unused (Target.InvalidState" in message
    assert "10.0.1.10" not in message  # the healthy one is not blamed


@pytest.mark.timing
@pytest.mark.usefixtures("aws")
def test_an_unhealthy_green_stack_fails_the_hook_within_the_deadline(
    tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    topology = build()
    topology.elbv2.deregister_targets(
        TargetGroupArn=topology.green_tg, Targets=[{"Id": "10.0.1.10", "Port": 8080}]
    )
    _, stubber = codedeploy
    event = {"DeploymentId": topology.deployment_id, "LifecycleEventHookExecutionId": "exec-1"}
    expect_report(stubber, "Failed", event)
    stream = io.StringIO()
    get_logger(stream=stream, level="INFO")
    result = handle(
        event,
        LocalContext(6),
        LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
        Runtime(
            protocol=callback,
            discovery=topology.discovery(),
            env={"GREENLIGHT_SUITES_DIR": str(tmp_path)},
        ),
    )
    assert result["verdict"] == "Failed"
    assert "TargetNotReadyError" in result["reason"]
    assert "sample-springboot-app-qa-tg1 has no registered targets" in result["reason"]
    assert result["duration"] < 6
    waiting = [
        json.loads(line)
        for line in stream.getvalue().splitlines()
        if "waiting for the green targets" in line
    ]
    assert waiting  # the wait is visible in the log, with what is not ready
    assert waiting[0]["not_ready"] == ["sample-springboot-app-qa-tg1 has no registered targets"]


@pytest.mark.timing
@pytest.mark.usefixtures("aws")
def test_the_hook_hands_the_discovered_urls_and_tagged_plan_to_the_suites(
    tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    topology = build(tags={"greenlight:suites": "where", "greenlight:host": "app.example.com"})
    (tmp_path / "test_where.py").write_text(
        "def test_urls(target):\n"
        f"    assert target.url == 'https://{topology.dns_name}:8443'\n"
        f"    assert target.prod_url == 'https://{topology.dns_name}:443'\n"
        "    assert target.host == 'app.example.com'\n"
        "def test_cloudwatch_dimensions(target, deployment):\n"
        f"    assert target.dimensions == {expected_dimensions(topology)!r}\n"
        "    import time\n"
        "    assert 0 <= time.time() - deployment.since < 30\n"
    )
    _, stubber = codedeploy
    event = {"DeploymentId": topology.deployment_id, "LifecycleEventHookExecutionId": "exec-2"}
    expect_report(stubber, "Succeeded", event)
    result = handle(
        event,
        LocalContext(30),
        LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
        Runtime(
            protocol=callback,
            discovery=topology.discovery(),
            env={"GREENLIGHT_SUITES_DIR": str(tmp_path)},
        ),
    )
    assert result["verdict"] == "Succeeded", result
    assert result["target"] == f"https://{topology.dns_name}:8443"
    assert result["suites"] == 1  # the tag chose "where", not reachability


def expected_dimensions(topology: Topology) -> dict[str, str]:
    """Green's CloudWatch dimensions, as the load balancer's own ARNs spell them."""
    lb = topology.elbv2.describe_listeners(ListenerArns=[topology.test_listener])["Listeners"][0]
    return {
        "LoadBalancer": lb["LoadBalancerArn"].split(":loadbalancer/")[1],
        "TargetGroup": "targetgroup/" + topology.green_tg.split(":targetgroup/")[1],
    }


def test_the_deployment_group_is_read_when_the_deployment_lacks_load_balancer_info() -> None:
    codedeploy = boto3.client("codedeploy", region_name=REGION)
    with Stubber(codedeploy) as stub:
        stub.add_response(
            "get_deployment",
            {"deploymentInfo": {"applicationName": APP, "deploymentGroupName": GROUP}},
            {"deploymentId": "d-ABC"},
        )
        stub.add_response(
            "get_deployment_group",
            {
                "deploymentGroupInfo": {
                    "loadBalancerInfo": {
                        "targetGroupPairInfoList": [
                            {"testTrafficRoute": {"listenerArns": ["arn:l/test"]}}
                        ]
                    },
                    "serviceRoleArn": "arn:aws:iam::111122223333:role/cd",
                }
            },
            {"applicationName": APP, "deploymentGroupName": GROUP},
        )
        deployment = Discovery(codedeploy, None).deployment("d-ABC")
    assert deployment.load_balancer_info["targetGroupPairInfoList"][0]["testTrafficRoute"]
    assert deployment.service_role_arn == "arn:aws:iam::111122223333:role/cd"


def test_a_missing_permission_names_the_action_to_grant() -> None:
    elbv2 = boto3.client("elbv2", region_name=REGION)
    codedeploy = boto3.client("codedeploy", region_name=REGION)
    with Stubber(elbv2) as stub:
        stub.add_client_error(
            "describe_listeners",
            service_error_code="AccessDenied",
            service_message="User is not authorized",
            http_status_code=403,
        )
        from hooks.aws.discovery import Deployment

        deployment = Deployment(
            "d-1",
            APP,
            GROUP,
            {
                "targetGroupPairInfoList": [
                    {"testTrafficRoute": {"listenerArns": ["arn:aws:elasticloadbalancing:l/1"]}}
                ]
            },
        )
        with pytest.raises(DiscoveryError) as info:
            Discovery(codedeploy, elbv2).stack(deployment)
    assert str(info.value) == (
        "elasticloadbalancing:DescribeListeners failed: AccessDenied: User is not authorized "
        "-> the hook's role is missing the permission elasticloadbalancing:DescribeListeners; "
        "grant it (template.yaml's role has it)"
    )
