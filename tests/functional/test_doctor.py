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
    "name: smoke\nevents: [AfterAllowTestTraffic]\nchecks:\n  - name: up\n"
    "    request:\n      path: /health\n"
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
    #: A metrics suite in the suites, and whether the hook's role may not read CloudWatch.
    metrics: bool = False
    deny_metrics: bool = False
    #: A suite the plan names for this group and no file defines.
    plan_missing: bool = False
    #: ECS native: the service's hook (its target, stages and timeout), or None for none.
    ecs_target: str | None = None
    ecs_stages: tuple[str, ...] = ("POST_TEST_TRAFFIC_SHIFT",)
    ecs_minutes: int = 60
    ecs_hook: str = ""
    #: The hook's memory (MB); a load suite of this many seconds; an HTTPS test listener
    #: whose certificate names ``cert_name``, with the plan's host ``host``.
    memory: int = 512
    load_seconds: int = 0
    cert_name: str = ""
    host: str = ""
    #: The secret under a KMS key of its own, and the role's rights to it and to ECS's reads.
    cmk: bool = False
    #: The test listener forwards to the pair by a rule, its default action elsewhere.
    by_rule: bool = False
    deny_decrypt: bool = False
    deny_ecs_reads: bool = False
    secret_arn: str = ""
    key_arn: str = ""
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
        if service == "ecs":
            return self._service()
        if service != "iam":
            return CLIENT(service, region_name=REGION)  # type: ignore[call-overload]
        iam = CLIENT("iam", region_name=REGION)
        stubber = Stubber(iam)
        # The doctor asks, in order: the invoke right, CloudWatch's reads (with a metrics
        # suite), then each secret's read.
        asked = [(["lambda:InvokeFunction"], self.deny, list(self.hooks.values()))]
        if self.metrics:
            actions = ["cloudwatch:GetMetricData", "cloudwatch:DescribeAlarms"]
            asked.append((actions, self.deny_metrics, ["*"]))
        secret = (["secretsmanager:GetSecretValue"], self.deny_secret, [self.secret_arn])
        asked.append(secret)
        if self.ecs_target is not None:
            reads = ["ecs:DescribeServiceDeployments", "ecs:DescribeServiceRevisions"]
            asked.append((reads, self.deny_ecs_reads, ["*"]))
        actions, denied, resources = asked[min(self.iam_calls, len(asked) - 1)]
        self.iam_calls += 1
        results_extra: list[dict[str, Any]] = []
        if actions == secret[0] and self.cmk:
            actions = ["kms:Decrypt", "secretsmanager:GetSecretValue"]
            results_extra.append(
                {
                    "EvalActionName": "kms:Decrypt",
                    "EvalResourceName": self.key_arn,
                    "EvalDecision": "implicitDeny" if self.deny_decrypt else "allowed",
                }
            )
        results = [
            {
                "EvalActionName": action,
                "EvalResourceName": resource,
                "EvalDecision": "implicitDeny" if denied else "allowed",
            }
            for action in actions
            for resource in resources
            if action != "kms:Decrypt"
        ] + results_extra
        expected: dict[str, Any] = {"PolicySourceArn": ANY, "ActionNames": actions}
        if actions[0].startswith(("lambda:", "kms:", "secretsmanager:")):
            expected["ResourceArns"] = ANY
        stubber.add_response("simulate_principal_policy", {"EvaluationResults": results}, expected)
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
        if self.ecs_hook:
            outputs.append({"OutputKey": "EcsHookArn", "OutputValue": self.ecs_hook})
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

    def _service(self) -> Any:
        """The ECS service (moto keeps no lifecycle hooks): a Stubber, on ECS's model."""
        ecs = CLIENT("ecs", region_name=REGION)
        stubber = Stubber(ecs)
        hooks = []
        if self.ecs_target is not None:
            hooks.append(
                {
                    "hookTargetArn": self.ecs_target or self.ecs_hook,
                    "roleArn": "arn:aws:iam::123456789012:role/ecs-invokes",
                    "lifecycleStages": list(self.ecs_stages),
                    "timeoutConfiguration": {"timeoutInMinutes": self.ecs_minutes},
                }
            )
        service = {
            "serviceName": "shop",
            "deploymentConfiguration": {"strategy": "BLUE_GREEN", "lifecycleHooks": hooks},
        }
        stubber.add_response(
            "describe_services",
            {"services": [service]},
            {"cluster": "prod", "services": ["shop"]},
        )
        stubber.activate()
        return ecs


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
    tls: dict[str, Any] = {}
    if account.cert_name:
        certificate = boto3.client("acm", region_name=REGION).request_certificate(
            DomainName=account.cert_name
        )["CertificateArn"]
        tls = {"Protocol": "HTTPS", "Certificates": [{"CertificateArn": certificate}]}
    for port, target in ((80, groups[0]), (8443, groups[1 if account.forward_to_pair else 2])):
        listeners[port] = elbv2.create_listener(
            LoadBalancerArn=balancer,
            Port=port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": target["TargetGroupArn"]}],
            **({"Protocol": "HTTP"} if port == 80 or not tls else tls),
        )["Listeners"][0]["ListenerArn"]
    if account.by_rule:
        elbv2.create_rule(
            ListenerArn=listeners[8443],
            Priority=1,
            Conditions=[{"Field": "host-header", "Values": ["shop.example.com"]}],
            Actions=[{"Type": "forward", "TargetGroupArn": groups[1]["TargetGroupArn"]}],
        )
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="hooks", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    name = f"{account.hook_prefix}shop-AfterAllowTestTraffic"
    config: dict[str, Any] = {"Timeout": 600, "MemorySize": account.memory}
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
    account.ecs_hook = boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="Greenlight_shop-EcsHook",
        Runtime="python3.13",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": _zip()},
        Environment={"Variables": {"GREENLIGHT_ECS_BUDGET": "1800"}},
    )["FunctionArn"]
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
        extra: dict[str, Any] = {}
        if account.cmk:
            account.key_arn = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"][
                "Arn"
            ]
            extra["KmsKeyId"] = account.key_arn
        account.secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="shop/api", SecretString="{}", **extra
        )["ARN"]
    account.suites.mkdir(exist_ok=True)
    (account.suites / "smoke.yaml").write_text(SUITE)
    plan = "version: 1\n"
    defaults = []
    if account.readiness_timeout is not None:
        defaults.append(f"  readiness_timeout: {account.readiness_timeout}\n")
    if account.host:
        defaults.append(f"  host: {account.host}\n")
    if defaults:
        plan += "defaults:\n" + "".join(defaults)
    if account.load_seconds:
        (account.suites / "load.yaml").write_text(
            f"kind: load\nname: load\nrate: 5\nduration: {account.load_seconds}s\n"
            "requests:\n  - name: up\n    request: {path: /health}\n"
            "thresholds:\n  http_req_failed: 'rate < 0.01'\n"
        )
    if account.plan_missing:
        plan += (
            "groups:\n  - match: {deployment_group: shop-dg}\n"
            "    suites:\n      AfterAllowTestTraffic: [smoke, checkout]\n"
        )
    (account.suites / "greenlight.yaml").write_text(plan)
    if account.metrics:
        (account.suites / "signals.yaml").write_text(
            "kind: metrics\nname: signals\nwindow: 1m\n"
            "thresholds:\n  http_req_failed: 'rate < 0.01'\n"
        )


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def diagnose(account: Account, appspec: Path | None = None, ecs: bool = False) -> list[Finding]:
    build(account)
    service = ("prod", "shop") if ecs else None
    return Doctor(
        account.client, "greenlight", "shop", "shop-dg", account.suites, appspec, service
    ).run()


def failed(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings if not f.ok}


def test_a_certificate_that_covers_the_plans_host_passes(aws: None, tmp_path: Path) -> None:
    account = Account(
        tmp_path / "suites", cert_name="*.shop.example.com", host="api.shop.example.com"
    )
    findings = diagnose(account)
    assert failed(findings) == {}
    assert "the test listener's certificate covers the host name the hook uses" in {
        f.check for f in each(findings)
    }


def test_a_test_listener_that_forwards_to_the_pair_by_a_rule_passes(
    aws: None, tmp_path: Path
) -> None:
    account = Account(tmp_path / "suites", forward_to_pair=False, by_rule=True)
    assert failed(diagnose(account)) == {}


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
    "a plan that names a suite no file defines": (
        {"plan_missing": True},
        "the suites and the plan are valid",
        "greenlight validate --plan --application shop --deployment-group shop-dg",
    ),
    "a metrics suite the hook's role may not read CloudWatch for": (
        {"metrics": True, "deny_metrics": True},
        "the hook's role may read CloudWatch for the metrics suites",
        "allow cloudwatch:DescribeAlarms, cloudwatch:GetMetricData in",
    ),
    "too little memory for the plan's concurrency": (
        {"memory": 256},
        "the hook's memory holds the plan's concurrency",
        "FunctionMemory at least 288",
    ),
    "a load longer than the hook has": (
        {"load_seconds": 580},
        "the longest load fits the hook's time after the readiness wait",
        "plan runner: stepfunctions for it",
    ),
    "a certificate that does not cover the plan's host": (
        {"cert_name": "*.shop.example.com", "host": "api.example.com"},
        "the test listener's certificate covers the host name the hook uses",
        "add api.example.com to it",
    ),
    "a wildcard certificate and no host": (
        {"cert_name": "*.shop.example.com"},
        "the test listener's certificate covers the host name the hook uses",
        "set host in the plan",
    ),
    "a secret whose own key the hook's role may not use": (
        {"cmk": True, "deny_decrypt": True},
        "the hook's role may read ${secret:shop/api}",
        "allow kms:Decrypt on",
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
    from hooks.cli import main as cli

    # The command line's logging writes to the streams it starts with: here capsys's,
    # closed after this test, which later tests in this process would still log to.
    monkeypatch.setattr(cli, "configure_for_cli", lambda verbose: None)
    main = cli.main
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


ECS_BROKEN: dict[str, tuple[dict[str, Any], str, str]] = {
    "no hook of this stack": (
        {"ecs_target": "arn:aws:lambda:us-east-1:123456789012:function:other"},
        "service prod/shop's lifecycle hooks call this stack's EcsHook",
        "greenlight ecs-hooks --stack-name greenlight",
    ),
    "a stage with suites left out": (
        {"ecs_stages": ("PRE_SCALE_UP",)},
        "service prod/shop's EcsHook is called at the stages with suites",
        "add POST_TEST_TRAFFIC_SHIFT to lifecycleStages",
    ),
    "an EcsHook role that may not read the service revision": (
        {"deny_ecs_reads": True},
        "service prod/shop's EcsHook may read the service revision",
        "allow ecs:DescribeServiceDeployments, ecs:DescribeServiceRevisions in",
    ),
    "a hook timeout shorter than the gate's budget": (
        {"ecs_minutes": 10},
        "service prod/shop's EcsHook waits at least the gate's budget",
        "timeoutInMinutes at least 30",
    ),
}


def test_an_ecs_service_whose_hooks_call_this_stack_passes(aws: None, tmp_path: Path) -> None:
    findings = diagnose(Account(tmp_path / "suites", ecs_target=""), ecs=True)
    assert failed(findings) == {}
    assert sum("service prod/shop" in f.check for f in each(findings)) == 5


@pytest.mark.parametrize("case", sorted(ECS_BROKEN))
def test_each_broken_ecs_hook_is_one_finding_with_its_fix(
    case: str, aws: None, tmp_path: Path
) -> None:
    settings, check, fix = ECS_BROKEN[case]
    account = Account(tmp_path / "suites", **{"ecs_target": "", **settings})
    found = failed(diagnose(account, ecs=True))
    assert list(found) == [check], found
    assert fix in found[check].fix
