"""Find the green stack from the deployment: listeners, URLs, target health.

get_deployment -> (loadBalancerInfo, else get_deployment_group) -> test and production
listener ARNs -> describe_listeners -> describe_load_balancers -> URLs. The green target
group is the one the test listener forwards to. Every AWS error becomes a
:class:`DiscoveryError` naming the call that failed and what to fix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hooks.deadline import Deadline
from hooks.exceptions import DiscoveryError, TargetNotReadyError
from hooks.lifecycle import LifecycleEvent

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
class Deployment:
    """What get_deployment (and get_deployment_group) say about the deployment."""

    deployment_id: str
    application: str
    deployment_group: str
    load_balancer_info: Mapping[str, Any]
    service_role_arn: str | None = None


@dataclass(frozen=True)
class Stack:
    """The discovered target: URLs of both listeners and the green target groups."""

    test: Listener
    prod: Listener | None
    green_target_groups: tuple[str, ...] = field(default_factory=tuple)

    def urls(self, event: LifecycleEvent) -> tuple[str, str | None]:
        """(green URL, production URL); after AllowTraffic production serves green too."""
        if event.green_on_prod_listener and self.prod is not None:
            return self.prod.url, self.prod.url
        return self.test.url, self.prod.url if self.prod else None


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
        return DiscoveryError(
            f"{action} failed: cannot reach the {service} API ({exc}) -> a function in a VPC "
            f"needs a NAT gateway or an interface VPC endpoint for {service}"
        )
    if isinstance(exc, BotoCoreError):
        return DiscoveryError(f"{action} failed: {exc}")
    return DiscoveryError(f"{action} failed: {type(exc).__name__}: {exc}")


class Discovery:
    """Discovery calls, with clients built once per container and passed in."""

    def __init__(self, codedeploy: Any, elbv2: Any) -> None:
        self.codedeploy = codedeploy
        self.elbv2 = elbv2

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

    def stack(self, deployment: Deployment) -> Stack:
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
        if test.scheme == "internal":
            log.info(
                "the test listener is on an internal load balancer: the hook must run in its VPC"
            )
        return Stack(test, prod, test.target_group_arns)

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
    resource = arn.split(":")[-1]  # targetgroup/<name>/<id>
    name = resource.split("/")[1] if resource.startswith("targetgroup/") else resource
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
