"""``greenlight run``: suites against a URL, as the hook would run them, with a report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hooks.cli.common import (
    concurrency,
    configuration_errors,
    event_arg,
    exit_code,
    given_by,
    positive,
)
from hooks.cli.console import Console
from hooks.cli.evidence_store import DirectoryBucket, evidence_dir
from hooks.cli.local import (
    LOCAL_BUCKET,
    LOCAL_ENV,
    LocalContext,
    add_evidence_argument,
    attach,
    concluded,
    import_handler,
    local_deployment_id,
    patched_env,
    prepare_aws,
    run_state_machine_here,
)
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.settings import Settings
from hooks.core.target import Target
from hooks.evidence.reports import (
    CaptureReport,
    EvidenceBundle,
    HtmlReport,
    JsonReport,
    JUnitReport,
)
from hooks.gate.plan import PlanFile
from hooks.suites.registry import check_suites_dir

__all__ = ["register", "run_command"]


def register(sub: Any) -> None:
    """The ``run`` command's arguments."""
    run = sub.add_parser("run", help="run suites against a URL and print a report")
    run.add_argument("--url", required=True, help="base URL of the service under test (green)")
    run.add_argument("--prod-url", help="base URL of the production (blue) service")
    run.add_argument(
        "--suite",
        action="append",
        default=[],
        metavar="NAME",
        help="run this suite, or every suite tagged tag:NAME (repeatable); default: the plan",
    )
    run.add_argument(
        "--event",
        type=event_arg,
        default=LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
        help="lifecycle event to plan for (default AfterAllowTestTraffic)",
    )
    run.add_argument("--suites-dir", type=Path, help="suites directory (default test_suites)")
    run.add_argument("--host", help="host name for the Host header, TLS SNI and certificate")
    run.add_argument("--ca-bundle", help="PEM bundle to verify the certificate with")
    run.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    run.add_argument("--concurrency", type=concurrency, help="checks at once (1-256)")
    run.add_argument(
        "--deadline",
        type=positive,
        default=300.0,
        help="seconds the whole run may take (default 300)",
    )
    run.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report")
    run.add_argument("--json", type=Path, metavar="FILE", help="write a JSON report")
    run.add_argument(
        "--html", type=Path, metavar="FILE", help="write the HTML report (as the hook's evidence)"
    )
    add_evidence_argument(run)
    run.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:

    Target(url=args.url)  # a malformed URL is a usage error
    env = {
        **given_by(
            {
                "GREENLIGHT_TARGET_URL": ("--url", args.url),
                "GREENLIGHT_PROD_URL": ("--prod-url", args.prod_url),
                "GREENLIGHT_TARGET_HOST": ("--host", args.host),
                "GREENLIGHT_SUITES": ("--suite", ",".join(args.suite)),
                "GREENLIGHT_SUITES_DIR": ("--suites-dir", args.suites_dir),
                "GREENLIGHT_CA_BUNDLE": ("--ca-bundle", args.ca_bundle),
                "GREENLIGHT_TLS_VERIFY": ("--insecure", "false" if args.insecure else None),
                "GREENLIGHT_CONCURRENCY": ("--concurrency", args.concurrency),
            }
        ),
        "GREENLIGHT_SAFETY_MARGIN": "1",
        **LOCAL_ENV,
    }
    console = Console()
    with patched_env(env):
        settings = Settings.from_env()
        check_suites_dir(settings.suites_dir)
        PlanFile.load(settings.plan_file)
        prepare_aws("local")
        capture = CaptureReport()
        reporters: list[Any] = [capture]
        reporters += [JUnitReport(args.junit)] if args.junit else []
        reporters += [JsonReport(args.json)] if args.json else []
        reporters += [HtmlReport(args.html)] if args.html else []
        store = DirectoryBucket(evidence_dir(args.evidence))
        reporters.append(EvidenceBundle(store, LOCAL_BUCKET))
        machine = run_state_machine_here(
            attach(console.on_check, reporters), args.deadline, console.line, store
        )
        event: LifecycleEvent = args.event
        console.line(console.bold(f"greenlight run {event.value} against {args.url}"))
        handler = import_handler(f"hooks.adapters.handlers.{event.snake_name}")
        with console.live(f"{event.value} running"):
            answer = handler(
                {"DeploymentId": local_deployment_id(), "LifecycleEventHookExecutionId": "local"},
                LocalContext(args.deadline),
            )
            result = concluded(machine, answer)
    if capture.summary is not None:
        if answer.get("execution") and capture.summary.run is not None:  # handed off
            for suite in capture.summary.run.suites:
                for check in suite.checks:
                    console.on_check(suite, check)
        console.failures(capture.summary)
        if capture.summary.evidence:
            console.line(f"evidence: {capture.summary.evidence}")
        console.summary(capture.summary)
    configuration_errors("run", result, capture.summary)
    return exit_code(result)
