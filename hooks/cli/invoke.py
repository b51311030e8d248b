"""``greenlight invoke``: a template function invoked locally, as ``sam local invoke`` would."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hooks.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    configuration_errors,
    exit_code,
    given_by,
    pair,
)
from hooks.cli.console import Console
from hooks.cli.evidence_store import DirectoryBucket, evidence_dir
from hooks.cli.local import (
    LOCAL_BUCKET,
    RECORDER,
    LocalContext,
    add_evidence_argument,
    attach,
    import_handler,
    patched_env,
    prepare_aws,
)
from hooks.cli.template import Template
from hooks.core.ecs_event import parse_ecs_event
from hooks.core.exceptions import InvalidEventError
from hooks.evidence.reports import CaptureReport, EvidenceBundle

__all__ = ["invoke_command", "register"]


def register(sub: Any) -> None:
    """The ``invoke`` command's arguments."""
    invoke = sub.add_parser("invoke", help="invoke a template function locally (no Docker)")
    invoke.add_argument("logical_id", help="function logical ID, e.g. AfterAllowTestTrafficHook")
    invoke.add_argument("--event", "-e", type=Path, required=True, help="event JSON file")
    invoke.add_argument("--target-url", help="test listener URL (skips discovery)")
    invoke.add_argument(
        "--report",
        choices=["local", "aws"],
        default="local",
        help="record the CodeDeploy report locally (default) or send it to AWS",
    )
    invoke.add_argument("--template", "-t", type=Path, default=Path("template.yaml"))
    invoke.add_argument(
        "--parameter-overrides",
        nargs="*",
        type=pair,
        default=[],
        metavar="KEY=VALUE",
        help="template parameters, as sam takes them",
    )
    add_evidence_argument(invoke)
    invoke.set_defaults(run=invoke_command)


def invoke_command(args: argparse.Namespace) -> int:

    template = Template(args.template, dict(args.parameter_overrides))
    spec = template.function(args.logical_id)
    try:
        event = json.loads(args.event.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the event file {args.event}: {exc}") from exc
    env = dict(spec.environment)
    env.update(given_by({"GREENLIGHT_TARGET_URL": ("--target-url", args.target_url)}))
    console = Console()
    console.line(
        console.bold(f"Invoking {spec.handler} ({args.logical_id}), timeout {spec.timeout:g}s")
    )
    malformed = _malformed_ecs_event(spec.handler, event)
    capture = CaptureReport()
    store = EvidenceBundle(DirectoryBucket(evidence_dir(args.evidence)), LOCAL_BUCKET)
    with patched_env(env):
        prepare_aws(args.report)
        attach(console.on_check, [capture, store])
        handler = import_handler(spec.handler)
        before = len(RECORDER.calls)
        try:
            result = handler(
                event, LocalContext(spec.timeout, f"CodeDeployHook_local-{args.logical_id}")
            )
        except InvalidEventError as exc:
            raise UsageError(f"{args.event}: {exc}") from exc
        except Exception as exc:
            console.line(f"the handler raised {type(exc).__name__}: {exc}")
            return EXIT_FAILED
    for call in RECORDER.calls[before:]:
        console.line(console.bold("PutLifecycleEventHookExecutionStatus (recorded, not sent):"))
        console.line(json.dumps(call, indent=2))
    console.line(console.bold("Handler returned:"))
    console.line(json.dumps(result, indent=2))
    if malformed is not None:  # answered FAILED, as ECS would be: a usage error here
        raise UsageError(f"{args.event}: {malformed}")
    if "hookStatus" in result:  # the Amazon ECS hook: its answer is the verdict
        summary = capture.summary
        if summary is not None and summary.configuration_error:
            configuration_errors("invoke", summary.to_dict(), summary)
            return EXIT_USAGE
        return EXIT_FAILED if result["hookStatus"] == "FAILED" else EXIT_OK
    configuration_errors("invoke", result, capture.summary)
    return exit_code(result)


def _malformed_ecs_event(handler: str, event: Any) -> str | None:
    """Why ``event`` is not an Amazon ECS hook call, for the ECS hook's handler (its answer
    is FAILED, whatever the cause: the exit status tells a bad event apart)."""
    if not handler.endswith(".ecs_hook"):
        return None
    try:
        parse_ecs_event(event)
    except InvalidEventError as exc:
        return f"invalid Amazon ECS hook event: {exc}"
    return None
