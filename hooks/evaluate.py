"""The work of one run: plan -> target -> suites (in workers) -> verdict (imported on first use).

This is the supervisor's side: it never imports, loads or runs suite code.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from hooks.deadline import Deadline
from hooks.discovery import Deployment
from hooks.exceptions import ConfigError
from hooks.lifecycle import LifecycleEvent
from hooks.plan import Plan, PlanFile, resolve_plan
from hooks.results import Policy
from hooks.runner import RunResult
from hooks.settings import Settings
from hooks.suites.registry import Catalog, check_suites_dir
from hooks.supervisor import SupervisedRun, Supervisor
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
    """Fill ``summary`` with the plan, the target, the results and the verdict.

    The catalog worker starts first, so that its imports and suite loading overlap the plan
    and discovery; it is ended whatever happens next.
    """
    check_suites_dir(settings.suites_dir)
    setup = {
        "suites_dir": str(settings.suites_dir),
        "log_keys": summary.invocation.log_keys(),
        **_worker_logging(),
    }
    supervisor = Supervisor(SupervisedRun(setup, settings.memory_mb, runtime.on_check))
    progress.supervisor = supervisor.start()
    try:
        _evaluate(summary, settings, deadline, runtime, progress, supervisor)
    finally:
        supervisor.close()


def _evaluate(
    summary: RunSummary,
    settings: Settings,
    deadline: Deadline,
    runtime: Runtime,
    progress: Progress,
    supervisor: Supervisor,
) -> None:
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

    progress.set(f"running suites from {settings.suites_dir} in worker processes")
    started = time.monotonic()
    from hooks import redact

    redact.register(*plan.headers.values())
    job = {
        "event": event.value,
        "planned": list(plan.suites) if plan.suites is not None else None,
        "planned_source": plan.sources.get("suites", "default"),
        "policies": {name: _policy(p) for name, p in plan.policies.items()},
        "target": {
            "url": target.url,
            "prod_url": target.prod_url,
            "host": target.host,
            "verify": target.verify,
            "ca_bundle": target.ca_bundle,
            "headers": dict(target.headers),
        },
        "deployment": {
            "deployment_id": invocation.deployment_id,
            "execution_id": invocation.execution_id,
            "application": application,
            "deployment_group": group,
        },
        "concurrency": plan.concurrency,
        "request_timeout": plan.request_timeout,
        "max_body_bytes": plan.max_body_bytes,
        "secrets": redact.secrets(),
    }
    results, cut_short = supervisor.execute(job, deadline)
    run = RunResult(tuple(results), cut_short, time.monotonic() - started)
    summary.run = run
    summary.verdict = decide(run.suites, deadline_reached=run.deadline_reached)


def _worker_logging() -> dict[str, object]:
    """Workers log as this process does: JSON at its level, or the command line's text."""
    package = logging.getLogger("hooks")
    plain = any(type(h.formatter) is logging.Formatter for h in package.handlers)
    return {"log_plain": plain, "log_level": logging.getLevelName(package.getEffectiveLevel())}


def _policy(policy: Policy) -> dict[str, object]:
    return {"report_only": policy.report_only, "failure_limit": policy.failure_limit}


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
