"""Fixtures for pytest suites, in the hook and with plain ``pytest`` on a laptop.

Inside the hook, the runner hands pytest this module and the suite context. With plain
pytest, :mod:`hooks.suites.pytest_entry` (the ``pytest11`` entry point) registers it when
``--target-url`` or ``GREENLIGHT_TARGET_URL`` is given, and the fixtures build the same
objects from ``--target-url`` / ``--target-host`` / ``--insecure``::

    pytest test_suites/test_api.py --target-url http://127.0.0.1:8080
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

from hooks.aws.secrets import lookup
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.target import Target
from hooks.suites.base import DeploymentInfo

if TYPE_CHECKING:
    from hooks.core.http import CheckSession
    from hooks.core.target import Target
    from hooks.suites.base import DeploymentInfo, SuiteContext

__all__ = ["CONTEXT_KEY", "base_url", "deployment", "http", "secret", "target"]

CONTEXT_KEY = pytest.StashKey["SuiteContext"]()


def _context(request: pytest.FixtureRequest) -> SuiteContext | None:
    return request.config.stash.get(CONTEXT_KEY, None)


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    """The service under test: ``target.url``, ``target.prod_url``, ``target.host``."""

    ctx = _context(request)
    if ctx is not None:
        return ctx.target
    option = request.config.getoption
    url = option("--target-url", None) or os.environ.get("GREENLIGHT_TARGET_URL")
    if not url:
        pytest.skip("no target: pass --target-url URL or set GREENLIGHT_TARGET_URL")
    return Target(
        url=url,
        host=option("--target-host", None) or os.environ.get("GREENLIGHT_TARGET_HOST"),
        verify=not option("--insecure", False),
    )


@pytest.fixture(scope="session")
def base_url(target: Target) -> str:
    """The base URL of the green stack (test listener)."""
    return target.url


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest) -> DeploymentInfo:
    """The deployment being gated (placeholders on a laptop)."""

    ctx = _context(request)
    if ctx is not None:
        return ctx.deployment
    return DeploymentInfo("d-LOCAL", "local", LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC)


@pytest.fixture(scope="session")
def secret() -> Any:
    """Secrets by reference, as YAML suites name them: ``secret("secret:db#password")``,
    ``secret("ssm:/greenlight/api-key")``. Values are redacted from every report and log;
    in the hook they were fetched before the run (write the reference as a literal string
    so it is found), on a laptop they are fetched with your AWS credentials."""

    def resolve(reference: str) -> str:
        return lookup(reference.removeprefix("${").removesuffix("}"))

    return resolve


@pytest.fixture(scope="session")
def http(request: pytest.FixtureRequest, target: Target, deployment: DeploymentInfo) -> Any:
    """A ready ``requests.Session``: timeouts, connection retries, TLS, host name, User-Agent."""
    # on use: requests loads in the workers that send requests, never in the hook's process
    from hooks.core.http import make_session

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
