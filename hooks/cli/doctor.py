"""``greenlight doctor``: what would break a real deployment, found before it runs.

Read-only, against the account the credentials reach. Given the stack (``--stack-name``)
and a CodeDeploy application and deployment group (and optionally the AppSpec that names
the hooks), it checks the wiring (the stack's hooks and their names, the AppSpec, the
deployment group's target groups and test listener, that the test listener forwards to a
group of the pair, the service role's right to invoke each hook), the network path from the
hook to the load balancer (an internal one needs the hook in a VPC, and its security groups
must let the hook in on the test listener's port) and from the hook to CodeDeploy's API (a
NAT gateway or an interface endpoint), that each secret the suites name exists and that the
hook's role may read it, the hook's timeout against the plan's readiness wait, the longest
load and a handed-off plan's soak, its memory against the plan's concurrency, an HTTPS test
listener's certificate against the host name, the suites and the plan for the group (a
metrics suite needs CloudWatch reads), and an Amazon ECS native service's lifecycle hooks
(``--ecs-service``).
Each finding is ✔ or ✘, and each ✘ comes with the fix in one line. Exit 0 when all pass,
1 when a ✘ would break a deployment, 2 when it cannot check (no credentials: it says what
it needs).

Its own permissions, all reads: cloudformation:DescribeStacks, codedeploy:GetDeploymentGroup,
elasticloadbalancing:DescribeListeners, DescribeRules, DescribeLoadBalancers,
DescribeTargetGroups, lambda:GetFunctionConfiguration, ec2:DescribeSecurityGroups,
DescribeRouteTables, DescribeVpcEndpoints, ecs:DescribeServices, acm:DescribeCertificate,
iam:SimulatePrincipalPolicy,
secretsmanager:DescribeSecret, ssm:GetParameter (the parameter's metadata only).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from hooks.adapters.ecs import PREFERRED_STAGES
from hooks.aws import secrets
from hooks.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError
from hooks.cli.validate import validate_dir
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.settings import Settings
from hooks.core.verdict import plural
from hooks.gate.evaluate import planned_events
from hooks.gate.plan import PlanFile, plans_by_event
from hooks.process.supervisor import MIN_WORKER_MB, SUPERVISOR_RESERVE_MB
from hooks.process.worker import THREAD_STACK_BYTES
from hooks.suites.registry import BrokenSuite, Catalog, discover, select_suites

__all__ = ["Doctor", "Finding", "doctor_command", "register"]

#: The hooks a CodeDeploy service role with AWSCodeDeployRoleForECSLimited may invoke.
HOOK_PREFIX = "CodeDeployHook_"
#: The least time the suites should have once the targets are ready.
MIN_SUITE_SECONDS = 30.0
#: The longest soak a handed-off plan may ask for (the execution's own limit is 55 minutes).
MAX_SOAK = 2700


@dataclass(frozen=True)
class Finding:
    """One check: whether it holds, what was seen, and the fix when it does not."""

    check: str
    ok: bool
    detail: str = ""
    fix: str = ""


class Doctor:
    """The checks, over clients built by ``client(service)`` (boto3's, or a test's)."""

    def __init__(
        self,
        client: Callable[[str], Any],
        stack: str,
        application: str,
        group: str,
        suites_dir: Path,
        appspec: Path | None = None,
        service: tuple[str, str] | None = None,
    ) -> None:
        self.client, self.stack_name = client, stack
        self.application, self.group = application, group
        self.suites_dir, self.appspec = suites_dir, appspec
        #: An Amazon ECS native blue/green service (cluster, service) to check the hooks of.
        self.service = service
        self.ecs_hook: str | None = None
        self.catalog = Catalog()
        self.hooks: dict[LifecycleEvent, str] = {}
        #: The configuration of the hook the suites run in most (AfterAllowTestTraffic).
        self.config: dict[str, Any] = {}

    def run(self) -> list[Finding]:
        found = list(self._stack())
        if self.hooks:
            hook = self.hooks.get(LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC)
            self.config = self.client("lambda").get_function_configuration(
                FunctionName=hook or next(iter(self.hooks.values()))
            )
        if self.appspec is not None:
            found += self._appspec()
        found += self._group()
        found += self._routes()
        found += self._suites()
        found += self._budget()
        if self.service is not None:
            found += self._ecs()
        return found

    # ---- wiring ----

    def _stack(self) -> Iterator[Finding]:
        stacks = self.client("cloudformation").describe_stacks(StackName=self.stack_name)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks["Stacks"][0].get("Outputs", [])}
        self.ecs_hook = outputs.get("EcsHookArn")
        for event in LifecycleEvent:
            arn = outputs.get(f"{event.logical_id}Arn")
            if arn:
                self.hooks[event] = arn
        if not self.hooks:
            yield Finding(
                f"stack {self.stack_name} has the hooks",
                False,
                "no <Event>HookArn output",
                f"deploy Greenlight's template.yaml as {self.stack_name} (sam deploy)",
            )
            return
        yield Finding(
            f"stack {self.stack_name} has the hooks", True, plural(len(self.hooks), "hook")
        )
        for event, arn in self.hooks.items():
            name = arn.rsplit(":", 1)[-1]
            yield Finding(
                f"{event.value} hook is named {HOOK_PREFIX}*",
                name.startswith(HOOK_PREFIX),
                name,
                f"name the function {HOOK_PREFIX}<name>-{event.value}: "
                "AWSCodeDeployRoleForECSLimited may invoke no other",
            )

    def _appspec(self) -> Iterator[Finding]:
        assert self.appspec is not None
        document = yaml.safe_load(self.appspec.read_text()) or {}
        named: dict[str, str] = {}
        for entry in document.get("Hooks") or []:
            named.update({str(k): str(v) for k, v in (entry or {}).items()})
        by_arn = {arn: event for event, arn in self.hooks.items()}
        for event_name, arn in named.items():
            owner = by_arn.get(arn)
            right = next((e for e in LifecycleEvent if e.value == event_name), None)
            wanted = self.hooks.get(right) if right is not None else None
            yield Finding(
                f"AppSpec {event_name} names this stack's {event_name} hook",
                owner is not None and owner is right,
                arn if owner is None else f"{arn} is the {owner.value} hook",
                f'- {event_name}: "{wanted}"' if wanted else f"remove the {event_name} hook",
            )

    def _group(self) -> list[Finding]:
        info = self.client("codedeploy").get_deployment_group(
            applicationName=self.application, deploymentGroupName=self.group
        )["deploymentGroupInfo"]
        found = [self._may_invoke(info.get("serviceRoleArn"))]
        pairs = (info.get("loadBalancerInfo") or {}).get("targetGroupPairInfoList") or []
        where = f"deployment group {self.application}/{self.group}"
        if not pairs:
            found.append(
                Finding(
                    f"{where} has a target group pair",
                    False,
                    "no loadBalancerInfo.targetGroupPairInfoList",
                    "give the group two target groups and a production and a test listener",
                )
            )
            return found
        pair = pairs[0]
        groups = [g["name"] for g in pair.get("targetGroups") or []]
        test = (pair.get("testTrafficRoute") or {}).get("listenerArns") or []
        prod = (pair.get("prodTrafficRoute") or {}).get("listenerArns") or []
        found.append(
            Finding(
                f"{where} has two target groups",
                len(groups) == 2,
                ", ".join(groups) or "none",
                "name the blue and the green target group in the deployment group",
            )
        )
        found.append(
            Finding(
                f"{where} has a production listener",
                bool(prod),
                prod[0] if prod else "no prodTrafficRoute",
                "add prodTrafficRoute.listenerArns: traffic shifts to green through it",
            )
        )
        found.append(
            Finding(
                f"{where} has a test listener",
                bool(test),
                test[0] if test else "no testTrafficRoute",
                "add testTrafficRoute.listenerArns: Greenlight tests green through it",
            )
        )
        if test and len(groups) == 2:
            found += self._listener(test[0], groups)
        return found

    def _may_invoke(self, role: str | None) -> Finding:
        check = "the service role may invoke every hook"
        if not role:
            return Finding(check, False, "no serviceRoleArn", "give the group a service role")
        answer = self.client("iam").simulate_principal_policy(
            PolicySourceArn=role,
            ActionNames=["lambda:InvokeFunction"],
            ResourceArns=list(self.hooks.values()),
        )
        denied = [
            r["EvalResourceName"]
            for r in answer["EvaluationResults"]
            if r["EvalDecision"] != "allowed"
        ]
        return Finding(
            check,
            not denied,
            "denied: " + ", ".join(denied) if denied else role,
            f"allow lambda:InvokeFunction on {', '.join(denied)} in {role} "
            "(AWSCodeDeployRoleForECSLimited allows CodeDeployHook_* only)",
        )

    def _listener(self, arn: str, groups: list[str]) -> list[Finding]:
        elbv2 = self.client("elbv2")
        (listener,) = elbv2.describe_listeners(ListenerArns=[arn])["Listeners"]
        arns = {
            g["TargetGroupArn"]: g["TargetGroupName"]
            for g in elbv2.describe_target_groups(Names=groups)["TargetGroups"]
        }
        forwards = {
            t["TargetGroupArn"]
            for action in listener.get("DefaultActions") or []
            for t in (
                [{"TargetGroupArn": action["TargetGroupArn"]}]
                if action.get("TargetGroupArn")
                else []
            )
            + ((action.get("ForwardConfig") or {}).get("TargetGroups") or [])
        }
        for rule in elbv2.describe_rules(ListenerArn=arn)["Rules"]:  # a rule may forward too
            for action in rule.get("Actions") or []:
                if action.get("TargetGroupArn"):
                    forwards.add(action["TargetGroupArn"])
                for target in (action.get("ForwardConfig") or {}).get("TargetGroups") or []:
                    forwards.add(target["TargetGroupArn"])
        found = [
            Finding(
                f"the test listener (port {listener['Port']}) forwards to a group of the pair",
                bool(forwards & set(arns)),
                ", ".join(sorted(arns.get(a, a) for a in forwards)) or "no forward action",
                f"forward the test listener to {groups[0]} or {groups[1]}",
            )
        ]
        (balancer,) = elbv2.describe_load_balancers(LoadBalancerArns=[listener["LoadBalancerArn"]])[
            "LoadBalancers"
        ]
        found += self._certificate(listener)
        return found + list(self._network(balancer, listener))

    def _certificate(self, listener: dict[str, Any]) -> list[Finding]:
        """An HTTPS test listener's certificate covers the host name the hook will use (the
        plan's, or the one it derives from the certificate): else TLS fails on green."""
        if listener.get("Protocol") not in ("HTTPS", "TLS") or not listener.get("Certificates"):
            return []
        arn = listener["Certificates"][0]["CertificateArn"]
        info = self.client("acm").describe_certificate(CertificateArn=arn)["Certificate"]
        names = {info.get("DomainName", ""), *info.get("SubjectAlternativeNames", [])} - {""}
        plan = self._plan()
        host = plan.host or next((n for n in sorted(names) if not n.startswith("*.")), None)
        check = "the test listener's certificate covers the host name the hook uses"
        if host is None:
            return [
                Finding(
                    check,
                    False,
                    f"no host set, and the certificate names only {', '.join(sorted(names))}",
                    "set host in the plan (or the greenlight:host tag) to a name it covers",
                )
            ]
        return [
            Finding(
                check,
                any(_covers_name(name, host) for name in names),
                f"{host}; the certificate names {', '.join(sorted(names))}",
                f"set host to a name the certificate covers, or add {host} to it",
            )
        ]

    def _plan(self) -> Any:
        settings = self._settings()
        plans = plans_by_event(settings, PlanFile.load(settings.plan_file))
        return plans[LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC]

    # ---- network ----

    def _network(self, balancer: dict[str, Any], listener: dict[str, Any]) -> Iterator[Finding]:
        vpc = self.config.get("VpcConfig") or {}
        in_vpc = bool(vpc.get("SubnetIds"))
        internal = balancer.get("Scheme") == "internal"
        yield Finding(
            "the hook can reach the load balancer",
            in_vpc or not internal,
            f"{balancer['Scheme']} load balancer; hook {'in' if in_vpc else 'not in'} a VPC",
            "deploy the stack with SubnetIds and SecurityGroupIds of the load balancer's VPC",
        )
        if not in_vpc:
            return
        port = int(listener["Port"])
        ec2 = self.client("ec2")
        mine = set(vpc.get("SecurityGroupIds") or [])
        theirs = balancer.get("SecurityGroups") or []
        groups = ec2.describe_security_groups(GroupIds=theirs)["SecurityGroups"] if theirs else []
        allowed = any(
            _covers(rule, port) and _from(rule, mine)
            for g in groups
            for rule in g.get("IpPermissions", [])
        )
        yield Finding(
            f"the load balancer's security groups let the hook in on port {port}",
            allowed or not theirs,
            ", ".join(theirs) or "no security group",
            f"add to {theirs[0] if theirs else 'its group'} an inbound rule: TCP {port} from "
            f"{', '.join(sorted(mine)) or 'the hook'}",
        )

    def _routes(self) -> list[Finding]:
        """A hook in a VPC reaches CodeDeploy's API (to report) through a NAT gateway or an
        interface endpoint; without either the verdict never arrives."""
        vpc = self.config.get("VpcConfig") or {}
        subnets = vpc.get("SubnetIds") or []
        if not subnets:
            return []
        ec2 = self.client("ec2")
        tables = ec2.describe_route_tables(
            Filters=[{"Name": "association.subnet-id", "Values": list(subnets)}]
        )["RouteTables"]
        nat = any(
            route.get("DestinationCidrBlock") == "0.0.0.0/0" and route.get("NatGatewayId")
            for table in tables
            for route in table.get("Routes", [])
        )
        endpoints = ec2.describe_vpc_endpoints(
            Filters=[{"Name": "vpc-id", "Values": [vpc.get("VpcId", "")]}]
        )["VpcEndpoints"]
        codedeploy = any(e.get("ServiceName", "").endswith(".codedeploy") for e in endpoints)
        seen = "a NAT gateway route" if nat else "an interface endpoint" if codedeploy else ""
        return [
            Finding(
                "the hook's subnets reach the CodeDeploy API (to report)",
                nat or codedeploy,
                seen or f"no 0.0.0.0/0 route through a NAT gateway in {', '.join(subnets)}",
                "route 0.0.0.0/0 through a NAT gateway, or add an interface endpoint "
                "com.amazonaws.<region>.codedeploy",
            )
        ]

    def _ecs(self) -> list[Finding]:
        """An Amazon ECS native service: its lifecycle hooks call this stack's EcsHook, with a
        role, at the stages whose events have suites, and wait at least the gate's budget."""
        assert self.service is not None
        cluster, name = self.service
        (service,) = self.client("ecs").describe_services(cluster=cluster, services=[name])[
            "services"
        ]
        hooks = (service.get("deploymentConfiguration") or {}).get("lifecycleHooks") or []
        ours = [h for h in hooks if h.get("hookTargetArn") == self.ecs_hook]
        block = f"greenlight ecs-hooks --stack-name {self.stack_name}"
        where = f"service {cluster}/{name}"
        found = [
            Finding(
                f"{where}'s lifecycle hooks call this stack's EcsHook",
                bool(ours),
                ", ".join(h.get("hookTargetArn", "?") for h in hooks) or "no lifecycle hook",
                f"set deploymentConfiguration.lifecycleHooks from `{block}`",
            )
        ]
        if not ours:
            return found
        hook = ours[0]
        settings = self._settings()
        catalog = discover(settings.suites_dir)
        wanted = {
            PREFERRED_STAGES[e].value
            for e in planned_events(catalog, PlanFile.load(settings.plan_file), settings)
        }
        stages = set(hook.get("lifecycleStages") or [])
        minutes = (hook.get("timeoutConfiguration") or {}).get("timeoutInMinutes")
        config = self.client("lambda").get_function_configuration(FunctionName=self.ecs_hook)
        variables = (config.get("Environment") or {}).get("Variables") or {}
        budget = float(variables.get("GREENLIGHT_ECS_BUDGET") or 3600)
        found += [
            Finding(
                f"{where}'s EcsHook has a role ECS invokes it with",
                bool(hook.get("roleArn")),
                hook.get("roleArn", "no roleArn"),
                "set roleArn to the stack's EcsHookInvokeRoleArn output",
            ),
            Finding(
                f"{where}'s EcsHook is called at the stages with suites",
                wanted <= stages,
                ", ".join(sorted(stages)) or "no stage",
                f"add {', '.join(sorted(wanted - stages))} to lifecycleStages ({block})",
            ),
            self._ecs_reads(where, config["Role"]),
            Finding(
                f"{where}'s EcsHook waits at least the gate's budget",
                minutes is None or minutes * 60 >= budget,
                f"timeoutInMinutes {minutes}, GREENLIGHT_ECS_BUDGET {budget:g}s",
                f"timeoutInMinutes at least {int(budget // 60)}, or a lower GREENLIGHT_ECS_BUDGET",
            ),
        ]
        return found

    def _ecs_reads(self, where: str, role: str) -> Finding:
        """The ECS hook finds green through the service deployment and its revision."""
        reads = ["ecs:DescribeServiceDeployments", "ecs:DescribeServiceRevisions"]
        answer = self.client("iam").simulate_principal_policy(
            PolicySourceArn=role, ActionNames=reads
        )
        denied = sorted(
            r["EvalActionName"]
            for r in answer["EvaluationResults"]
            if r["EvalDecision"] != "allowed"
        )
        return Finding(
            f"{where}'s EcsHook may read the service revision",
            not denied,
            ", ".join(denied) + " denied" if denied else role,
            f"allow {', '.join(denied)} in {role} (the stack's EcsHookRole has them)",
        )

    # ---- the suites ----

    def _suites(self) -> list[Finding]:
        problems, catalog, plan_file = validate_dir(self.suites_dir)
        self.catalog = catalog
        found = [
            Finding(
                "the suites and the plan are valid",
                not problems,
                problems[0].splitlines()[0] if problems else str(self.suites_dir),
                f"greenlight validate --plan --application {self.application} "
                f"--deployment-group {self.group} {self.suites_dir}",
            )
        ]
        if not problems:
            found += self._planned(catalog, plan_file)
        for reference in sorted(secrets.scan(self.suites_dir)):
            found += self._secret(reference)
        return found

    def _settings(self) -> Settings:
        """The settings the hook resolves its plan with, for this deployment group."""
        return Settings.from_env(
            {
                "GREENLIGHT_SUITES_DIR": str(self.suites_dir),
                "GREENLIGHT_APPLICATION": self.application,
                "GREENLIGHT_DEPLOYMENT_GROUP": self.group,
            }
        )

    def _planned(self, catalog: Catalog, plan_file: PlanFile | None) -> list[Finding]:
        """The suites the plan gives this group, as the hook resolves it: a metrics suite
        among them needs the hook's role to read CloudWatch."""
        settings = self._settings()
        kinds: set[str] = set()
        for event, plan in plans_by_event(settings, plan_file).items():
            chosen = select_suites(
                catalog,
                event,
                plan.suites,
                plan.policies,
                planned_source=plan.sources["suites"],
                suites_dir=settings.suites_dir,
            )
            kinds |= {s.kind for s in chosen if not isinstance(s, BrokenSuite)}
        found: list[Finding] = []
        role = self.config.get("Role")
        if "metrics" in kinds and role:
            actions = ["cloudwatch:GetMetricData", "cloudwatch:DescribeAlarms"]
            answer = self.client("iam").simulate_principal_policy(
                PolicySourceArn=role, ActionNames=actions
            )
            denied = sorted(
                r["EvalActionName"]
                for r in answer["EvaluationResults"]
                if r["EvalDecision"] != "allowed"
            )
            found.append(
                Finding(
                    "the hook's role may read CloudWatch for the metrics suites",
                    not denied,
                    ", ".join(denied) or role,
                    f"allow {', '.join(denied)} in {role} (template.yaml's roles have them)",
                )
            )
        return found

    def _secret(self, reference: str) -> list[Finding]:
        kind, _, name = reference.partition(":")
        check = f"${{{reference}}} exists"
        try:
            key = None
            if kind == "secret":
                described = self.client("secretsmanager").describe_secret(
                    SecretId=name.partition("#")[0]
                )
                arn, action = described["ARN"], "secretsmanager:GetSecretValue"
                key = described.get("KmsKeyId")  # a key of its own: the role must decrypt
            else:
                found = self.client("ssm").get_parameter(Name=name, WithDecryption=False)
                arn, action = found["Parameter"]["ARN"], "ssm:GetParameter"
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            return [Finding(check, False, code, "create it, or fix the reference in the suite")]
        role = self.config.get("Role")
        if not role:
            return [Finding(check, True)]
        wanted = {(action, arn)} | ({("kms:Decrypt", key)} if key else set())
        answer = self.client("iam").simulate_principal_policy(
            PolicySourceArn=role,
            ActionNames=sorted({a for a, _ in wanted}),
            ResourceArns=sorted({r for _, r in wanted}),
        )
        decided = {
            (r["EvalActionName"], r["EvalResourceName"]): r["EvalDecision"] == "allowed"
            for r in answer["EvaluationResults"]
        }
        denied = sorted(a for a, r in wanted if not decided.get((a, r), False))
        parameter = "SecretArns" if kind == "secret" else "ParameterPathPrefix"
        fix = f"deploy the stack with {parameter} covering {arn}"
        if "kms:Decrypt" in denied:
            fix = f"allow kms:Decrypt on {key} in {role} (the secret's own key)"
        return [
            Finding(check, True),
            Finding(
                f"the hook's role may read ${{{reference}}}",
                not denied,
                ", ".join(denied) + " denied" if denied else role,
                fix,
            ),
        ]

    def _capacity(self, plan: Any, room: float) -> list[Finding]:
        """The function's memory against the plan's concurrency (a worker's threads, the
        supervisor's reserve), and the longest planned load against the time it has."""
        memory = int(self.config.get("MemorySize") or 0)
        stacks = plan.concurrency * THREAD_STACK_BYTES // (1024 * 1024)
        need = SUPERVISOR_RESERVE_MB + MIN_WORKER_MB + stacks
        found = [
            Finding(
                "the hook's memory holds the plan's concurrency",
                memory >= need,
                f"{memory} MB for concurrency {plan.concurrency} (needs {need} MB)",
                f"FunctionMemory at least {need}, or a lower concurrency in the plan",
            )
        ]
        loads = [
            s.judge.profile for s in self.catalog.suites if s.kind == "load" and hasattr(s, "judge")
        ]
        if loads and plan.runner != "stepfunctions":
            longest = max(p.ramp + p.duration for p in loads)
            found.append(
                Finding(
                    "the longest load fits the hook's time after the readiness wait",
                    longest <= room,
                    f"{longest:g}s of load, {room:g}s left",
                    "plan runner: stepfunctions for it, or a shorter duration",
                )
            )
        return found

    def _budget(self) -> list[Finding]:
        """The hook's time against the plan: its readiness wait must leave the suites time,
        and a handed-off plan's soak must fit CodeDeploy's hour."""
        timeout = float(self.config.get("Timeout") or 0)
        if not timeout:
            return []
        settings = self._settings()
        plans = plans_by_event(settings, PlanFile.load(settings.plan_file))
        plan = plans[LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC]
        room = timeout - settings.safety_margin - plan.readiness_timeout
        most = max(timeout - settings.safety_margin - MIN_SUITE_SECONDS, 0)
        found = [
            Finding(
                "the hook's timeout leaves the suites time after the readiness wait",
                room >= MIN_SUITE_SECONDS,
                f"timeout {timeout:g}s, readiness_timeout {plan.readiness_timeout:g}s "
                f"({plan.sources.get('readiness_timeout', 'default')})",
                f"raise FunctionTimeout, or lower readiness_timeout to at most {most:g}s",
            )
        ]
        found += self._capacity(plan, room)
        if plan.runner == "stepfunctions":
            found.append(
                Finding(
                    "a handed-off plan's soak fits CodeDeploy's hour",
                    plan.soak <= MAX_SOAK,
                    f"soak {plan.soak:g}s",
                    f"soak at most {MAX_SOAK}s: the execution ends within 55 minutes",
                )
            )
        return found


def _covers_name(name: str, host: str) -> bool:
    """Whether a certificate's name covers ``host`` (a wildcard covers one label)."""
    name, host = name.lower(), host.lower()
    if name.startswith("*."):
        return host.count(".") == name.count(".") and host.endswith(name[1:])
    return name == host


def _covers(rule: dict[str, Any], port: int) -> bool:
    if rule.get("IpProtocol") == "-1":
        return True
    return int(rule.get("FromPort", -1)) <= port <= int(rule.get("ToPort", -1))


def _from(rule: dict[str, Any], groups: set[str]) -> bool:
    peers = {p.get("GroupId") for p in rule.get("UserIdGroupPairs", [])}
    cidrs = {r.get("CidrIp") for r in rule.get("IpRanges", [])}
    return bool(peers & groups) or "0.0.0.0/0" in cidrs


def register(sub: Any) -> None:
    """The ``doctor`` command's arguments."""
    doctor = sub.add_parser("doctor", help="find what would break a real deployment (read-only)")
    doctor.add_argument("--stack-name", required=True, help="the Greenlight stack")
    doctor.add_argument("--application", required=True, help="the CodeDeploy application")
    doctor.add_argument("--deployment-group", required=True, help="its deployment group")
    doctor.add_argument("--appspec", type=Path, help="an AppSpec file to check the Hooks of")
    doctor.add_argument(
        "--ecs-service",
        metavar="CLUSTER/SERVICE",
        help="an Amazon ECS native blue/green service to check the lifecycle hooks of",
    )
    doctor.add_argument("--suites-dir", type=Path, help="the suites (default test_suites)")
    doctor.add_argument("--json", action="store_true", help="the findings as JSON")
    doctor.set_defaults(run=doctor_command)


def doctor_command(args: argparse.Namespace) -> int:
    import boto3  # on use: only the command that reads AWS needs it
    from botocore.exceptions import NoCredentialsError, NoRegionError

    suites = args.suites_dir or Settings.from_env().suites_dir

    def client(service: str) -> Any:
        return boto3.client(service)  # type: ignore[call-overload]

    service = None
    if args.ecs_service:
        cluster, sep, name = args.ecs_service.partition("/")
        if not sep or not cluster or not name:
            raise UsageError(f"--ecs-service {args.ecs_service!r}: CLUSTER/SERVICE")
        service = (cluster, name)
    doctor = Doctor(
        client,
        args.stack_name,
        args.application,
        args.deployment_group,
        suites,
        args.appspec,
        service,
    )
    try:
        findings = doctor.run()
    except (NoCredentialsError, NoRegionError) as exc:
        raise UsageError(
            f"cannot check: {exc} (doctor reads the account: give it credentials and a region, "
            "e.g. AWS_PROFILE and AWS_REGION)"
        ) from None
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        for finding in findings:
            mark = "✔" if finding.ok else "✘"
            detail = f" ({finding.detail})" if finding.detail else ""
            print(f"{mark} {finding.check}{detail}")
            if not finding.ok:
                print(f"    fix: {finding.fix}")
    failed = sum(not f.ok for f in findings)
    print(f"{len(findings) - failed} passed, {failed} would break a deployment", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK if findings else EXIT_USAGE
