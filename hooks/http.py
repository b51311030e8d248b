"""HTTP sessions for checks: default headers, timeouts under the deadline, host name and TLS.

``requests`` is imported here and nowhere on the handler's import path, so a cold start
does not pay for it until a check runs.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from hooks.deadline import Deadline
from hooks.target import Target

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0


class _HostAdapter(HTTPAdapter):
    """Connects to the URL's address but uses ``host`` for TLS SNI and certificate checks."""

    def __init__(self, host: str | None, **kwargs: Any) -> None:
        self._host = host
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._host:
            kwargs["server_hostname"] = self._host
            kwargs["assert_hostname"] = self._host
        super().init_poolmanager(*args, **kwargs)


class CheckSession(requests.Session):
    """A session whose every request has a timeout that ends before the deadline."""

    def __init__(self, timeout: float, deadline: Deadline | None) -> None:
        super().__init__()
        self.default_timeout = timeout
        self.deadline = deadline

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        timeout = kwargs.get("timeout") or self.default_timeout
        if self.deadline is not None:
            timeout = self.deadline.clamp(float(timeout))
        kwargs["timeout"] = timeout
        # Per request, so REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the environment cannot
        # replace the target's own CA bundle (requests prefers them to session.verify).
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)


def make_session(
    target: Target,
    *,
    deployment_id: str | None = None,
    deadline: Deadline | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 0,
    pool_size: int = 10,
) -> CheckSession:
    """A ready session for ``target``: headers, TLS settings, host name, timeouts, retries."""
    session = CheckSession(timeout, deadline)
    session.headers.update(target.default_headers(deployment_id))
    session.verify = target.tls_verify
    if not target.verify:
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    retry = (
        Retry(
            total=retries,
            connect=retries,
            read=0,
            backoff_factor=0.2,
            allowed_methods=None,
            raise_on_status=False,
        )
        if retries
        else Retry(0, read=False)
    )
    adapter = _HostAdapter(
        target.host, max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size
    )
    session.mount("https://", adapter)
    session.mount(
        "http://",
        HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size),
    )
    return session


def describe_error(exc: BaseException) -> str:
    """A short, specific message for a failed request (certificate, timeout, refused...)."""
    import ssl

    text = str(exc)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {cause.verify_message or cause}"
        cause = cause.__cause__ or cause.__context__
    if "CERTIFICATE_VERIFY_FAILED" in text or "doesn't match" in text:
        return f"TLS certificate verification failed: {text}"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no response before the timeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error: {text}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        if "Connection refused" in text:
            return "connection refused"
        return f"cannot connect: {text}"
    return f"{type(exc).__name__}: {text}"
