"""The Step Functions conclusion: the protocol adapter that decides a handed-off run.

The state machine calls it once its shards have run (or with the error that stopped it).
It trusts nothing that crossed the execution: it resolves the plan itself — from the plan
file and suites in its own artifact and the deployment it was called for — lists the suites
through its own catalog worker (no suite code runs in this process), and works out the
shards that plan gives. Each shard's results are read from this execution's own key in the
bucket (never a key an outcome names) and used only if they are sealed with the stack's key
for this deployment, hook execution, event, shard, suites and plan. They then fill the
plan's slots in :mod:`hooks.gate.decision`, under the plan's policies. The verdict is reported
once; the evidence and the summary follow, as a hook run's would.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hooks.adapters.hook import finish
from hooks.adapters.stepfunctions import (
    PURPOSE,
    describe_error,
    listing_digest,
    plan_shards,
    shard_binding,
    shard_key,
)
from hooks.aws import signing
from hooks.core import redact
from hooks.core.deadline import Deadline, HasRemainingTime
from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import HookInvocation
from hooks.core.log import get_logger
from hooks.core.results import SuiteResult
from hooks.core.settings import Settings
from hooks.core.target import Target
from hooks.core.verdict import Verdict
from hooks.evidence.reports import bundle_prefix
from hooks.gate.decision import decide_planned, planned_from
from hooks.gate.evaluate import listing_job, resolve_run_plan, start_supervisor
from hooks.gate.summary import Progress, RunSummary, Runtime
from hooks.process.messages import suite_from_record
from hooks.process.runner import RunResult
from hooks.suites.load import judge_parts

if TYPE_CHECKING:
    pass

__all__ = ["conclude_execution", "gather"]

log = logging.getLogger(__name__)


def conclude_execution(
    event: Mapping[str, Any], context: HasRemainingTime, runtime: Runtime
) -> dict[str, Any]:
    """One verdict for a handed-off run, from this process's own plan, reported once."""
    started = time.monotonic() - _since_hand_off(event)
    redact.reset()
    invocation = HookInvocation.from_ids(event.get("invocation"))
    context_keys = {"function_request_id": getattr(context, "aws_request_id", None) or "local"}
    logger = get_logger()
    logger.append_keys(**invocation.log_keys(), **context_keys)
    summary = RunSummary(invocation, Verdict.failure("not concluded"))
    try:
        settings = summary.settings = Settings.from_env(runtime.env)
        details = event.get("summary") or {}
        if details.get("target"):
            summary.target = Target(str(details["target"]))
        failure = event.get("failure")
        if failure is not None:
            summary.verdict = Verdict.failure(
                f"the state machine stopped before a verdict: {describe_error(failure)}"
            )
        else:
            deadline = Deadline.from_context(context, settings.safety_margin)
            _decide(summary, event, settings, deadline, runtime)
    except Exception as exc:  # whatever happens, a verdict is reported: Failed
        logger.exception("the conclusion raised")
        summary.verdict = Verdict.failure(f"the conclusion failed: {type(exc).__name__}: {exc}")
    return finish(summary, runtime, context, started, context_keys)


#: The longest a handed-off run can have lasted (the execution's own timeout is shorter).
_LONGEST_RUN = 3600.0


def _since_hand_off(event: Mapping[str, Any]) -> float:
    """Seconds since the hook handed off (what the summary's duration counts from): only
    shown, never decided on; 0 when the execution's input does not say, or says nonsense."""
    details = event.get("summary")
    at = details.get("handed_off_at") if isinstance(details, Mapping) else None
    if isinstance(at, bool) or not isinstance(at, int | float):
        return 0.0
    elapsed = time.time() - float(at)
    return elapsed if 0.0 <= elapsed <= _LONGEST_RUN else 0.0


def _decide(
    summary: RunSummary,
    event: Mapping[str, Any],
    settings: Settings,
    deadline: Deadline,
    runtime: Runtime,
) -> None:
    bucket = settings.evidence_bucket  # this stack's own, never the event's word
    if not bucket:
        raise ConfigError(
            "no evidence bucket is set (GREENLIGHT_EVIDENCE_BUCKET): the shards' results "
            "are read from it"
        )
    progress = Progress()
    plan, _ = resolve_run_plan(summary, settings, runtime, progress)
    summary.plan = plan
    supervisor = start_supervisor(settings, summary.invocation, runtime)
    try:
        listed = supervisor.list_suites(listing_job(plan, summary.invocation), deadline)
    finally:
        supervisor.close()
    unloaded = [s for s in listed if not s.loaded]
    if unloaded:
        summary.configuration_error = True
    shards = plan_shards([(s.name, s.shards) for s in listed])
    key = signing.key_from_env(runtime.env)
    s3 = runtime.s3() if runtime.s3 is not None else None
    prefix = bundle_prefix(summary)

    def read(shard: int) -> Any:
        if s3 is None:
            raise RuntimeError("no S3 client to read the shard's results")
        body = s3.get_object(Bucket=bucket, Key=shard_key(prefix, shard))["Body"].read()
        return json.loads(body)

    run = gather(
        shards,
        event.get("shards"),
        read,
        lambda shard, names, sealed: signing.open_sealed(
            key,
            PURPOSE,
            shard_binding(summary.invocation, shard, names, listing_digest(listed)),
            sealed,
        ),
    )
    verdict, suites = decide_planned(
        planned_from(listed, plan.policies),
        run.suites,
        "the state machine's shards",
        deadline_reached=run.deadline_reached,
    )
    summary.run = RunResult(tuple(suites), run.deadline_reached, run.duration)
    summary.verdict = verdict


def gather(
    shards: Sequence[Mapping[str, Any]],
    outcomes: Any,
    read: Callable[[int], Any],
    open_sealed: Callable[[int, list[str], Any], Any],
) -> RunResult:
    """The results of the conclusion's own ``shards``: each read from its own key and opened
    (``open_sealed`` raises unless it is this shard's, sealed), or failed with the error the
    Map caught beside it. An outcome names only which shard failed; a shard's results count
    only for the suites the conclusion's plan gave it; a load's parts are merged and judged
    on the whole."""

    caught: dict[int, Any] = {}
    for outcome in outcomes if isinstance(outcomes, list) else []:
        try:
            index = int(outcome["shard"]["shard"])
        except (KeyError, TypeError, ValueError):
            continue  # not one of ours: what counts is each planned shard's own file
        if isinstance(outcome, Mapping) and outcome.get("error") is not None:
            caught.setdefault(index, outcome["error"])
        result = outcome.get("result") if isinstance(outcome, Mapping) else None
        if isinstance(result, Mapping) and result.get("error"):  # it could not write: why
            caught.setdefault(index, {"Error": "ShardError", "Cause": str(result["error"])})
    suites: list[SuiteResult] = []
    parts: dict[str, list[SuiteResult]] = {}
    parts_failed: dict[str, list[str]] = {}
    reached = False
    duration = 0.0
    for shard in shards:
        index, names = int(shard["shard"]), [str(n) for n in shard["suites"]]
        where = f"shard {index} of the state machine"
        error = caught.get(index)
        found: list[SuiteResult] = []
        if error is None:
            try:
                content = open_sealed(index, names, read(index))
                found = [suite_from_record(s) for s in content["suites"]]
                reached = reached or bool(content.get("deadline_reached"))
                duration = max(duration, float(content.get("duration") or 0.0))
            except Exception as exc:
                error = {"Error": type(exc).__name__, "Cause": f"its results cannot be used: {exc}"}
        if error is not None:
            cause = describe_error(error)
            found = [
                SuiteResult(name, "shard", error=f"the shard that ran it failed: {cause}")
                for name in names
            ]
        for suite in found:
            if suite.name not in names:
                suite = SuiteResult(
                    suite.name, suite.kind, error=f"{where} returned it, and was not given it"
                )
            if shard.get("part"):
                if suite.error is not None:
                    parts_failed.setdefault(suite.name, []).append(suite.error)
                else:
                    parts.setdefault(suite.name, []).append(suite)
                continue
            suites.append(suite)
        if shard.get("part"):
            for name in names:
                parts.setdefault(name, [])
                parts_failed.setdefault(name, [])
    suites += [judge_parts(name, parts[name], parts_failed[name]) for name in parts]
    return RunResult(tuple(suites), reached, duration)
