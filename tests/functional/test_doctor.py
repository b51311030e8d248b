"""``greenlight doctor`` against accounts built in moto: a healthy one gives every ✔, and
each broken piece gives its ✘ with its fix. moto has no IAM policy simulator: that one call
is answered by a Stubber, which checks it against IAM's model."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from hooks.cli.doctor import Doctor, Finding
from tests.helpers import each

REGION = "us-east-1"
#: boto3's own client, kept: the command's test puts the account's in its place.
CLIENT = boto3.client
SUITE = (
    "name: smoke\nchecks:\n  - name: up\n    request:\n      path: /health\n"
    "      headers: {Authorization: 'Bearer ${secret:shop/api}'}\n"
)


@dataclass
class Account:
    """What the checks read, built in moto; ``iam`` answers the policy simulation."""

    suites: Path
    hooks: dict[str, str] = field(default_factory=dict)
    #: The service role may not invoke the hooks.
    deny: bool = False
    #: The hook's role may not read the suites' secret.
    deny_secret: bool = False
    #: The hook's subnets route 0.0.0.0/0 through a NAT gateway.
    nat: bool = True
    readiness_timeout: int | None = None
    iam_calls: int = 0
    internal: bool = False
    in_vpc: bool = False
    open_port: bool = True
    test_listener: bool = True
    forward_to_pair: bool = True
    hook_prefix: str = "CodeDeployHook_"
    secret: bool = True

    def client(self, service: str) -> Any:
        if service == "cloudformation":
            return self._stack()
        if service != "iam":
            return CLIENT(service, region_name=REGION)  # type: ignore[call-overload]
        iam = CLIENT("iam", region_name=REGION)
        stubber = Stubber(iam)
        self.iam_calls += 1
        first = self.iam_calls == 1  # the invoke right first, then each secret's read
        action = "lambda:InvokeFunction" if first else "secretsmanager:GetSecretValue"
        denied = self.deny if first else self.deny_secret
        results = [
            {
                "EvalActionName": action,
                "EvalResourceName": arn,
                "EvalDecision": "implicitDeny" if denied else "allowed",
            }
            for arn in (self.hooks.values() if first else ["the secret"])
        ]
        stubber.add_response(
            "simulate_principal_policy",
            {"EvaluationResults": results},
            {"PolicySourceArn": ANY, "ActionNames": [action], "ResourceArns": ANY},
        )
        stubber.activate()
        return iam

    def _stack(self) -> Any:
        """The stack's outputs (moto's CloudFormation needs extras the project does not
        install): a Stubber, checked against CloudFormation's model."""
        cloudformation = CLIENT("cloudformation", region_name=REGION)
        stubber = Stubber(cloudformation)
        outputs = [
            {"OutputKey": f"{event}HookArn", "OutputValue": arn}
            for event, arn in self.hooks.items()
        ]
        stubber.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "greenlight",
                        "CreationTime": "2026-12-01T00:00:00Z",
                        "StackStatus": "CREATE_COMPLETE",
                        "Outputs": outputs,
                    }
                ]
            },
            {"StackName": "greenlight"},
        )
        stubber.activate()
        return cloudformation


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def build(account: Account) -> None:
    """A stack with its hook, an ALB with production and test listeners, a deployment
    group that names them, and a secret the suites read."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    hook_sg = ec2.create_security_group(GroupName="hook", Description="hook", VpcId=vpc)["GroupId"]
    lb_sg = ec2.create_security_group(GroupName="alb", Description="alb", VpcId=vpc)["GroupId"]
    if account.open_port:
        ec2.authorize_security_group_ingress(
            GroupId=lb_sg,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 8443,
                    "ToPort": 8443,
                    "UserIdGroupPairs": [{"GroupId": hook_sg}],
                }
            ],
        )
    elbv2 = boto3.client("elbv2", region_name=REGION)
    balancer = elbv2.create_load_balancer(
        Name="shop",
        Subnets=subnets,
        SecurityGroups=[lb_sg],
        Scheme="internal" if account.internal else "internet-facing",
    )["LoadBalancers"][0]["LoadBalancerArn"]
    groups = [
        elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][0]
        for name in ("shop-blue", "shop-green", "elsewhere")
    ]
    listeners = {}
    for port, target in ((80, groups[0]), (8443, groups[1 if account.forward_to_pair else 2])):
        listeners[port] = elbv2.create_listener(
            LoadBalancerArn=balancer,
            Protocol="HTTP",
            Port=port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": target["TargetGroupArn"]}],
        )["Listeners"][0]["ListenerArn"]
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="hooks", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    name = f"{account.hook_prefix}shop-AfterAllowTestTraffic"
    config: dict[str, Any] = {"Timeout": 600}
    if account.in_vpc:
        config["VpcConfig"] = {"SubnetIds": subnets, "SecurityGroupIds": [hook_sg]}
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        for subnet in subnets:
            ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
        if account.nat:
            address = ec2.allocate_address(Domain="vpc")["AllocationId"]
            nat = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=address)
            ec2.create_route(
                RouteTableId=table,
                DestinationCidrBlock="0.0.0.0/0",
                NatGatewayId=nat["NatGateway"]["NatGatewayId"],
            )
    arn = boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": _zip()},
        **config,
    )["FunctionArn"]
    account.hooks["AfterAllowTestTraffic"] = arn
    codedeploy = boto3.client("codedeploy", region_name=REGION)
    codedeploy.create_application(applicationName="shop", computePlatform="ECS")
    route = {"listenerArns": [listeners[8443]]} if account.test_listener else {}
    pair = {
        "targetGroups": [{"name": "shop-blue"}, {"name": "shop-green"}],
        "prodTrafficRoute": {"listenerArns": [listeners[80]]},
        **({"testTrafficRoute": route} if route else {}),
    }
    codedeploy.create_deployment_group(
        applicationName="shop",
        deploymentGroupName="shop-dg",
        serviceRoleArn=role,
        loadBalancerInfo={"targetGroupPairInfoList": [pair]},
    )
    if account.secret:
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="shop/api", SecretString="{}"
        )
    account.suites.mkdir(exist_ok=True)
    (account.suites / "smoke.yaml").write_text(SUITE)
    if account.readiness_timeout is not None:
        (account.suites / "greenlight.yaml").write_text(
            f"version: 1\ndefaults:\n  readiness_timeout: {account.readiness_timeout}\n"
        )


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def diagnose(account: Account, appspec: Path | None = None) -> list[Finding]:
    build(account)
    return Doctor(account.client, "greenlight", "shop", "shop-dg", account.suites, appspec).run()


def failed(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings if not f.ok}


def test_a_healthy_account_passes_every_check(aws: None, tmp_path: Path) -> None:
    findings = diagnose(Account(tmp_path / "suites"))
    assert failed(findings) == {}
    checks = [f.check for f in each(findings)]
    assert "the service role may invoke every hook" in checks
    assert "${secret:shop/api} exists" in checks


BROKEN: dict[str, tuple[dict[str, Any], str, str]] = {
    "a hook not named CodeDeployHook_*": (
        {"hook_prefix": "Greenlight_"},
        "AfterAllowTestTraffic hook is named CodeDeployHook_*",
        "AWSCodeDeployRoleForECSLimited may invoke no other",
    ),
    "a role that may not invoke the hook": (
        {"deny": True},
        "the service role may invoke every hook",
        "allow lambda:InvokeFunction on",
    ),
    "no test listener": (
        {"test_listener": False},
        "deployment group shop/shop-dg has a test listener",
        "add testTrafficRoute.listenerArns",
    ),
    "a test listener that forwards elsewhere": (
        {"forward_to_pair": False},
        "the test listener (port 8443) forwards to a group of the pair",
        "forward the test listener to shop-blue or shop-green",
    ),
    "an internal balancer, a hook outside the VPC": (
        {"internal": True},
        "the hook can reach the load balancer",
        "deploy the stack with SubnetIds and SecurityGroupIds",
    ),
    "a security group that keeps the hook out": (
        {"internal": True, "in_vpc": True, "open_port": False},
        "the load balancer's security groups let the hook in on port 8443",
        "an inbound rule: TCP 8443 from",
    ),
    "a hook in a VPC with no way to CodeDeploy's API": (
        {"in_vpc": True, "nat": False},
        "the hook's subnets reach the CodeDeploy API (to report)",
        "com.amazonaws.<region>.codedeploy",
    ),
    "a secret the hook's role may not read": (
        {"deny_secret": True},
        "the hook's role may read ${secret:shop/api}",
        "deploy the stack with SecretArns covering",
    ),
    "a readiness wait that leaves the suites no time": (
        {"readiness_timeout": 590},
        "the hook's timeout leaves the suites time after the readiness wait",
        "lower readiness_timeout to at most 560s",
    ),
    "a secret that does not exist": (
        {"secret": False},
        "${secret:shop/api} exists",
        "create it, or fix the reference",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_broken_piece_is_one_finding_with_its_fix(
    case: str, aws: None, tmp_path: Path
) -> None:
    settings, check, fix = BROKEN[case]
    found = failed(diagnose(Account(tmp_path / "suites", **settings)))
    assert list(found) == [check], found
    assert fix in found[check].fix


def test_an_appspec_hook_of_another_stack_or_event_is_named_with_the_right_line(
    aws: None, tmp_path: Path
) -> None:
    appspec = tmp_path / "appspec.yaml"
    appspec.write_text(
        "Hooks:\n"
        '  - AfterAllowTestTraffic: "arn:aws:lambda:us-east-1:123456789012:function:other"\n'
    )
    findings = failed(diagnose(Account(tmp_path / "suites"), appspec))
    (finding,) = findings.values()
    assert (
        finding.check
        == "AppSpec AfterAllowTestTraffic names this stack's AfterAllowTestTraffic hook"
    )
    assert finding.fix.startswith('- AfterAllowTestTraffic: "arn:aws:lambda:')
    assert "CodeDeployHook_shop-AfterAllowTestTraffic" in finding.fix


def test_the_command_prints_a_checklist_and_exits_1_on_a_finding(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hooks.cli.main import main

    account = Account(tmp_path / "suites", secret=False)
    build(account)
    monkeypatch.setattr(boto3, "client", lambda service, **_: account.client(service))
    code = main(
        [
            "doctor",
            "--stack-name",
            "greenlight",
            "--application",
            "shop",
            "--deployment-group",
            "shop-dg",
            "--suites-dir",
            str(account.suites),
        ]
    )
    out = capsys.readouterr()
    assert code == 1
    assert "✔ stack greenlight has the hooks" in out.out
    assert "✘ ${secret:shop/api} exists" in out.out
    assert "    fix: create it, or fix the reference in the suite" in out.out
    account.iam_calls = 0  # a second run asks IAM again, from the start
    code = main(
        [
            "doctor",
            "--stack-name",
            "greenlight",
            "--application",
            "shop",
            "--deployment-group",
            "shop-dg",
            "--suites-dir",
            str(account.suites),
            "--json",
        ]
    )
    listed = json.loads(capsys.readouterr().out)
    assert {f["check"]: f["ok"] for f in listed}["${secret:shop/api} exists"] is False
