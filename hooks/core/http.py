"""HTTP sessions for checks: bounded in time and size, careful with credentials.

- A request's ``timeout`` bounds the whole response (connect, headers and body), not the
  gap between two bytes: a watchdog shuts the connection's socket when the time is up.
- A body is read up to a cap, decompression included (zlib with an output bound), so no
  response can make a check allocate more than the cap.
- Redirects are followed here, one hop at a time: to another origin, credentials, custom
  headers and the ``Host`` override are dropped.
- The target's host name (``Host`` header, TLS SNI and certificate name) applies only to
  requests to the target's own origins, not to absolute URLs elsewhere.
- Values of credential-bearing headers join the redaction set (:mod:`hooks.core.redact`).

``requests`` is imported here and nowhere on the handler's import path.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from hooks.core import redact
from hooks.core.deadline import Deadline
from hooks.core.http_rules import (
    CERT_HINT,
    CROSS_ORIGIN_SAFE,
    DEFAULT_MAX_BODY_BYTES,
    MAX_REDIRECTS,
    CappedBody,
    OverCapError,
    credential_refusal,
    redirected_method,
)
from hooks.core.target import Target, origin

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_TIMEOUT",
    "MAX_REDIRECTS",
    "BodyTooLargeError",
    "CheckSession",
    "CredentialScopeError",
    "ResponseTimeoutError",
    "describe_error",
    "make_session",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
_CHUNK = 64 * 1024


class BodyTooLargeError(requests.exceptions.RequestException):
    """The response body is larger than the cap."""


class ResponseTimeoutError(requests.exceptions.Timeout):
    """The whole response did not arrive within the request's timeout."""


class CredentialScopeError(requests.exceptions.RequestException):
    """A request to an origin the gate does not target would carry a bound credential."""

    def __init__(self, destination: str) -> None:
        super().__init__(credential_refusal(destination))


# ---- the watchdog: one thread that shuts sockets whose request ran out of time ----


class _Watch:
    def __init__(self, at: float) -> None:
        self.at = at
        self.fired = False
        self.done = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._socks.append(sock)
            fired = self.fired
        if fired:
            _shut(sock)

    def fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.fired = True
            socks = list(self._socks)
        for sock in socks:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # The plain socket's method, also for a TLS socket: it acts on the descriptor.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Watch]] = []
        self._cond = threading.Condition()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, at: float) -> _Watch:
        watch = _Watch(at)
        with self._cond:
            heapq.heappush(self._heap, (at, next(self._ids), watch))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="greenlight-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return watch

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                at, _, watch = self._heap[0]
                delay = at - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
            watch.fire()


_WATCHDOG = _Watchdog()
_local = threading.local()


def _attach_current(sock: socket.socket | None) -> None:
    watch: _Watch | None = getattr(_local, "watch", None)
    if watch is not None:
        watch.attach(sock)


class _Watched(HTTPConnection):
    """A connection whose socket the current request's watchdog can shut."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attach_current(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach_current(self.sock)  # a kept-alive connection
        super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _Adapter(HTTPAdapter):
    """Watched connections; the host name for SNI and certificate checks on ``origins`` only."""

    def __init__(self, host: str | None, origins: Iterable[str], **kwargs: Any) -> None:
        self._host = host
        self._origins = frozenset(origins)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def build_connection_pool_key_attributes(
        self, request: Any, verify: Any, cert: Any = None
    ) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if self._host and host_params["scheme"] == "https" and origin(request.url) in self._origins:
            extra: dict[str, Any] = {"server_hostname": self._host, "assert_hostname": self._host}
            return host_params, {**pool_kwargs, **extra}
        return host_params, pool_kwargs


# ---- the session ----


class CheckSession(requests.Session):
    """A session whose every request ends before its timeout and the deadline."""

    def __init__(
        self,
        timeout: float,
        deadline: Deadline | None,
        *,
        host: str | None = None,
        host_origins: Iterable[str] = (),
        max_body_bytes: int | None = None,
        secret_headers: Iterable[str] = (),
        secret_origins: Iterable[str] = (),
    ) -> None:
        super().__init__()
        #: The plan's headers: sent to the target's origins only, never elsewhere.
        self.target_headers: dict[str, str] = {}
        #: Origins besides the target's a suite named as allowed to receive credentials.
        self.secret_origins = frozenset(origin(o) for o in secret_origins)
        self.default_timeout = timeout
        self.deadline = deadline
        self.host = host
        self.host_origins = frozenset(host_origins)
        self.max_body_bytes = max_body_bytes or DEFAULT_MAX_BODY_BYTES
        self.secret_headers = frozenset(h.lower() for h in secret_headers)
        self.trust_env = False  # proxies, netrc and CA variables: resolved once, below
        self._proxies: dict[str, str] | None = None
        self._netrc: dict[str, Any] = {}

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        timeout = float(kwargs.pop("timeout", None) or self.default_timeout)
        if self.deadline is not None:
            timeout = self.deadline.clamp(timeout)
        follow = kwargs.pop("allow_redirects", True)
        max_body = kwargs.pop("max_body_bytes", None) or self.max_body_bytes
        kwargs.pop("stream", None)  # the body is always read here, under the cap
        method = method.decode() if isinstance(method, bytes) else str(method)
        url = url.decode() if isinstance(url, bytes) else str(url)
        watch = _WATCHDOG.arm(time.monotonic() + timeout)
        _local.watch = watch
        try:
            first = origin(url)
            response = self._send_one(method, url, timeout, max_body, kwargs, watch, first)
            history: list[requests.Response] = []
            while follow and response.is_redirect:
                if len(history) >= MAX_REDIRECTS:
                    raise requests.exceptions.TooManyRedirects(
                        f"more than {MAX_REDIRECTS} redirects", response=response
                    )
                history.append(response)
                location = self.get_redirect_target(response)
                url = urljoin(response.url, location)
                method, keep_body = redirected_method(method, response.status_code)
                if not keep_body:
                    kwargs = {k: v for k, v in kwargs.items() if k not in ("json", "data", "files")}
                response = self._send_one(method, url, timeout, max_body, kwargs, watch, first)
            response.history = history
            return response
        finally:
            watch.done = True
            _local.watch = None

    def _send_one(
        self,
        method: str,
        url: str,
        timeout: float,
        max_body: int,
        kwargs: dict[str, Any],
        watch: _Watch,
        first_origin: str,
    ) -> requests.Response:
        kwargs = dict(kwargs)
        headers = dict(kwargs.pop("headers", None) or {})
        here = origin(url)
        if here in self.host_origins and self.host:
            headers.setdefault("Host", self.host)
        if here != first_origin:
            # Another origin: send it none of the credentials or custom headers.
            for name in list(self.headers) + list(headers):
                if name.lower() not in CROSS_ORIGIN_SAFE:
                    headers[name] = None  # requests drops headers set to None
            if here not in self.host_origins:
                headers.pop("Host", None)
            kwargs.pop("auth", None)
        if here in self.host_origins and here == first_origin:
            given = {name.lower() for name in headers}
            for name, value in self.target_headers.items():
                if name.lower() not in given:
                    headers[name] = value
        elif here not in self.host_origins and here not in self.secret_origins:
            self._refuse_carried(here, url, headers, kwargs)
        merged = {**self.headers, **{k: v for k, v in headers.items() if v is not None}}
        redact.register_headers(merged, self.secret_headers)
        self._apply_env(kwargs, url)
        try:
            response = super().request(
                method,
                url,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
                **kwargs,
            )
            _read_capped(response, max_body)
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            # A socket that timed out waited the whole limit for its connect or a read: the
            # whole response did not come in time either, whichever timer spoke first.
            timed_out = isinstance(
                exc, requests.exceptions.Timeout | urllib3.exceptions.TimeoutError | TimeoutError
            )
            if watch.fired or timed_out:
                raise ResponseTimeoutError(
                    f"no complete response within {timeout:g}s (connect, headers and body)"
                ) from exc
            if isinstance(exc, urllib3.exceptions.HTTPError):  # read outside requests' wrapping
                raise requests.exceptions.ConnectionError(exc) from exc
            raise
        if watch.fired:
            raise ResponseTimeoutError(
                f"no complete response within {timeout:g}s (connect, headers and body)"
            )
        return response

    def _refuse_carried(
        self, here: str, url: str, headers: dict[str, Any], kwargs: dict[str, Any]
    ) -> None:
        """Refuse a request to another origin that would carry a bound credential: in its
        URL, a header (the session's or its own) or its body."""
        texts = [url, *(str(v) for v in {**self.headers, **headers}.values() if v is not None)]
        for key in ("params", "data", "json"):
            value = kwargs.get(key)
            if isinstance(value, bytes):
                texts.append(value.decode("utf-8", "replace"))
            elif value is not None:
                texts.append(value if isinstance(value, str) else json.dumps(value, default=str))
        auth = kwargs.get("auth")
        if isinstance(auth, tuple):
            texts += [str(part) for part in auth]
        if redact.carried(*texts):
            raise CredentialScopeError(here)

    def _apply_env(self, kwargs: dict[str, Any], url: str) -> None:
        """What requests reads from the environment on every request, read once here.

        Proxies (``HTTPS_PROXY``, ``NO_PROXY``...) once per session, ``~/.netrc`` once per
        origin, and ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` only when the target has no
        CA bundle of its own (the target's bundle wins).
        """
        from requests import utils

        if self._proxies is None:
            self._proxies = utils.getproxies()  # type: ignore[attr-defined]
        if self._proxies and not utils.should_bypass_proxies(url, self._proxies.get("no")):
            kwargs.setdefault("proxies", self._proxies)
        if not kwargs.get("auth") and not self.auth:
            key = origin(url)
            if key not in self._netrc:
                self._netrc[key] = utils.get_netrc_auth(url)
            if self._netrc[key] is not None:
                kwargs["auth"] = self._netrc[key]
        if url[:7].lower() == "http://":
            # Plain HTTP verifies nothing; a bundle's path would only be stat'ed per request.
            kwargs.setdefault("verify", True)
            return
        verify = self.verify
        if verify is True:
            verify = _env_ca_bundle() or True
        kwargs.setdefault("verify", verify)


def _env_ca_bundle() -> str | None:
    import os

    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def _read_capped(response: requests.Response, cap: int) -> None:
    """Read the body into ``response`` (so ``.content``, ``.text``, ``.json()`` work) or fail.

    At most ``cap`` bytes are kept, after decompression; more is a
    :class:`BodyTooLargeError` naming the cap.
    """
    body = CappedBody(response.headers.get("Content-Encoding", ""), cap)
    try:
        for chunk in response.raw.stream(_CHUNK, decode_content=False):
            body.feed(chunk)
    except OverCapError as exc:
        response.close()
        raise BodyTooLargeError(str(exc)) from None
    finally:
        response.raw.release_conn()
    response._content = bytes(body.data)
    response._content_consumed = True  # type: ignore[attr-defined]


def make_session(
    target: Target,
    *,
    deployment_id: str | None = None,
    deadline: Deadline | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 0,
    pool_size: int = 10,
    max_body_bytes: int | None = None,
    secret_headers: Iterable[str] = (),
    secret_origins: Iterable[str] = (),
) -> CheckSession:
    """A ready session for ``target``: headers, TLS settings, host name, timeouts, retries.

    The plan's headers go to the target's origins only (green, and production for a
    comparison); no request elsewhere may carry one, or a secret's value, unless its
    origin is in ``secret_origins``."""
    origins = [origin(u) for u in (target.url, target.prod_url) if u]
    session = CheckSession(
        timeout,
        deadline,
        host=target.host,
        host_origins=origins,
        max_body_bytes=max_body_bytes,
        secret_headers=secret_headers,
        secret_origins=secret_origins,
    )
    headers = target.default_headers(deployment_id)
    session.target_headers = {name: headers.pop(name) for name in target.headers if name in headers}
    session.headers.update(headers)
    session.headers["Accept-Encoding"] = "gzip, deflate"  # the encodings read under the cap
    redact.bind(*session.target_headers.values(), *target.headers.values())
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
    for prefix in ("https://", "http://"):
        session.mount(
            prefix,
            _Adapter(
                target.host,
                origins,
                max_retries=retry,
                pool_connections=pool_size,
                pool_maxsize=pool_size,
            ),
        )
    return session


def describe_error(exc: BaseException) -> str:
    """A short, specific message for a failed request (certificate, timeout, refused...)."""
    import ssl

    text = str(exc)
    if isinstance(exc, BodyTooLargeError | ResponseTimeoutError):
        return text
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or cause
            return f"TLS certificate verification failed: {reason}{CERT_HINT}"
        cause = cause.__cause__ or cause.__context__
    if "CERTIFICATE_VERIFY_FAILED" in text or "doesn't match" in text:
        return f"TLS certificate verification failed: {text}{CERT_HINT}"
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
