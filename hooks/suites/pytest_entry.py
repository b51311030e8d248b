"""The ``pytest11`` entry point: Greenlight's options, and its fixtures only when asked.

Installing greenlight-hooks must not change other projects' test runs: this plugin adds the
``greenlight`` option group and nothing else, unless ``--target-url`` (or
``GREENLIGHT_TARGET_URL``) is given; only then are the fixtures of
:mod:`hooks.suites.pytest_plugin` (``target``, ``base_url``, ``deployment``, ``http``)
registered. Inside the hook the runner passes that module to pytest itself.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["pytest_addoption", "pytest_configure", "wanted"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("greenlight", "Greenlight suites (fixtures only with --target-url)")
    group.addoption(
        "--target-url",
        default=None,
        help="base URL of the service under test (default: $GREENLIGHT_TARGET_URL); "
        "registers the target, base_url, deployment and http fixtures",
    )
    group.addoption(
        "--target-host", default=None, help="host name to send as Host header and TLS SNI"
    )
    group.addoption(
        "--insecure", action="store_true", default=False, help="do not verify TLS certificates"
    )


def wanted(config: pytest.Config) -> bool:
    """Whether this run asked for Greenlight (an option or the variable)."""
    return bool(config.getoption("--target-url") or os.environ.get("GREENLIGHT_TARGET_URL"))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if wanted(config):
        # on use: the fixtures load only in a run that asks for them (not at import)
        from hooks.suites import pytest_plugin

        if not config.pluginmanager.is_registered(pytest_plugin):
            config.pluginmanager.register(pytest_plugin, "greenlight-fixtures")
