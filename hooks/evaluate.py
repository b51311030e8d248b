"""The work of one run: plan -> target -> suites -> verdict (imported on first use)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hooks.deadline import Deadline
from hooks.discovery import Deployment
from hooks.exceptions import ConfigError
from hooks.lifecycle import LifecycleEvent
from hooks.plan import Plan, PlanFile, resolve_plan
from hooks.runner import run_suites
from hooks.settings import Settings
from hooks.suites.base import DeploymentInfo, Suite
from hooks.suites.registry import BrokenSuite, Catalog, discover
from hooks.target import Target
from hooks.verdict import decide

if TYPE_CHECKING:
    from hooks.hook import Progress, RunSummary, Runtime

log = logging.getLogger(__name__)


def evaluate(
    summary: RunSummary,
    settings: Settings,
    deadline: Deadline,
    runtime: Runtime,
    progress: Progress,
) -> None:
    """Fill ``summary`` with the plan, the target, the results and the verdict."""
    invocation = summary.invocation
    event = invocation.lifecycle_event
    progress.set(f"reading the plan file {settings.plan_file}")
    plan_file = PlanFile.load(settings.plan_file)

    deployment: Deployment | None = None
    tags: dict[str, str] = {}
    if settings.target_url is None and runtime.discovery is not None:
        progress.set("looking up the deployment (codedeploy:GetDeployment)")
        deployment = runtime.discovery.deployment(invocation.deployment_id)
        if settings.use_tags:
            progress.set("reading the deployment group's tags")
            tags = runtime.discovery.tags(deployment, runtime.region)

    application = deployment.application if deployment else settings.application
    group = deployment.deployment_group if deployment else settings.deployment_group
    plan = resolve_plan(
        event, settings, plan_file, application=application, deployment_group=group, tags=tags
    )
    summary.plan = plan
    log.info("plan", extra={"plan": plan.describe()})

    target = _target(plan, deployment, runtime, deadline, progress)
    summary.target = target
    if not target.verify:
        log.warning(
            "TLS certificate verification is disabled for %s (source: %s)",
            target.url,
            plan.sources.get("verify"),
        )

    progress.set(f"loading suites from {settings.suites_dir}")
    catalog = runtime.catalogs.get(settings.suites_dir)
    if catalog is None:
        catalog = runtime.catalogs[settings.suites_dir] = discover(settings.suites_dir)
    suites = select(catalog, plan, settings)
    names = ", ".join(s.name for s in suites)
    progress.set(f"running suites {names}")
    info = DeploymentInfo(
        invocation.deployment_id, invocation.execution_id, event, application, group
    )
    run = run_suites(
        suites,
        target=target,
        deployment=info,
        deadline=deadline,
        concurrency=plan.concurrency,
        request_timeout=plan.request_timeout,
        on_check=runtime.on_check,
    )
    summary.run = run
    summary.verdict = decide(run.suites, deadline_reached=run.deadline_reached)


def _target(
    plan: Plan,
    deployment: Deployment | None,
    runtime: Runtime,
    deadline: Deadline,
    progress: Progress,
) -> Target:
    url, prod_url = plan.target_url, plan.prod_url
    if url is None:
        if deployment is None or runtime.discovery is None:
            raise ConfigError(
                "no target: set GREENLIGHT_TARGET_URL (or target_url in the plan), "
                "or run with discovery"
            )
        progress.set("finding the test listener (elasticloadbalancing:DescribeListeners)")
        stack = runtime.discovery.stack(deployment)
        url, discovered_prod = stack.urls(plan.event)
        prod_url = prod_url or discovered_prod
        log.info(
            "discovered the target",
            extra={
                "test_url": url,
                "prod_url": prod_url,
                "green_target_groups": stack.green_target_groups,
            },
        )
        progress.set(
            "waiting for the green targets to be healthy "
            "(elasticloadbalancing:DescribeTargetHealth)"
        )
        runtime.discovery.wait_ready(
            stack.green_target_groups, timeout=plan.readiness_timeout, deadline=deadline
        )
    return Target(
        url=url,
        prod_url=prod_url,
        host=plan.host,
        verify=plan.verify,
        ca_bundle=plan.ca_bundle,
        headers=dict(plan.headers),
    )


def select(catalog: Catalog, plan: Plan, settings: Settings) -> list[Suite]:
    """The suites planned for the event; a planned suite that does not exist fails the gate.

    A planned name ``tag:NAME`` stands for every suite carrying that tag (at least one).
    """
    event: LifecycleEvent = plan.event
    if plan.suites is None:
        chosen: list[Suite] = [s for s in catalog.suites if s.runs_at(event)]
    else:
        by_name = catalog.by_name()
        chosen = []
        for name in plan.suites:
            tagged = [s for s in catalog.suites if name.startswith("tag:") and name[4:] in s.tags]
            found = tagged or by_name.get(name, [])
            chosen.extend(s for s in found if s not in chosen)
            if not found:
                known = ", ".join(catalog.names()) or "none"
                chosen.append(
                    BrokenSuite(
                        name,
                        "missing",
                        f"planned suite {name!r} does not exist "
                        f"(source: {plan.sources['suites']}); suites found in "
                        f"{settings.suites_dir} and installed plugins: {known}",
                    )
                )
    return [s.with_policy(plan.policies[s.name]) if s.name in plan.policies else s for s in chosen]


def planned_events(
    catalog: Catalog, plan_file: PlanFile | None, settings: Settings
) -> list[LifecycleEvent]:
    """Events with suites planned: named by the plan, or declared by a suite's ``events``.

    Suites that run at every event (the built-in reachability suite, pytest suites) do
    not by themselves plan an event: nothing was asked of it.
    """
    planned = []
    for event in LifecycleEvent:
        plan = resolve_plan(
            event,
            settings,
            plan_file,
            application=settings.application,
            deployment_group=settings.deployment_group,
        )
        if plan.suites is not None:
            if plan.suites:
                planned.append(event)
        elif any(event in suite.events for suite in catalog.suites):
            planned.append(event)
    return planned
