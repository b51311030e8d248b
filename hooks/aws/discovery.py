"""Find the green stack from the deployment: listeners, URLs, target groups, targets.

get_deployment -> (loadBalancerInfo, else get_deployment_group) -> test and production
listener ARNs -> describe_listeners, describe_load_balancers, describe_rules (test
listener) -> describe_target_groups (green) -> URLs. Every AWS error becomes a
:class:`DiscoveryError` naming the call that failed and what to fix.

**Which target group is green** comes from the deployment group's target-group pair and
the production listener, never from the test listener alone: until AllowTraffic the
production listener forwards to the original (blue) group, so green is the pair's other
group; from AfterAllowTraffic on, production forwards to green. (At AfterInstall the test
listener still forwards to blue: trusting it would test the old release.) The test
listener is then *checked* against that answer before any suite runs through it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from hooks.core.deadline import Deadline
from hooks.core.exceptions import DiscoveryError, TargetNotReadyError
from hooks.core.lifecycle import LifecycleEvent

__all__ = [
    "Deployment",
    "Discovery",
    "GreenTarget",
    "Listener",
    "Rule",
    "Stack",
    "TargetGroup",
    "account_from_arn",
    "explain",
    "target_group_name",
]

log = logging.getLogger(__name__)

_PERMISSION_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedException",
        "NotAuthorized",
    }
)
_ADVICE = {
    "DeploymentDoesNotExistException": "the deployment does not exist in this account and "
    "region: is the hook deployed where the deployment runs?",
    "InvalidDeploymentIdException": "the event's DeploymentId is not a valid deployment id",
    "DeploymentGroupDoesNotExistException": "the deployment group was deleted",
    "ListenerNotFound": "the listener no longer exists: was it deleted during the deployment? "
    "The deployment group's loadBalancerInfo must name live listeners",
    "ListenerNotFoundException": "the listener no longer exists: was it deleted during the "
    "deployment? The deployment group's loadBalancerInfo must name "
    "live listeners",
    "LoadBalancerNotFound": "the load balancer no longer exists",
    "TargetGroupNotFound": "the target group no longer exists",
}


@dataclass(frozen=True)
class Listener:
    arn: str
    port: int
    protocol: str
    dns_name: str
    scheme: str
    target_group_arns: tuple[str, ...]

    @property
    def url(self) -> str:
        scheme = "https" if self.protocol in ("HTTPS", "TLS") else "http"
        return f"{scheme}://{self.dns_name}:{self.port}"


@dataclass(frozen=True)
class TargetGroup:
    arn: str
    name: str
    protocol: str = "HTTP"
    port: int | None = None


@dataclass(frozen=True)
class GreenTarget:
    """One registered green task, addressed directly (``ip:port``)."""

    url: str
    label: str


@dataclass(frozen=True)
class Rule:
    """A listener rule, reduced to what routing by host needs."""

    arn: str
    priority: str
    hosts: tuple[str, ...]  # host-header values; () when the rule has no host condition
    other_conditions: bool  # conditions besides host-header (path, header, ...)
    forwards_to: tuple[str, ...]

    @property
    def is_default(self) -> bool:
        return self.priority == "default"


@dataclass(frozen=True)
class Deployment:
    """What get_deployment (and get_deployment_group) say about the deployment."""

    deployment_id: str
    application: str
    deployment_group: str
    load_balancer_info: Mapping[str, Any]
    service_role_arn: str | None = None


@dataclass(frozen=True)
class Stack:
    """The discovered target: both listeners, the green groups and the test listener's rules."""

    test: Listener
    prod: Listener | None
    green_target_groups: tuple[str, ...] = field(default_factory=tuple)
    green: tuple[TargetGroup, ...] = ()
    #: How green was told apart: "target-group pair and production listener", or a fallback.
    green_source: str = ""
    test_rules: tuple[Rule, ...] = ()
    certificate_arn: str | None = None

    def urls(self, event: LifecycleEvent) -> tuple[str, str | None]:
        """(green URL, production URL); after AllowTraffic production serves green too.

        At BeforeInstall there is no green: both are the production listener's URL.
        """
        if event is LifecycleEvent.BEFORE_INSTALL:
            if self.prod is None:
                raise DiscoveryError(
                    "BeforeInstall tests production only, and the deployment group has no "
                    "production listener (prodTrafficRoute)"
                )
            return self.prod.url, self.prod.url
        if event.green_on_prod_listener and self.prod is not None:
            return self.prod.url, self.prod.url
        return self.test.url, self.prod.url if self.prod else None

    def route(self, host: str | None) -> Rule | None:
        """The test listener's rule that a request for ``host`` meets (the default: None host)."""
        for rule in self.test_rules:
            if rule.is_default or rule.other_conditions:
                continue
            if host and any(fnmatchcase(host.lower(), h.lower()) for h in rule.hosts):
                return rule
        return next((r for r in self.test_rules if r.is_default), None)

    def prove_green(self, host: str | None) -> None:
        """Raise unless the test listener sends ``host``'s requests to green, and only there."""
        if not self.green:
            return
        green = {g.arn for g in self.green}
        rule = self.route(host)
        forwards = set(rule.forwards_to) if rule is not None else set(self.test.target_group_arns)
        if forwards and forwards <= green:
            return
        what = "its default action" if rule is None or rule.is_default else f"rule {rule.arn}"
        names = ", ".join(sorted(target_group_name(a) for a in forwards)) or "no target group"
        raise DiscoveryError(
            f"the test listener {self.test.url} ({what}"
            f"{f', host {host}' if host else ''}) forwards to {names}, not to this "
            f"deployment's green target group {', '.join(g.name for g in self.green)} -> "
            f"AllowTestTraffic did not complete, the listener was changed by hand, or a "
            f"rollback is under way: testing it would judge the wrong release"
        )

    def derived_host(self) -> tuple[str, str] | None:
        """A host name from the test listener's rules: one exact ``host-header`` value."""
        hosts = {
            r.hosts[0]
            for r in self.test_rules
            if not r.is_default and len(r.hosts) == 1 and not any(c in r.hosts[0] for c in "*?")
        }
        if len(hosts) == 1:
            host = hosts.pop()
            rule = next(r for r in self.test_rules if r.hosts == (host,))
            return host, f"derived from the test listener's rule {rule.arn}"
        return None


def explain(service: str, operation: str, exc: Exception) -> DiscoveryError:
    """A DiscoveryError naming the call, the AWS error and what to fix."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    action = f"{service}:{operation}"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        message = exc.response.get("Error", {}).get("Message", "")
        if code in _PERMISSION_CODES:
            fix = (
                f"the hook's role is missing the permission {action}; grant it "
                f"(template.yaml's role has it)"
            )
        else:
            fix = _ADVICE.get(code, "see the AWS error above")
        return DiscoveryError(f"{action} failed: {code}: {message} -> {fix}")
    if isinstance(exc, EndpointConnectionError):
        variable = f"AWS_ENDPOINT_URL_{service.upper()}"
        set_by = variable if os.environ.get(variable) else "AWS_ENDPOINT_URL"
        if os.environ.get(set_by):
            fix = f"{set_by} is {os.environ[set_by]}: is the endpoint running there?"
        else:
            fix = (
                f"a function in a VPC needs a NAT gateway or an interface VPC endpoint "
                f"for {service}"
            )
        return DiscoveryError(f"{action} failed: cannot reach the {service} API ({exc}) -> {fix}")
    if isinstance(exc, BotoCoreError):
        return DiscoveryError(f"{action} failed: {exc}")
    return DiscoveryError(f"{action} failed: {type(exc).__name__}: {exc}")


class Discovery:
    """Discovery calls, with clients built once per container and passed in.

    Each client may be given as a callable that builds it on first use: a run that never
    discovers (its target is given) never builds them.
    """

    def __init__(self, codedeploy: Any, elbv2: Any, acm: Any = None) -> None:
        self._clients = {"codedeploy": codedeploy, "elbv2": elbv2, "acm": acm}

    def _client(self, name: str) -> Any:
        client = self._clients[name]
        if callable(client) and not hasattr(client, "meta"):  # a factory, not a client
            client = self._clients[name] = client()
        return client

    @property
    def codedeploy(self) -> Any:
        return self._client("codedeploy")

    @property
    def elbv2(self) -> Any:
        return self._client("elbv2")

    @property
    def acm(self) -> Any:
        return self._client("acm")

    def _call(self, client: Any, service: str, operation: str, **kwargs: Any) -> Any:
        method = getattr(client, _snake(operation))
        try:
            return method(**kwargs)
        except Exception as exc:
            raise explain(service, operation, exc) from exc

    def deployment(self, deployment_id: str) -> Deployment:
        info = self._call(
            self.codedeploy, "codedeploy", "GetDeployment", deploymentId=deployment_id
        )["deploymentInfo"]
        application, group = info["applicationName"], info["deploymentGroupName"]
        lb_info = info.get("loadBalancerInfo") or {}
        role = None
        if not lb_info.get("targetGroupPairInfoList"):
            group_info = self._call(
                self.codedeploy,
                "codedeploy",
                "GetDeploymentGroup",
                applicationName=application,
                deploymentGroupName=group,
            )["deploymentGroupInfo"]
            lb_info = group_info.get("loadBalancerInfo") or {}
            role = group_info.get("serviceRoleArn")
        return Deployment(deployment_id, application, group, lb_info, role)

    def tags(self, deployment: Deployment, region: str) -> dict[str, str]:
        """The deployment group's tags (for plans chosen by service teams).

        The group's ARN needs the account id: it comes from the group's service role.
        """
        role = deployment.service_role_arn
        if role is None:
            info = self._call(
                self.codedeploy,
                "codedeploy",
                "GetDeploymentGroup",
                applicationName=deployment.application,
                deploymentGroupName=deployment.deployment_group,
            )
            role = info["deploymentGroupInfo"].get("serviceRoleArn")
        account = account_from_arn(role)
        if account is None:
            log.warning("the deployment group has no service role ARN: its tags are not read")
            return {}
        partition = (role or "arn:aws").split(":")[1]
        arn = (
            f"arn:{partition}:codedeploy:{region}:{account}:deploymentgroup:"
            f"{deployment.application}/{deployment.deployment_group}"
        )
        tags = self._call(self.codedeploy, "codedeploy", "ListTagsForResource", ResourceArn=arn)
        return {t["Key"]: t.get("Value", "") for t in tags.get("Tags", [])}

    def stack(
        self,
        deployment: Deployment,
        event: LifecycleEvent = LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
    ) -> Stack:
        # Long: the listeners, their rules and target groups, in the order they are read.
        pairs = deployment.load_balancer_info.get("targetGroupPairInfoList") or []
        where = f"deployment group {deployment.application}/{deployment.deployment_group}"
        if not pairs:
            raise DiscoveryError(
                f"{where} has no loadBalancerInfo.targetGroupPairInfoList -> Greenlight needs "
                f"an ECS blue/green deployment group with a load balancer, or a target URL "
                f"(GREENLIGHT_TARGET_URL, or target_url in the plan)"
            )
        pair = pairs[0]
        test_arns = (pair.get("testTrafficRoute") or {}).get("listenerArns") or []
        prod_arns = (pair.get("prodTrafficRoute") or {}).get("listenerArns") or []
        if not test_arns:
            raise DiscoveryError(
                f"{where} has no test listener (testTrafficRoute) -> add one to the deployment "
                f"group so the green tasks can be tested before production traffic, or set a "
                f"target URL"
            )
        arns = [test_arns[0], *prod_arns[:1]]
        listeners = self._call(
            self.elbv2, "elasticloadbalancing", "DescribeListeners", ListenerArns=arns
        )["Listeners"]
        by_arn = {item["ListenerArn"]: item for item in listeners}
        lb_arns = sorted({item["LoadBalancerArn"] for item in listeners})
        balancers = self._call(
            self.elbv2, "elasticloadbalancing", "DescribeLoadBalancers", LoadBalancerArns=lb_arns
        )["LoadBalancers"]
        lbs = {lb["LoadBalancerArn"]: lb for lb in balancers}

        def listener(arn: str) -> Listener:
            item = by_arn.get(arn)
            if item is None:
                raise DiscoveryError(
                    f"elasticloadbalancing:DescribeListeners did not return "
                    f"{arn} -> {_ADVICE['ListenerNotFound']}"
                )
            lb = lbs[item["LoadBalancerArn"]]
            return Listener(
                arn,
                int(item["Port"]),
                item.get("Protocol", "HTTP"),
                lb["DNSName"],
                lb.get("Scheme", "internet-facing"),
                _forward_targets(item),
            )

        test = listener(test_arns[0])
        prod = listener(prod_arns[0]) if prod_arns else None
        pair_names = tuple(g["name"] for g in pair.get("targetGroups") or [] if g.get("name"))
        green_names, source = _green_names(event, pair_names, test, prod)
        green = self.target_groups(green_names) if green_names else ()
        rules = self.rules(test.arn)
        certificate = next(
            (c.get("CertificateArn") for c in by_arn[test.arn].get("Certificates") or []), None
        )
        return Stack(
            test,
            prod,
            tuple(g.arn for g in green) or test.target_group_arns,
            green,
            source,
            rules,
            certificate,
        )

    def target_groups(self, names: tuple[str, ...]) -> tuple[TargetGroup, ...]:
        groups = self._call(
            self.elbv2, "elasticloadbalancing", "DescribeTargetGroups", Names=list(names)
        )["TargetGroups"]
        return tuple(
            TargetGroup(
                g["TargetGroupArn"],
                g["TargetGroupName"],
                g.get("Protocol") or "HTTP",
                g.get("Port"),
            )
            for g in groups
        )

    def rules(self, listener_arn: str) -> tuple[Rule, ...]:
        found = self._call(
            self.elbv2, "elasticloadbalancing", "DescribeRules", ListenerArn=listener_arn
        )["Rules"]
        rules = []
        for item in found:
            hosts: list[str] = []
            other = False
            for condition in item.get("Conditions") or []:
                if condition.get("Field") == "host-header":
                    config = condition.get("HostHeaderConfig") or {}
                    hosts += config.get("Values") or condition.get("Values") or []
                else:
                    other = True
            rules.append(
                Rule(
                    item.get("RuleArn", ""),
                    str(item.get("Priority", "default")),
                    tuple(hosts),
                    other,
                    _forward_targets({"DefaultActions": item.get("Actions") or []}),
                )
            )
        return tuple(rules)

    def certificate_host(self, certificate_arn: str) -> tuple[str, str] | None:
        """The certificate's domain name, or its first name that is not a wildcard."""
        if self.acm is None:
            return None
        info = self._call(self.acm, "acm", "DescribeCertificate", CertificateArn=certificate_arn)[
            "Certificate"
        ]
        names = [info.get("DomainName", ""), *(info.get("SubjectAlternativeNames") or [])]
        host = next((n for n in names if n and "*" not in n), None)
        return (
            (host, f"derived from the test listener's certificate {certificate_arn}")
            if host
            else None
        )

    def green_targets(self, stack: Stack) -> list[GreenTarget]:
        """Every healthy registered green task, each addressed directly by ``ip:port``."""
        return self.tasks_in(stack.green)

    def tasks_in(self, groups: tuple[TargetGroup, ...]) -> list[GreenTarget]:
        """Every healthy task registered in ``groups``, each addressed by ``ip:port``."""
        found: list[GreenTarget] = []
        for group in groups:
            health = self._call(
                self.elbv2,
                "elasticloadbalancing",
                "DescribeTargetHealth",
                TargetGroupArn=group.arn,
            )["TargetHealthDescriptions"]
            scheme = "https" if group.protocol.upper() == "HTTPS" else "http"
            for item in health:
                if item.get("TargetHealth", {}).get("State") != "healthy":
                    continue
                target = item.get("Target", {})
                address, port = target.get("Id"), target.get("Port") or group.port
                label = f"{address}:{port}"
                host = f"[{address}]" if ":" in str(address) else address
                found.append(GreenTarget(f"{scheme}://{host}:{port}", label))
        if not found:
            names = ", ".join(g.name for g in groups) or "no green target group"
            raise DiscoveryError(f"no healthy registered target in {names} to test directly")
        return sorted(found, key=lambda t: t.label)

    def wait_ready(
        self,
        target_groups: tuple[str, ...],
        *,
        timeout: float,
        deadline: Deadline,
        interval: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Wait until every green target is healthy; raise naming the ones that are not."""
        if not target_groups or timeout <= 0:
            return
        started = time.monotonic()
        until = Deadline(min(deadline.at, started + timeout))
        attempt = 0
        while True:
            attempt += 1
            problems = []
            for arn in target_groups:
                health = self._call(
                    self.elbv2, "elasticloadbalancing", "DescribeTargetHealth", TargetGroupArn=arn
                )["TargetHealthDescriptions"]
                problems += _unhealthy(arn, health)
            if not problems:
                log.info("green targets are healthy", extra={"checks": attempt})
                return
            if until.expired():
                raise TargetNotReadyError(
                    f"green targets not healthy after {attempt} checks in "
                    f"{time.monotonic() - started:.0f}s (readiness timeout {timeout:g}s, or the "
                    f"deadline): " + "; ".join(problems)
                )
            log.info(
                "waiting for the green targets to be healthy",
                extra={"check": attempt, "not_ready": problems},
            )
            sleep(min(interval, until.remaining()))


def _green_names(
    event: LifecycleEvent, pair: tuple[str, ...], test: Listener, prod: Listener | None
) -> tuple[tuple[str, ...], str]:
    """Green's target-group names, and how they were told apart."""
    if prod is not None and len(pair) == 2:
        serving = {target_group_name(a) for a in prod.target_group_arns} & set(pair)
        if len(serving) == 1:
            if event.green_on_prod_listener:
                return tuple(serving), "the production listener (after AllowTraffic)"
            return (
                tuple(n for n in pair if n not in serving),
                "the target-group pair, less the group the production listener serves",
            )
    if event in (LifecycleEvent.BEFORE_INSTALL, LifecycleEvent.AFTER_INSTALL):
        raise DiscoveryError(
            f"cannot tell the green target group at {event.value}: the deployment group's "
            f"target-group pair ({', '.join(pair) or 'none'}) and production listener do not "
            f"single it out"
        )
    names = tuple(target_group_name(a) for a in test.target_group_arns)
    log.warning(
        "green told apart by the test listener's forward action alone (no target-group pair "
        "with one group on the production listener)",
        extra={"green": names},
    )
    return names, "the test listener's forward action"


def target_group_name(arn: str) -> str:
    resource = arn.split(":")[-1]  # targetgroup/<name>/<id>
    return resource.split("/")[1] if resource.startswith("targetgroup/") else resource


def _forward_targets(listener: Mapping[str, Any]) -> tuple[str, ...]:
    arns: list[str] = []
    for action in listener.get("DefaultActions", []):
        if action.get("Type") != "forward":
            continue
        if action.get("TargetGroupArn"):
            arns.append(action["TargetGroupArn"])
        for group in (action.get("ForwardConfig") or {}).get("TargetGroups", []):
            if group.get("Weight", 1) > 0 and group["TargetGroupArn"] not in arns:
                arns.append(group["TargetGroupArn"])
    return tuple(arns)


def _unhealthy(arn: str, health: list[Mapping[str, Any]]) -> list[str]:
    name = target_group_name(arn)
    active = [h for h in health if h.get("TargetHealth", {}).get("State") != "draining"]
    if not active:
        return [f"{name} has no registered targets"]
    problems = []
    for item in active:
        state = item.get("TargetHealth", {})
        if state.get("State") != "healthy":
            target = item.get("Target", {})
            what = f"{target.get('Id')}:{target.get('Port')}"
            reason = state.get("Reason", "")
            detail = state.get("Description", "")
            problems.append(
                f"{name} target {what} is {state.get('State')}"
                f"{f' ({reason}: {detail})' if reason or detail else ''}"
            )
    return problems


def _snake(operation: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def account_from_arn(arn: str | None) -> str | None:
    if arn and arn.count(":") >= 5:
        return arn.split(":")[4] or None
    return None
