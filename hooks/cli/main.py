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
import sys
from collections.abc import Sequence

from hooks.cli import (
    appspec,
    demo,
    doctor,
    ecs_hooks,
    invoke,
    rehearse,
    report,
    run,
    sample_service,
    validate,
)
from hooks.cli.common import EXIT_FAILED, EXIT_USAGE, UsageError
from hooks.core.exceptions import GreenlightError
from hooks.core.log import configure_for_cli
from hooks.version import __version__

__all__ = ["COMMANDS", "build_parser", "main"]

#: The commands, in the order ``--help`` lists them: each module registers its arguments.
COMMANDS = (
    run,
    invoke,
    rehearse,
    validate,
    appspec,
    ecs_hooks,
    report,
    doctor,
    demo,
    sample_service,
)


def build_parser() -> argparse.ArgumentParser:
    """The root parser; each command module registers its own arguments."""
    parser = argparse.ArgumentParser(
        prog="greenlight",
        description="Gate ECS blue/green deployments on functional tests.",
    )
    parser.add_argument("--version", action="version", version=f"greenlight {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the hooks' JSON logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_for_cli(args.verbose)
    try:
        code: int = args.run(args)
        return code
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
