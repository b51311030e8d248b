"""``make demo``: two rehearsed deployments of a sample service, on loopback, no AWS."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from hooks.cli.console import Console
from hooks.cli.rehearse import rehearse
from hooks.cli.sample_service import SampleService

__all__ = ["EXAMPLES", "demo", "demo_command", "register"]

#: The examples ship in the package (``hooks/examples``, mapped from ``test_suites/examples``
#: by pyproject.toml); an editable install or a source tree reads them where they are.
_PACKAGED = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = (
    _PACKAGED
    if _PACKAGED.is_dir()
    else Path(__file__).resolve().parent.parent.parent / "test_suites" / "examples"
)


def demo(console: Console, suites_dir: Path = EXAMPLES) -> int:
    """0 when the good release shifts traffic and the broken one rolls back."""
    started = time.monotonic()
    console.line(
        console.bold("Greenlight demo: the shop service, release 1.4.0 (blue) in production.")
    )
    console.line(f"Suites: {suites_dir} (smoke, orders-flow, api) and its greenlight.yaml plan.")
    console.line(
        "CodeDeploy's side is recorded locally; the hooks, suites and runner are the real ones.\n"
    )
    services = [SampleService(release).start() for release in ("blue", "green", "broken")]
    blue, green, broken = services
    try:
        console.line(console.bold("== Deployment 1: release 1.5.0, good build =="))
        good = rehearse(blue.url, green.url, console=console, suites_dir=suites_dir, timeout=60)
        console.line("")
        console.line(
            console.bold("== Deployment 2: release 1.5.0, broken build (order lookup fails) ==")
        )
        bad = rehearse(blue.url, broken.url, console=console, suites_dir=suites_dir, timeout=60)
    finally:
        for service in services:
            service.stop()
    console.line("")
    console.line(console.bold("What a real deployment would have done:"))
    console.line(f"  1. good build:   {good.outcome()}")
    console.line(f"  2. broken build: {bad.outcome()}")
    expected = good.shifted and not bad.shifted
    console.line(
        f"\nDemo {'passed' if expected else 'did NOT come out as expected'} "
        f"in {time.monotonic() - started:.1f}s."
    )
    return 0 if expected else 1


def register(sub: Any) -> None:
    """The ``demo`` command's arguments."""
    parser = sub.add_parser("demo", help="rehearse a good and a broken release of a sample service")
    parser.set_defaults(run=demo_command)


def demo_command(args: argparse.Namespace) -> int:

    return demo(Console())
