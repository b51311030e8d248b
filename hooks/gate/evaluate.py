"""A run, top-down: plan -> target -> job -> suites (in workers) -> verdict.

This is the supervisor's side: it never imports, loads or runs suite code. Each step is
one call, and each lives in one module:

1. the plan, from this process's own sources (:func:`resolve_run_plan`, :mod:`hooks.gate.plan`);
2. the plan's header secrets (:mod:`hooks.aws.secrets`);
3. the target this event tests (:func:`hooks.gate.targets.resolve_target`);
4. the job for the workers (:func:`build_job`, :class:`hooks.process.messages.Job`);
5. the suites, run here by the supervisor (:func:`run_here`, :mod:`hooks.process.supervisor`)
   or handed to the state machine (the adapter's ``hand_off``);
6. the verdict (:mod:`hooks.gate.decision`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from hooks.aws import secrets, signing
from hooks.aws.discovery import Deployment
from hooks.core import redact
from hooks.core.deadline import Deadline
from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import HookInvocation, LifecycleEvent
from hooks.core.settings import Settings
from hooks.gate.carried import GateState, now, plan_digest
from hooks.gate.decision import decide, decide_planned, planned_from
from hooks.gate.plan import Plan, PlanFile, plans_by_event, resolve_plan
from hooks.gate.targets import Resolved, resolve_target
from hooks.process.messages import GreenTask, Job, Setup
from hooks.process.runner import RunResult
from hooks.process.supervisor import SupervisedRun, Supervisor
from hooks.suites.base import DeploymentInfo
from hooks.suites.registry import Catalog, check_suites_dir

if TYPE_CHECKING:
    from hooks.gate.summary import Progress, RunSummary, Runtime

__all__ = [
    "HandOff",
    "build_job",
    "evaluate",
    "header_secrets",
    "listing_job",
    "planned_events",
    "resolve_run_plan",
    "run_here",
    "signing_key",
    "start_supervisor",
]

log = logging.getLogger(__name__)

#: ``runner: stepfunctions``: what hands a run to the state machine (the Step Functions
#: adapter's ``hand_off``): the summary, the job (its header secrets as written), the plan,
#: the settings, the supervisor (to list the suites), the deadline, the runtime, progress.
HandOff = Callable[..., None]

_CONNECT_FAILURES = (
    "cannot connect",
    "cannot resolve the host name",
    "connection timed out",
    "no complete response",
)


def evaluate(
    summary: RunSummary,
    settings: Settings,
    deadline: Deadline,
    runtime: Runtime,
    progress: Progress,
    hand_off: HandOff | None = None,
) -> None:
    """Fill ``summary`` with the plan, the target, the results and the verdict.

    The catalog worker starts first, so that its imports and suite loading overlap the plan
    and discovery; it is ended whatever happens next.
    """
    try:
        check_suites_dir(settings.suites_dir)
        if progress.supervisor is None:
            progress.supervisor = start_supervisor(
                settings, summary.invocation, runtime, progress.log_keys
            )
        supervisor: Supervisor = progress.supervisor
        plan, deployment = resolve_run_plan(summary, settings, runtime, progress)
        written_headers = dict(plan.headers)  # before secrets: what a hand-off may carry
        plan = _with_header_secrets(plan, settings, progress)
        summary.plan = plan
        log.info("plan", extra={"plan": plan.describe()})
        call = summary.invocation.ecs
        resolved = resolve_target(plan, deployment, call, runtime, deadline, progress, settings)
        summary.target, summary.plan = resolved.target, resolved.plan
        if not resolved.target.verify:
            log.warning(
                "TLS certificate verification is disabled for %s (source: %s)",
                resolved.target.url,
                resolved.plan.sources.get("verify"),
            )
        progress.set(f"running suites from {settings.suites_dir} in worker processes")
        started = time.monotonic()
        job = build_job(summary, resolved, settings, runtime, progress)
        if resolved.plan.runner == "stepfunctions":
            if hand_off is None:
                raise ConfigError("runner: stepfunctions: this process cannot hand a run off")
            headers = {**resolved.target.headers, **written_headers}
            job = replace(job, target=replace(resolved.target, headers=headers))
            hand_off(summary, job, resolved.plan, settings, supervisor, deadline, runtime, progress)
            return
        run_here(summary, job, resolved, supervisor, deadline, runtime, started)
    finally:
        if progress.supervisor is not None:
            progress.supervisor.close()


def start_supervisor(
    settings: Settings,
    invocation: HookInvocation,
    runtime: Runtime,
    log_keys: dict[str, Any] | None = None,
) -> Supervisor:
    """A supervisor whose catalog worker is starting: set up with what is known already.

    ``log_keys`` (the Lambda request id, the cold start) join every line the workers log.
    """
    plain, level = _worker_logging()
    setup = Setup(
        suites_dir=str(settings.suites_dir),
        log_plain=plain,
        log_level=level,
        log_keys={**invocation.log_keys(), **(log_keys or {})},
    )
    return Supervisor(SupervisedRun(setup, settings.memory_mb, runtime.on_check)).start()


def _with_header_secrets(plan: Plan, settings: Settings, progress: Progress) -> Plan:
    if not any("${" in value for value in plan.headers.values()):
        return plan
    progress.set("reading the plan's header secrets (Secrets Manager, Parameter Store)")
    return replace(plan, headers=header_secrets(plan.headers, settings.secrets_max_age))


def build_job(
    summary: RunSummary,
    resolved: Resolved,
    settings: Settings,
    runtime: Runtime,
    progress: Progress,
) -> Job:
    """The workers' job: the plan's part (:func:`listing_job`), the target, the deployment,
    the suites' secrets (fetched here, cached across warm invocations) and, for an ECS
    gate, what its earlier calls passed."""
    plan, target, invocation = resolved.plan, resolved.target, summary.invocation
    call = invocation.ecs
    redact.bind(*plan.headers.values())
    references = secrets.scan(settings.suites_dir)
    if references:
        progress.set("reading the suites' secrets (Secrets Manager, Parameter Store)")
    resolved_secrets, unresolved = secrets.resolve_all(references, settings.secrets_max_age)
    gate_began, passed_earlier = _gate_state(call, plan, runtime)
    deployment = DeploymentInfo(
        invocation.deployment_id,
        invocation.execution_id,
        plan.event,
        summary.application,
        summary.deployment_group,
        stage=call.stage.value if call is not None else None,
        traffic=call.traffic() if call is not None else {},
        since=gate_began,
    )
    return replace(
        listing_job(plan, invocation),
        target=target,
        deployment=deployment,
        skip=tuple(passed_earlier),
        secrets=tuple(redact.secrets()),
        resolved=resolved_secrets,
        unresolved=unresolved,
        # AfterInstall tests every green task directly; later events when asked (per_target).
        green_targets=tuple(GreenTask(t.url, t.label) for t in resolved.green_targets),
    )


def run_here(
    summary: RunSummary,
    job: Job,
    resolved: Resolved,
    supervisor: Supervisor,
    deadline: Deadline,
    runtime: Runtime,
    started: float,
) -> None:
    """Run the job's suites in this invocation's workers and decide from the plan's listing."""
    runtime.warm_up()  # for the report, while the suites run (when discovery did not)
    results, cut_short = supervisor.execute(job, deadline)
    listed = supervisor.listing()
    if listed:  # the results fill the listing's slots, under the plan's policies
        verdict, results = decide_planned(
            planned_from(listed, resolved.plan.policies),
            results,
            "the suite workers",
            deadline_reached=cut_short,
        )
    else:  # the catalog never listed: its results say why, and fail the gate
        verdict = decide(results, deadline_reached=cut_short)
    run = RunResult(tuple(results), cut_short, time.monotonic() - started)
    summary.run = run
    if resolved.unreachable_hint and not verdict.succeeded and _cannot_connect(run):
        verdict = replace(verdict, reason=f"{verdict.reason} ({resolved.unreachable_hint})")
    summary.verdict = verdict
    # A suite that did not load is a configuration error (exit 2 on the command line).
    summary.configuration_error = any(not s.loaded for s in run.suites)


def listing_job(plan: Plan, invocation: HookInvocation) -> Job:
    """The part of a worker's job that the plan alone decides: which suites, under which
    policies and limits. Enough for the catalog worker to list them (the conclusion's job)."""
    return Job(
        deployment=DeploymentInfo(invocation.deployment_id, invocation.execution_id, plan.event),
        planned=tuple(plan.suites) if plan.suites is not None else None,
        planned_source=plan.sources.get("suites", "default"),
        policies=dict(plan.policies),
        plugins=tuple(plan.plugins),
        concurrency=plan.concurrency,
        request_timeout=plan.request_timeout,
        max_body_bytes=plan.max_body_bytes,
        per_target_all=plan.event is LifecycleEvent.AFTER_INSTALL or plan.per_target,
    )


def resolve_run_plan(
    summary: RunSummary, settings: Settings, runtime: Runtime, progress: Progress
) -> tuple[Plan, Deployment | None]:
    """The plan for this invocation, resolved here from this process's own sources: the
    plan file in its artifact, the settings, and the deployment it was called for (its
    application and group, their tags). Sets the summary's application and group."""
    invocation = summary.invocation
    progress.set(f"reading the plan file {settings.plan_file}")
    plan_file = PlanFile.load(settings.plan_file)
    deployment: Deployment | None = None
    tags: dict[str, str] = {}
    ecs = invocation.ecs
    if settings.target_url is None:
        runtime.ensure()
    if ecs is None and settings.target_url is None and runtime.discovery is not None:
        progress.set("looking up the deployment (codedeploy:GetDeployment)")
        deployment = runtime.discovery.deployment(invocation.deployment_id)
        if settings.use_tags:
            progress.set("reading the deployment group's tags")
            tags = runtime.discovery.tags(deployment, runtime.region)
    if ecs is not None:  # an ECS service deployment: its cluster and service
        application = settings.application or ecs.cluster
        group = settings.deployment_group or ecs.service
        discovering = settings.target_url is None and runtime.ecs_discovery is not None
        if discovering and settings.use_tags and ecs.service_arn:
            progress.set("reading the service's tags (ecs:ListTagsForResource)")
            tags = runtime.ecs_discovery.tags(ecs.service_arn)
    else:
        application = deployment.application if deployment else settings.application
        group = deployment.deployment_group if deployment else settings.deployment_group
    summary.application, summary.deployment_group = application, group
    plan = resolve_plan(
        invocation.lifecycle_event,
        settings,
        plan_file,
        application=application,
        deployment_group=group,
        tags=tags,
        stage=ecs.stage.value if ecs is not None else None,
    )
    return plan, deployment


def header_secrets(headers: Mapping[str, str], age: int) -> dict[str, str]:
    """The plan's headers with their secret references resolved (and registered for
    redaction)."""
    resolved = {
        name: secrets.substitute(value, f"plan header {name}", age)
        for name, value in headers.items()
    }
    redact.bind(*resolved.values())
    return resolved


def _cannot_connect(run: RunResult) -> bool:
    return any(
        any(text in check.message for text in _CONNECT_FAILURES)
        for suite in run.suites
        for check in suite.checks
    )


def _worker_logging() -> tuple[bool, str]:
    """Workers log as this process does: JSON at its level, or the command line's text.

    Read before this process's Powertools logger exists (the worker starts first): the
    command line has set its plain handler by then; Lambda logs JSON at
    ``POWERTOOLS_LOG_LEVEL``.
    """
    package = logging.getLogger("hooks")
    plain = any(type(h.formatter) is logging.Formatter for h in package.handlers)
    if package.handlers:
        level = logging.getLevelName(package.getEffectiveLevel())
    else:
        level = os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO"
    return plain, str(level)


def _gate_state(call: Any, plan: Plan, runtime: Runtime) -> tuple[float, list[str]]:
    """When this gate began, and the suites that passed at its earlier calls: now and none,
    or an ECS gate's sealed progress (carried in hookDetails) when it opens."""
    if call is None:
        return now(), []
    state = GateState.of(call, now(), signing_key(runtime), plan_digest(plan))
    return state.started, state.passed


def signing_key(runtime: Runtime) -> bytes | None:
    """The stack's signing key, or None (logged) when it cannot be had: carried state is
    then neither trusted nor carried."""
    try:
        return signing.key_from_env(runtime.env)
    except Exception as exc:
        log.error("no signing key: %s", exc)
        return None


def planned_events(
    catalog: Catalog, plan_file: PlanFile | None, settings: Settings
) -> list[LifecycleEvent]:
    """Events with suites planned: named by the plan, or declared by a suite's ``events``.

    Suites that run at every event (the built-in reachability suite, pytest suites) do
    not by themselves plan an event: nothing was asked of it.
    """
    planned = []
    for event, plan in plans_by_event(settings, plan_file).items():
        if plan.suites is not None:
            if plan.suites:
                planned.append(event)
        elif any(event in suite.events for suite in catalog.suites):
            planned.append(event)
    return planned
