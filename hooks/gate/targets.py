"""The target each lifecycle event tests: plan in, resolved target out.

DESIGN.md, "what each event can test": BeforeInstall tests production only (no green
exists); AfterInstall each green task directly (the test listener still routes to blue);
AfterAllowTestTraffic and BeforeAllowTraffic the test listener, once proved to forward to
green; AfterAllowTraffic the production listener, which now serves green. An Amazon ECS
stage tests what its counterpart event does, found from the service revision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hooks.aws.discovery import Deployment, Discovery, GreenTarget, Stack, target_group_name
from hooks.core.deadline import Deadline
from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.settings import Settings
from hooks.core.target import Target, cloudwatch_dimensions
from hooks.gate.plan import Plan

if TYPE_CHECKING:
    from hooks.gate.summary import Progress, Runtime

__all__ = ["Resolved", "resolve_target", "with_host"]

log = logging.getLogger(__name__)

_NO_TARGET = (
    "no target: set GREENLIGHT_TARGET_URL (or target_url in the plan), or run with discovery"
)


@dataclass
class Resolved:
    """The target of this run, the plan as discovery completed it, and the green tasks."""

    target: Target
    plan: Plan
    #: Each healthy green task, to test directly (AfterInstall, ``per_target``).
    green_targets: list[GreenTarget] = field(default_factory=list)
    #: The load balancer is internal and the function is not in a VPC.
    unreachable_hint: str | None = None


def resolve_target(
    plan: Plan,
    deployment: Deployment | None,
    call: Any,
    runtime: Runtime,
    deadline: Deadline,
    progress: Progress,
    settings: Settings,
) -> Resolved:
    """What to test at this event: through CodeDeploy's load balancer, or for an Amazon ECS
    hook call (``call``), its service revision."""
    if call is not None:
        return _ecs_target(plan, call, runtime, deadline, progress)
    return _codedeploy_target(plan, deployment, runtime, deadline, progress, settings)


def _codedeploy_target(
    plan: Plan,
    deployment: Deployment | None,
    runtime: Runtime,
    deadline: Deadline,
    progress: Progress,
    settings: Settings,
) -> Resolved:
    """What to test at this event (DESIGN.md, "what each event can test"): the URL the
    plan names, or the listener discovery finds and proves."""
    if plan.target_url is None:
        if deployment is None or runtime.discovery is None:
            raise ConfigError(_NO_TARGET)
        return _discovered(plan, deployment, runtime.discovery, deadline, progress, settings)
    url, prod_url = plan.target_url, plan.prod_url
    if plan.event is LifecycleEvent.BEFORE_INSTALL:
        if prod_url is None:
            log.warning(
                "at BeforeInstall no green task set exists: the target URL %s is taken as "
                "production (set GREENLIGHT_PROD_URL or prod_url to say so)",
                url,
            )
        url = prod_url = prod_url or url
    return Resolved(_target(plan, url, prod_url, {}), plan)


def _discovered(
    plan: Plan,
    deployment: Deployment,
    discovery: Discovery,
    deadline: Deadline,
    progress: Progress,
    settings: Settings,
) -> Resolved:
    """BeforeInstall: production only (no green exists). AfterInstall: each green task
    directly (the test listener still routes to blue). AfterAllowTestTraffic and
    BeforeAllowTraffic: the test listener, once proved to forward to green.
    AfterAllowTraffic: the production listener, which now serves green."""
    event = plan.event
    progress.set("finding the listeners (elasticloadbalancing:DescribeListeners)")
    stack = discovery.stack(deployment, event)
    url, discovered_prod = stack.urls(event)
    prod_url = plan.prod_url or discovered_prod
    log.info(
        "discovered the target",
        extra={
            "test_url": url,
            "prod_url": prod_url,
            "green_target_groups": [g.name for g in stack.green],
            "green_told_apart_by": stack.green_source,
        },
    )
    served_by = stack.prod if event.green_on_prod_listener and stack.prod else stack.test
    hint = None
    if served_by.scheme == "internal" and settings.in_vpc is False:
        hint = "internal load balancer: deploy with SubnetIds/SecurityGroupIds"
        log.warning(
            "the load balancer %s is internal and this function is not in a VPC: checks "
            "cannot reach it (%s)",
            served_by.dns_name,
            hint,
        )
    if event is LifecycleEvent.BEFORE_INSTALL:
        return Resolved(_target(plan, url, prod_url, {}), plan, [], hint)
    dimensions: dict[str, str] = {}
    if stack.green_target_groups:
        dimensions = cloudwatch_dimensions(served_by.arn, stack.green_target_groups[0])
    progress.set(
        "waiting for the green targets to be healthy (elasticloadbalancing:DescribeTargetHealth)"
    )
    discovery.wait_ready(
        stack.green_target_groups, timeout=plan.readiness_timeout, deadline=deadline
    )
    plan = with_host(plan, stack, discovery)
    if event in (LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC, LifecycleEvent.BEFORE_ALLOW_TRAFFIC):
        progress.set("checking that the test listener forwards to green")
        stack.prove_green(plan.host)
    green = discovery.green_targets(stack)
    log.info("green tasks", extra={"green_targets": [t.label for t in green]})
    return Resolved(_target(plan, url, prod_url, dimensions), plan, green, hint)


def _target(plan: Plan, url: str, prod_url: str | None, dimensions: dict[str, str]) -> Target:
    return Target(
        url=url,
        prod_url=prod_url,
        host=plan.host,
        verify=plan.verify,
        ca_bundle=plan.ca_bundle,
        headers=dict(plan.headers),
        dimensions=dimensions,
    )


def _ecs_target(
    plan: Plan, call: Any, runtime: Runtime, deadline: Deadline, progress: Progress
) -> Resolved:
    """The green revision of an ECS service deployment: through the test listener rule (or
    Service Connect with the test header); its tasks directly after scale-up, when no
    test traffic reaches it yet; production before green exists."""
    event = plan.event
    url, prod_url = plan.target_url, plan.prod_url
    host, headers = plan.host, dict(plan.headers)
    green: list[GreenTarget] = []
    dimensions: dict[str, str] = {}
    if url is None:
        discovery = runtime.ecs_discovery
        if discovery is None:
            raise ConfigError(_NO_TARGET)
        progress.set("finding the green revision (ecs:DescribeServiceRevisions)")
        found = discovery.target(call.deployment_arn, call.target_revision_arn)
        url, prod_url = found.url, prod_url or found.prod_url
        host = host or found.host
        headers = {**found.headers, **headers}
        if event is not LifecycleEvent.BEFORE_INSTALL:
            dimensions = dict(found.dimensions)
        if event is LifecycleEvent.BEFORE_INSTALL:
            url = prod_url or url
        elif found.green_target_groups and runtime.discovery is not None:
            progress.set(
                "waiting for the green targets to be healthy "
                "(elasticloadbalancing:DescribeTargetHealth)"
            )
            runtime.discovery.wait_ready(
                found.green_target_groups, timeout=plan.readiness_timeout, deadline=deadline
            )
            if event is LifecycleEvent.AFTER_INSTALL:
                groups = runtime.discovery.target_groups(
                    tuple(target_group_name(arn) for arn in found.green_target_groups)
                )
                green = runtime.discovery.tasks_in(groups)
        if host != plan.host:
            plan = replace(plan, host=host, sources={**plan.sources, "host": found.source})
    elif event is LifecycleEvent.BEFORE_INSTALL:
        url = prod_url = prod_url or url
    target = Target(
        url=url,
        prod_url=prod_url,
        host=host,
        verify=plan.verify,
        ca_bundle=plan.ca_bundle,
        headers=headers,
        dimensions=dimensions,
    )
    return Resolved(target, plan, green)


def with_host(plan: Plan, stack: Stack, discovery: Discovery) -> Plan:
    """The plan with a host name for an HTTPS test listener, when none is configured.

    From the listener's rules (one exact ``host-header`` value), else from its certificate
    (the domain name, or a name that is not a wildcard); logged like every plan value.
    """
    if plan.host is not None or stack.test.protocol not in ("HTTPS", "TLS"):
        return plan
    derived = stack.derived_host()
    if derived is None and stack.certificate_arn:
        derived = discovery.certificate_host(stack.certificate_arn)
    if derived is None:
        log.warning(
            "the test listener is HTTPS and no host name is set or derivable: certificate "
            "checks will use the load balancer's DNS name (set host, greenlight:host or "
            "GREENLIGHT_TARGET_HOST)"
        )
        return plan
    host, source = derived
    log.info("host name %s %s", host, source)
    return replace(plan, host=host, sources={**plan.sources, "host": source})
