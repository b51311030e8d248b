"""Fixtures for pytest suites, in the hook and with plain ``pytest`` on a laptop.

Inside the hook, the runner hands pytest the suite context. With plain pytest, the plugin
(auto-registered through the ``pytest11`` entry point) builds the same objects from
``--target-url`` / ``--target-host`` / ``--insecure`` or ``GREENLIGHT_TARGET_URL``::

    pytest test_suites/test_api.py --target-url http://127.0.0.1:8080
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hooks.http import CheckSession
    from hooks.suites.base import DeploymentInfo, SuiteContext
    from hooks.target import Target

CONTEXT_KEY = pytest.StashKey["SuiteContext"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("greenlight", "Greenlight suites")
    group.addoption(
        "--target-url",
        default=None,
        help="base URL of the service under test (default: $GREENLIGHT_TARGET_URL)",
    )
    group.addoption(
        "--target-host", default=None, help="host name to send as Host header and TLS SNI"
    )
    group.addoption(
        "--insecure", action="store_true", default=False, help="do not verify TLS certificates"
    )


def _context(request: pytest.FixtureRequest) -> SuiteContext | None:
    return request.config.stash.get(CONTEXT_KEY, None)


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    """The service under test: ``target.url``, ``target.prod_url``, ``target.host``."""
    from hooks.target import Target

    ctx = _context(request)
    if ctx is not None:
        return ctx.target
    url = request.config.getoption("--target-url") or os.environ.get("GREENLIGHT_TARGET_URL")
    if not url:
        pytest.skip("no target: pass --target-url URL or set GREENLIGHT_TARGET_URL")
    return Target(
        url=url,
        host=request.config.getoption("--target-host"),
        verify=not request.config.getoption("--insecure"),
    )


@pytest.fixture(scope="session")
def base_url(target: Target) -> str:
    """The base URL of the green stack (test listener)."""
    return target.url


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest) -> DeploymentInfo:
    """The deployment being gated (placeholders on a laptop)."""
    from hooks.lifecycle import LifecycleEvent
    from hooks.suites.base import DeploymentInfo

    ctx = _context(request)
    if ctx is not None:
        return ctx.deployment
    return DeploymentInfo("d-LOCAL", "local", LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC)


@pytest.fixture(scope="session")
def http(request: pytest.FixtureRequest, target: Target, deployment: DeploymentInfo) -> Any:
    """A ready ``requests.Session``: timeouts, connection retries, TLS, host name, User-Agent."""
    from hooks.http import make_session

    ctx = _context(request)
    session: CheckSession = make_session(
        target,
        deployment_id=deployment.deployment_id,
        retries=2,
        deadline=ctx.deadline if ctx is not None else None,
        timeout=ctx.request_timeout if ctx is not None else 10.0,
    )
    yield session
    session.close()
