"""Discovery for Amazon ECS native blue/green: where the green revision can be reached.

``ecs:DescribeServiceDeployments`` gives the deployment's target (green) revision and
whether it is rolling back; ``ecs:DescribeServiceRevisions`` gives the revision's load
balancers — ``advancedConfiguration.testListenerRule`` and ``productionListenerRule`` — and
the green target group (``resolvedConfiguration``), or its Service Connect aliases.
``elasticloadbalancing:DescribeRules`` gives the test rule's conditions (a host name to send,
a header to carry), ``DescribeListeners`` and ``DescribeLoadBalancers`` the address. With
Service Connect and no load balancer, green is reached through the client alias with the
test-traffic header (``x-amzn-ecs-bluegreen-test`` unless the alias names another).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hooks.aws.discovery import explain
from hooks.core.exceptions import DiscoveryError
from hooks.core.target import cloudwatch_dimensions

__all__ = ["SERVICE_CONNECT_TEST_HEADER", "EcsDiscovery", "EcsTarget", "listener_of"]

log = logging.getLogger(__name__)

#: The header Service Connect routes test traffic on (the AWS samples use this name).
SERVICE_CONNECT_TEST_HEADER = "x-amzn-ecs-bluegreen-test"


@dataclass(frozen=True)
class EcsTarget:
    """How to reach the green revision, and the target groups its tasks register in."""

    url: str
    prod_url: str | None = None
    host: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    green_target_groups: tuple[str, ...] = ()
    #: Where the address came from: "load balancer test rule" or "Service Connect".
    source: str = ""
    #: Green's CloudWatch dimensions behind the test rule's load balancer (LoadBalancer,
    #: TargetGroup); none through Service Connect.
    dimensions: Mapping[str, str] = field(default_factory=dict)


def listener_of(rule_arn: str) -> str:
    """``...:listener-rule/app/lb/1/2/rule`` -> ``...:listener/app/lb/1/2``."""
    return rule_arn.replace(":listener-rule/", ":listener/").rsplit("/", 1)[0]


def _exact(values: Any) -> str | None:
    """The first value of a rule condition without wildcards."""
    for value in values or ():
        if isinstance(value, str) and value and not any(c in value for c in "*?"):
            return value
    return None


class EcsDiscovery:
    def __init__(self, ecs: Any | Callable[[], Any], elbv2: Any | Callable[[], Any]) -> None:
        self._factories = {"ecs": ecs, "elbv2": elbv2}
        self._clients: dict[str, Any] = {}

    def _client(self, name: str) -> Any:
        if name not in self._clients:
            made = self._factories[name]
            self._clients[name] = made() if callable(made) and not hasattr(made, "meta") else made
        return self._clients[name]

    def _call(self, service: str, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client(service), operation)(**kwargs)
        except Exception as exc:
            raise explain(service, operation, exc) from exc

    def deployment(self, deployment_arn: str) -> Mapping[str, Any]:
        found = self._call(
            "ecs", "describe_service_deployments", serviceDeploymentArns=[deployment_arn]
        ).get("serviceDeployments", [])
        if not found:
            raise DiscoveryError(f"ecs:DescribeServiceDeployments found no {deployment_arn}")
        deployment: Mapping[str, Any] = found[0]
        return deployment

    def tags(self, service_arn: str) -> dict[str, str]:
        """The service's tags (``greenlight:*`` choose its plan, as a deployment group's do)."""
        found = self._call("ecs", "list_tags_for_resource", resourceArn=service_arn)
        return {t["key"]: t.get("value", "") for t in found.get("tags", [])}

    def rolling_back(self, deployment_arn: str) -> bool:
        deployment = self.deployment(deployment_arn)
        status = str(deployment.get("status", ""))
        return bool(deployment.get("rollback")) or status.startswith("ROLLBACK")

    def target(self, deployment_arn: str | None, revision_arn: str | None) -> EcsTarget:
        if revision_arn is None:
            if deployment_arn is None:
                raise DiscoveryError(
                    "the ECS event names neither the service deployment (resourceArn) nor the "
                    "target revision: set GREENLIGHT_TARGET_URL"
                )
            target = self.deployment(deployment_arn).get("targetServiceRevision") or {}
            revision_arn = target.get("arn")
            if not revision_arn:
                raise DiscoveryError(f"the service deployment {deployment_arn} has no target")
        revisions = self._call(
            "ecs", "describe_service_revisions", serviceRevisionArns=[revision_arn]
        ).get("serviceRevisions", [])
        if not revisions:
            raise DiscoveryError(f"ecs:DescribeServiceRevisions found no {revision_arn}")
        revision = revisions[0]
        resolved = (revision.get("resolvedConfiguration") or {}).get("loadBalancers") or []
        green_groups = tuple(lb["targetGroupArn"] for lb in resolved if lb.get("targetGroupArn"))
        for balancer in revision.get("loadBalancers") or ():
            advanced = balancer.get("advancedConfiguration") or {}
            if advanced.get("testListenerRule"):
                return self._through_rules(advanced, green_groups)
        connect = revision.get("serviceConnectConfiguration") or {}
        if connect.get("enabled") and connect.get("services"):
            return self._through_service_connect(connect)
        raise DiscoveryError(
            f"the service revision {revision_arn} has no load balancer with a test listener "
            "rule (advancedConfiguration.testListenerRule) and no Service Connect service: "
            "set GREENLIGHT_TARGET_URL"
        )

    def _through_rules(self, advanced: Mapping[str, Any], green: tuple[str, ...]) -> EcsTarget:
        test_rule = advanced["testListenerRule"]
        prod_rule = advanced.get("productionListenerRule")
        rule_arns = [test_rule, *([prod_rule] if prod_rule else [])]
        rules = {
            r["RuleArn"]: r
            for r in self._call("elbv2", "describe_rules", RuleArns=rule_arns).get("Rules", [])
        }
        listeners = list(dict.fromkeys(listener_of(arn) for arn in rule_arns))
        described = {
            item["ListenerArn"]: item
            for item in self._call("elbv2", "describe_listeners", ListenerArns=listeners).get(
                "Listeners", []
            )
        }
        balancers = list(dict.fromkeys(item["LoadBalancerArn"] for item in described.values()))
        dns = {
            item["LoadBalancerArn"]: item["DNSName"]
            for item in self._call(
                "elbv2", "describe_load_balancers", LoadBalancerArns=balancers
            ).get("LoadBalancers", [])
        }

        def url(rule_arn: str) -> str:
            listener = described[listener_of(rule_arn)]
            scheme = "https" if listener.get("Protocol") in ("HTTPS", "TLS") else "http"
            return f"{scheme}://{dns[listener['LoadBalancerArn']]}:{listener['Port']}"

        host, headers = None, {}
        for condition in rules.get(test_rule, {}).get("Conditions", []):
            if condition.get("Field") == "host-header":
                config = condition.get("HostHeaderConfig") or {}
                host = _exact(config.get("Values") or condition.get("Values"))
            elif condition.get("Field") == "http-header":
                config = condition.get("HttpHeaderConfig") or {}
                value = _exact(config.get("Values"))
                if config.get("HttpHeaderName") and value:
                    headers[config["HttpHeaderName"]] = value
        target = EcsTarget(
            url=url(test_rule),
            prod_url=url(prod_rule) if prod_rule else None,
            host=host,
            headers=headers,
            green_target_groups=green,
            source="load balancer test rule",
            dimensions=cloudwatch_dimensions(test_rule, green[0] if green else None),
        )
        log.info(
            "discovered the ECS test route",
            extra={"test_url": target.url, "host": host, "headers": sorted(headers)},
        )
        return target

    def _through_service_connect(self, connect: Mapping[str, Any]) -> EcsTarget:
        for service in connect["services"]:
            for alias in service.get("clientAliases") or ():
                name = alias.get("dnsName") or service.get("discoveryName") or service["portName"]
                rules = alias.get("testTrafficRules") or {}
                header = rules.get("header") or {}
                value = (header.get("value") or {}).get("exact") or "true"
                header_name = header.get("name") or SERVICE_CONNECT_TEST_HEADER
                target = EcsTarget(
                    url=f"http://{name}:{alias['port']}",
                    prod_url=f"http://{name}:{alias['port']}",
                    headers={header_name: value},
                    source="Service Connect",
                )
                log.info(
                    "discovered the ECS Service Connect test route",
                    extra={"test_url": target.url, "header": header_name},
                )
                return target
        raise DiscoveryError("the Service Connect configuration has no client alias to call")
