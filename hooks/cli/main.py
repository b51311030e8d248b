"""The ``greenlight`` command line: run, invoke, rehearse, validate, appspec, ecs-hooks,
report, demo.

One exit-status rule for every command: 0 when the verdict is Succeeded (or the check
passes), 1 when it is Failed, 2 for a usage or configuration error — a bad argument,
setting, plan or event, a suite file or plugin that does not load, a suite that does not
exist. Errors are one message naming the file, line and cause; a traceback only with
``-v``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hooks.cli.console import Console
from hooks.core.exceptions import ConfigError, GreenlightError, InvalidEventError
from hooks.core.lifecycle import LifecycleEvent
from hooks.version import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A command line that cannot run: printed without a traceback, exit status 2."""


def _event(value: str) -> LifecycleEvent:
    try:
        return LifecycleEvent.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not 0 < number <= 86400:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 86400, got {value}")
    return number


def _concurrency(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= number <= 256:
        raise argparse.ArgumentTypeError(f"must be from 1 to 256, got {number}")
    return number


def _pair(value: str) -> tuple[str, str]:
    key, sep, rest = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, rest


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="greenlight",
        description="Gate ECS blue/green deployments on functional tests.",
    )
    parser.add_argument("--version", action="version", version=f"greenlight {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the hooks' JSON logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        type=_event,
        default=LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
        help="lifecycle event to plan for (default AfterAllowTestTraffic)",
    )
    run.add_argument("--suites-dir", type=Path, help="suites directory (default test_suites)")
    run.add_argument("--host", help="host name for the Host header, TLS SNI and certificate")
    run.add_argument("--ca-bundle", help="PEM bundle to verify the certificate with")
    run.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    run.add_argument("--concurrency", type=_concurrency, help="checks at once (1-256)")
    run.add_argument(
        "--deadline",
        type=_positive,
        default=300.0,
        help="seconds the whole run may take (default 300)",
    )
    run.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report")
    run.add_argument("--json", type=Path, metavar="FILE", help="write a JSON report")
    run.add_argument(
        "--html", type=Path, metavar="FILE", help="write the HTML report (as the hook's evidence)"
    )

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
        type=_pair,
        default=[],
        metavar="KEY=VALUE",
        help="template parameters, as sam takes them",
    )

    rehearse = sub.add_parser("rehearse", help="rehearse a deployment's hooks in order")
    rehearse.add_argument("--prod-url", required=True, help="the blue (production) build")
    rehearse.add_argument("--test-url", required=True, help="the green (new) build")
    rehearse.add_argument("--suites-dir", type=Path)
    rehearse.add_argument("--timeout", type=float, default=300.0, help="seconds per hook")
    rehearse.add_argument(
        "--protocol",
        choices=["codedeploy", "ecs"],
        default="codedeploy",
        help="CodeDeploy's lifecycle events, or Amazon ECS native blue/green stages",
    )
    rehearse.add_argument(
        "--canary",
        default="10,50,100",
        help="ECS: production traffic steps in percent (default 10,50,100)",
    )

    validate = sub.add_parser(
        "validate", help="check suites and the plan without running them; print file:line errors"
    )
    validate.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="suites directories, suite files or plan files (default: the suites directory)",
    )
    validate.add_argument(
        "--plan",
        action="store_true",
        help="also print, per lifecycle event, the suites that would run and where each "
        "plan value comes from",
    )
    validate.add_argument("--application", help="the application to match plan groups with")
    validate.add_argument("--deployment-group", help="the deployment group to match with")

    appspec = sub.add_parser("appspec", help="print an ECS AppSpec wired to the hooks")
    appspec.add_argument("--stack-name", help="read hook ARNs from this stack's outputs")
    appspec.add_argument(
        "--hook",
        action="append",
        type=_pair,
        default=[],
        metavar="EVENT=ARN",
        help="a hook ARN given explicitly (repeatable)",
    )
    appspec.add_argument("--task-definition", default="TASK_DEFINITION_ARN")
    appspec.add_argument("--container-name", default="CONTAINER_NAME")
    appspec.add_argument("--container-port", default="CONTAINER_PORT")
    appspec.add_argument("--suites-dir", type=Path)
    appspec.add_argument(
        "--all-events",
        action="store_true",
        help="include every hookable event, not only those with suites",
    )
    appspec.add_argument("--json", action="store_true", help="JSON instead of YAML")

    ecs_hooks = sub.add_parser(
        "ecs-hooks",
        help="print the lifecycleHooks block of an ECS service's deploymentConfiguration",
    )
    ecs_hooks.add_argument("--stack-name", help="read the ARNs from this stack's outputs")
    ecs_hooks.add_argument("--hook-arn", default="ECS_HOOK_FUNCTION_ARN")
    ecs_hooks.add_argument("--role-arn", default="ECS_HOOK_INVOKE_ROLE_ARN")
    ecs_hooks.add_argument(
        "--stage",
        action="append",
        default=[],
        help="a lifecycle stage (repeat); default: "
        "one stage per lifecycle event with suites planned",
    )
    ecs_hooks.add_argument("--suites-dir", type=Path)

    report = sub.add_parser(
        "report", help="show a deployment's evidence from S3, as `greenlight run` shows a run"
    )
    report.add_argument("deployment_id", help="the CodeDeploy deployment id, d-XXXXXXXXX")
    report.add_argument(
        "--event", type=_event, action="append", default=[], help="one lifecycle event (repeat)"
    )
    report.add_argument("--open", action="store_true", help="open the HTML report in a browser")
    report.add_argument("--bucket", help="evidence bucket (default: $GREENLIGHT_EVIDENCE_BUCKET)")
    report.add_argument("--stack-name", help="read the bucket from this stack's outputs")
    report.add_argument("--application", help="skip codedeploy:GetDeployment: the application")
    report.add_argument("--deployment-group", help="…and the deployment group")
    report.add_argument("--html", type=Path, metavar="DIR", help="save the HTML reports in DIR")

    sub.add_parser("demo", help="rehearse a good and a broken release of a sample service")

    sample = sub.add_parser("serve-sample", help="serve the demo's sample service on loopback")
    sample.add_argument("--release", choices=["blue", "green", "broken"], default="green")
    sample.add_argument("--port", type=int, default=8080)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hooks.core.log import configure_for_cli

    configure_for_cli(args.verbose)
    commands = {
        "run": cmd_run,
        "invoke": cmd_invoke,
        "rehearse": cmd_rehearse,
        "validate": cmd_validate,
        "appspec": cmd_appspec,
        "report": cmd_report,
        "ecs-hooks": cmd_ecs_hooks,
        "demo": cmd_demo,
        "serve-sample": cmd_serve_sample,
    }
    try:
        return commands[args.command](args)
    except (UsageError, GreenlightError, ValueError) as exc:
        print(f"greenlight {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.verbose:
            raise
        if _is_aws_error(exc):  # no region, no credentials, access denied...
            print(f"greenlight {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(
            f"greenlight {args.command}: internal error: {type(exc).__name__}: {exc} "
            f"(run with -v for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _is_aws_error(exc: BaseException) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, BotoCoreError | ClientError)


def _configuration_errors(command: str, result: dict[str, Any]) -> None:
    """A Failed verdict caused by the configuration is also an error message on stderr."""
    if result.get("verdict") == "Succeeded" or not result.get("configuration_error"):
        return
    causes = [f for f in result.get("failed", []) if f] or [result.get("reason", "")]
    for cause in causes:
        print(f"greenlight {command}: configuration error: {cause}", file=sys.stderr)


def exit_code(result: dict[str, Any]) -> int:
    """0 Succeeded, 1 Failed, 2 Failed because of the configuration (settings, plan, files)."""
    if result.get("verdict") == "Succeeded":
        return EXIT_OK
    return EXIT_USAGE if result.get("configuration_error") else EXIT_FAILED


def _given(values: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v not in (None, "", False)}


def cmd_run(args: argparse.Namespace) -> int:
    from hooks.cli.local import (
        LOCAL_ENV,
        LocalContext,
        attach,
        concluded,
        import_handler,
        patched_env,
        prepare_aws,
        run_state_machine_here,
    )
    from hooks.core.settings import Settings
    from hooks.core.target import Target
    from hooks.evidence.reports import CaptureReport, HtmlReport, JsonReport, JUnitReport
    from hooks.gate.plan import PlanFile
    from hooks.suites.registry import check_suites_dir

    Target(url=args.url)  # a malformed URL is a usage error
    env = _given(
        {
            "GREENLIGHT_TARGET_URL": args.url,
            "GREENLIGHT_PROD_URL": args.prod_url,
            "GREENLIGHT_TARGET_HOST": args.host,
            "GREENLIGHT_SUITES": ",".join(args.suite),
            "GREENLIGHT_SUITES_DIR": args.suites_dir,
            "GREENLIGHT_CA_BUNDLE": args.ca_bundle,
            "GREENLIGHT_TLS_VERIFY": "false" if args.insecure else None,
            "GREENLIGHT_CONCURRENCY": args.concurrency,
            "GREENLIGHT_SAFETY_MARGIN": "1",
            **LOCAL_ENV,
        }
    )
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
        machine = run_state_machine_here(
            attach(console.on_check, reporters), args.deadline, console.line
        )
        event: LifecycleEvent = args.event
        console.line(console.bold(f"greenlight run {event.value} against {args.url}"))
        handler = import_handler(f"hooks.adapters.handlers.{event.snake_name}")
        with console.live(f"{event.value} running"):
            result = concluded(
                machine,
                handler(
                    {"DeploymentId": "d-LOCALRUN", "LifecycleEventHookExecutionId": "local"},
                    LocalContext(args.deadline),
                ),
            )
    if capture.summary is not None:
        console.failures(capture.summary)
        console.summary(capture.summary)
    _configuration_errors("run", result)
    return exit_code(result)


def cmd_invoke(args: argparse.Namespace) -> int:
    from hooks.cli.local import (
        RECORDER,
        LocalContext,
        attach,
        import_handler,
        patched_env,
        prepare_aws,
    )
    from hooks.cli.template import Template

    template = Template(args.template, dict(args.parameter_overrides))
    spec = template.function(args.logical_id)
    try:
        event = json.loads(args.event.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the event file {args.event}: {exc}") from exc
    env = dict(spec.environment)
    if args.target_url:
        env["GREENLIGHT_TARGET_URL"] = args.target_url
    console = Console()
    console.line(
        console.bold(f"Invoking {spec.handler} ({args.logical_id}), timeout {spec.timeout:g}s")
    )
    with patched_env(env):
        prepare_aws(args.report)
        attach(console.on_check, [])
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
    if "hookStatus" in result:  # the Amazon ECS hook: its answer is the verdict
        return EXIT_FAILED if result["hookStatus"] == "FAILED" else EXIT_OK
    _configuration_errors("invoke", result)
    return exit_code(result)


def cmd_rehearse(args: argparse.Namespace) -> int:
    from hooks.cli.rehearse import rehearse
    from hooks.core.target import Target

    for url in (args.prod_url, args.test_url):
        Target(url=url)  # a malformed URL is a usage error
    if args.protocol == "ecs":
        from hooks.cli.rehearse_ecs import rehearse_ecs

        try:
            steps = [float(s) for s in args.canary.split(",") if s.strip()]
        except ValueError:
            raise UsageError(f"--canary {args.canary!r}: percentages, e.g. 10,50,100") from None
        if not steps or steps[-1] != 100 or any(not 0 < s <= 100 for s in steps):
            raise UsageError(f"--canary {args.canary!r}: rising percentages ending at 100")
        ecs = rehearse_ecs(
            args.prod_url,
            args.test_url,
            console=Console(),
            timeout=args.timeout,
            suites_dir=args.suites_dir,
            canary=steps,
        )
        return EXIT_OK if ecs.shifted else EXIT_FAILED
    result = rehearse(
        args.prod_url,
        args.test_url,
        console=Console(),
        timeout=args.timeout,
        suites_dir=args.suites_dir,
    )
    return EXIT_OK if result.shifted else EXIT_FAILED


def cmd_validate(args: argparse.Namespace) -> int:
    """Problems are configuration errors: exit 2 (as for every command)."""
    from hooks.cli.local import patched_env
    from hooks.cli.validate import events_of, plan_lines, validate_dir, validate_file
    from hooks.core.settings import Settings
    from hooks.core.verdict import plural

    paths = args.paths or [Settings.from_env().suites_dir]
    problems: list[str] = []
    report: list[str] = []
    for path in paths:
        if path.is_dir():
            found, catalog, plan = validate_dir(path)
            problems += found
            if not found:
                for name, events in sorted(events_of(catalog).items()):
                    report.append(f"ok  {name}: {', '.join(events)}")
                report.append(
                    f"{plural(len(catalog.suites), 'suite')} valid in {path}; "
                    f"plan: {plan.path if plan else 'none'}"
                )
                if args.plan:
                    env = {
                        "GREENLIGHT_SUITES_DIR": str(path),
                        "GREENLIGHT_APPLICATION": args.application,
                        "GREENLIGHT_DEPLOYMENT_GROUP": args.deployment_group,
                    }
                    with patched_env(env):
                        settings = Settings.from_env()
                    report.append(f"plan for {path} (suites at each event):")
                    report += plan_lines(catalog, plan, settings)
        else:
            found = validate_file(path)
            problems += found
            if not found:
                report.append(f"ok  {path}")
    lines = [line for problem in problems for line in problem.splitlines()]
    for line in lines:
        print(line)
    if lines:
        print(f"{plural(len(lines), 'problem')} in {', '.join(map(str, paths))}")
        return EXIT_USAGE
    for line in report:
        print(line)
    return EXIT_OK


def cmd_appspec(args: argparse.Namespace) -> int:
    from hooks.cli.appspec import build_appspec, hook_arns_from_stack, render
    from hooks.cli.local import patched_env
    from hooks.core.settings import Settings
    from hooks.gate.evaluate import planned_events
    from hooks.gate.plan import PlanFile
    from hooks.suites.registry import discover

    arns = hook_arns_from_stack(args.stack_name) if args.stack_name else {}
    for key, arn in args.hook:
        arns[LifecycleEvent.parse(key)] = arn
    with patched_env(_given({"GREENLIGHT_SUITES_DIR": args.suites_dir})):
        settings = Settings.from_env()
        if args.all_events:
            events = list(LifecycleEvent)
        else:
            catalog = discover(settings.suites_dir)
            events = planned_events(catalog, PlanFile.load(settings.plan_file), settings)
    events = sorted(set(events) | set(arns), key=list(LifecycleEvent).index)
    if not events:
        raise ConfigError(
            f"no lifecycle event has suites planned in {settings.suites_dir}: add suites or "
            f"a plan, or pass --all-events"
        )
    appspec = build_appspec(
        events,
        arns,
        task_definition=args.task_definition,
        container_name=args.container_name,
        container_port=args.container_port,
    )
    print(render(appspec, args.json), end="" if not args.json else "\n")
    missing = [e.value for e in events if e not in arns]
    if missing:
        print(
            f"# placeholders for {', '.join(missing)}: pass --stack-name or --hook EVENT=ARN",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_ecs_hooks(args: argparse.Namespace) -> int:
    from hooks.adapters.ecs import PREFERRED_STAGES, lifecycle_hooks
    from hooks.cli.local import patched_env
    from hooks.core.ecs_event import EcsStage
    from hooks.core.settings import Settings
    from hooks.gate.evaluate import planned_events
    from hooks.gate.plan import PlanFile
    from hooks.suites.registry import discover

    hook_arn, role_arn = args.hook_arn, args.role_arn
    if args.stack_name:
        import boto3

        stacks = boto3.client("cloudformation").describe_stacks(StackName=args.stack_name)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks["Stacks"][0]["Outputs"]}
        hook_arn = outputs.get("EcsHookArn", hook_arn)
        role_arn = outputs.get("EcsHookInvokeRoleArn", role_arn)
    try:
        stages = [EcsStage(s.upper()) for s in args.stage]
    except ValueError as exc:
        raise UsageError(f"{exc}; stages: {', '.join(s.value for s in EcsStage)}") from None
    if not stages:
        with patched_env(_given({"GREENLIGHT_SUITES_DIR": args.suites_dir})):
            settings = Settings.from_env()
            events = planned_events(
                discover(settings.suites_dir), PlanFile.load(settings.plan_file), settings
            )
        stages = [PREFERRED_STAGES[e] for e in events]
    if not stages:
        raise UsageError("no lifecycle event has suites planned: pass --stage STAGE")
    print(json.dumps(lifecycle_hooks(hook_arn, role_arn, stages, None), indent=2))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    import tempfile
    import webbrowser

    import boto3

    from hooks.cli.report import deployment_names, download_html, evidence_bucket, fetch

    bucket = evidence_bucket(args.bucket, args.stack_name)
    application, group = deployment_names(
        args.deployment_id, args.application, args.deployment_group
    )
    s3 = boto3.client("s3")
    bundles = fetch(s3, bucket, application, group, args.deployment_id, args.event)
    console = Console()
    for bundle in bundles:
        report = bundle.report
        console.line(
            console.bold(f"{bundle.event.value} of {args.deployment_id} ({application}/{group})")
            + f"  s3://{bucket}/{bundle.prefix}"
        )
        console.failures_of(report)
        console.summary(report)
        if args.html or args.open:
            directory = args.html or Path(tempfile.mkdtemp(prefix="greenlight-"))
            directory.mkdir(parents=True, exist_ok=True)
            page = download_html(s3, bucket, bundle, directory)
            console.line(f"  HTML report: {page}")
            if args.open:
                webbrowser.open(page.resolve().as_uri())
    failed = any(b.report["verdict"] != "Succeeded" for b in bundles)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from hooks.cli.demo import demo

    return demo(Console())


def cmd_serve_sample(args: argparse.Namespace) -> int:
    import time

    from hooks.cli.sample_service import SampleService

    try:
        service = SampleService(args.release, args.port).start()
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from exc
    print(
        f"sample service {args.release} ({service.version}) on {service.url}; Ctrl-C stops it",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    finally:
        service.stop()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
