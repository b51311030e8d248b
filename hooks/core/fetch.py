"""Requests for checks written as plain functions, sent by the load engine.

A declarative check runs on one of the worker's threads and waits for its answer; the
request itself is written, read and timed by :mod:`hooks.core.wire` on one event loop per
process (a thread of its own, started on first use). A waiting check costs its thread a
wait, not a connection pool, a socket read loop and a parser in Python: the engine's
keep-alive connections and parser serve every check of the suite.

The rules are those of :mod:`hooks.core.http` (the session pytest and OpenAPI suites use):

- **Time.** ``timeout`` bounds the whole exchange — connect, headers, body and every
  redirect — and never outlasts the deadline.
- **Size.** At most the cap is kept, decompression included (``gzip``, ``deflate``).
- **Redirects** (when asked) one hop at a time, at most :data:`MAX_REDIRECTS`; 303, and
  301/302 after POST, become a GET without its body; to another origin only the
  harmless headers go (``User-Agent``, ``Accept``...), and a hop that would carry a bound
  credential there is refused.
- **Credentials and names**: the plan's headers and the ``Host`` override go to the
  target's origins only (:func:`hooks.core.wire.prepare`).
- **Cookies** the target sets are kept (one jar per fetcher, so per suite run, as a
  ``requests`` session keeps them) and sent back where their domain and path say.

A proxy (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY``) or a ``~/.netrc``
entry for the origin is honoured by sending that request through the checks' session
instead, as before: the engine itself connects directly.
"""

from __future__ import annotations

import json as jsonlib
import os
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from typing import Any
from urllib.parse import urljoin, urlsplit

from hooks.core import wire
from hooks.core.deadline import Deadline
from hooks.core.http_rules import (
    CROSS_ORIGIN_SAFE,
    DEFAULT_MAX_BODY_BYTES,
    MAX_REDIRECTS,
    CappedBody,
    OverCapError,
    redirected_method,
    too_large,
)
from hooks.core.reactor import Reactor
from hooks.core.target import Target, origin

__all__ = [
    "DEFAULT_TIMEOUT",
    "REDIRECTS",
    "FetchError",
    "Fetcher",
    "Headers",
    "Reply",
]

DEFAULT_TIMEOUT = 10.0
#: Statuses that redirect (with a ``Location``).
REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Seconds a waiting check allows the engine beyond the request's timeout, after which it
#: stops waiting (the engine answers at the timeout; this only bounds a stuck loop).
_GRACE = 5.0


class FetchError(Exception):
    """No response: the message says why (refused, out of time, TLS, over the cap...)."""


class Headers(Mapping[str, str]):
    """Response headers by case-insensitive name; a repeated field's values joined with
    ``", "`` (as requests gives them)."""

    def __init__(self, head: bytes) -> None:
        found: dict[str, tuple[str, str]] = {}
        #: Every field as received, in order (``Set-Cookie`` cannot be joined).
        self.fields: list[tuple[str, str]] = []
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                continue
            name, value = name.strip(), value.strip()
            self.fields.append((name, value))
            key = name.lower()
            if key in found:
                value = f"{found[key][1]}, {value}"
                name = found[key][0]
            found[key] = (name, value)
        self._fields = found

    def get_all(self, name: str, default: Any = None) -> list[str] | Any:
        """Every value of the field ``name``, one per line received (``email.message``'s
        method, which :mod:`http.cookiejar` reads ``Set-Cookie`` with)."""
        key = name.lower()
        values = [v for n, v in self.fields if n.lower() == key]
        return values or default

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class Reply:
    """A response: ``status_code``, ``headers``, ``content``, ``text`` and ``json()``."""

    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str],
        content: bytes,
        url: str,
        history: tuple[Reply, ...] = (),
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.url = url
        self.history = history

    @cached_property
    def text(self) -> str:
        """The body as text: in the ``charset`` its ``Content-Type`` names, else UTF-8 (any
        byte that is not UTF-8 becomes U+FFFD)."""
        charset = "utf-8"
        for parameter in self.headers.get("Content-Type", "").split(";")[1:]:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip("\"'")
        try:
            return self.content.decode(charset, "replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not."""
        return jsonlib.loads(self.text)


# ---- the engine's loop: one thread per process ----

_engine_lock = threading.Lock()
_engine: tuple[int, Reactor] | None = None


def _loop() -> Reactor:
    """The process's engine loop, started on first use (again in a forked child)."""
    global _engine
    with _engine_lock:
        if _engine is None or _engine[0] != os.getpid():
            loop = Reactor()
            threading.Thread(target=loop.run, name="greenlight-http", daemon=True).start()
            _engine = (os.getpid(), loop)
        return _engine[1]


class Fetcher:
    """Blocking requests to a target on the engine: one per suite run, any thread may call
    :meth:`request`; :meth:`close` ends its connections."""

    def __init__(
        self,
        target: Target,
        *,
        deployment_id: str | None = None,
        deadline: Deadline | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_body_bytes: int | None = None,
        secret_origins: Iterable[str] = (),
    ) -> None:
        self.target = target
        self.deployment_id = deployment_id
        self.deadline = deadline
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes or DEFAULT_MAX_BODY_BYTES
        self.secret_origins = tuple(secret_origins)
        #: The engine's clients of this fetcher by body cap (touched on the loop only).
        self._clients: dict[int, wire.Client] = {}
        self._session: Any = None
        #: Cookies the target set, sent back as a browser would (made on the first one).
        self._jar: Any = None
        self._session_lock = threading.Lock()
        self._indirect: dict[str, bool] = {}

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        json: Any = None,
        body: str | bytes | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
        max_body_bytes: int | None = None,
    ) -> Reply:
        """``method url``; its answer, or :class:`FetchError` naming why there is none."""
        # Long: one exchange and its redirects, each rule of the module's docstring in order.
        limit = float(timeout or self.timeout)
        if self.deadline is not None:
            limit = self.deadline.clamp(limit)
        cap = max_body_bytes or self.max_body_bytes
        given = {k: str(v) for k, v in (headers or {}).items()}
        if not any(k.lower() == "accept-encoding" for k in given):
            given["Accept-Encoding"] = "gzip, deflate"  # the encodings read under the cap
        if self._goes_indirect(url):
            return self._via_session(
                method, url, given, query, json, body, limit, follow=allow_redirects, cap=cap
            )
        ends = time.monotonic() + limit
        first = origin(url)
        history: list[Reply] = []
        while True:
            hop = self._with_cookies(url, given)
            try:
                prepared = wire.prepare(
                    self.target,
                    method,
                    url,
                    deployment_id=self.deployment_id,
                    headers=hop,
                    query=query,
                    json_body=json,
                    body=body,
                    secret_origins=self.secret_origins,
                    first_origin=first,
                )
            except ValueError as exc:
                raise FetchError(str(exc)) from None
            answer = self._exchange(prepared, ends - time.monotonic(), limit, cap)
            if answer.status is None:
                raise FetchError(
                    _out_of_time(limit)
                    if answer.timed_out
                    else too_large(cap)
                    if answer.too_large
                    else answer.error or "no answer"
                )
            head = Headers(answer.head)
            if head.get_all("Set-Cookie"):
                self._keep_cookies(url, head)
            reply = Reply(answer.status, head, _decoded(answer, cap), url, tuple(history))
            location = head.get("Location")
            if not allow_redirects or answer.status not in REDIRECTS or not location:
                return reply
            if len(history) >= MAX_REDIRECTS:
                raise FetchError(f"more than {MAX_REDIRECTS} redirects (the last to {location})")
            history.append(reply)
            url = urljoin(url, location)
            query = None  # the Location is the whole next URL
            method, keep_body = redirected_method(method, answer.status)
            if not keep_body:
                json = body = None
            if origin(url) != first:
                given = {k: v for k, v in given.items() if k.lower() in CROSS_ORIGIN_SAFE}

    def _with_cookies(self, url: str, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` and the cookies the jar holds for ``url`` (unless the check sets
        ``Cookie`` itself)."""
        jar = self._jar
        if jar is None or any(k.lower() == "cookie" for k in headers):
            return headers
        asked = _CookieRequest(url)
        jar.add_cookie_header(asked)
        cookie = asked.headers.get("Cookie")
        return {**headers, "Cookie": cookie} if cookie else headers

    def _keep_cookies(self, url: str, headers: Headers) -> None:
        if self._jar is None:
            # on use: only for a target that sets cookies
            from http.cookiejar import CookieJar

            with self._session_lock:
                if self._jar is None:
                    self._jar = CookieJar()
        self._jar.extract_cookies(_CookieResponse(headers), _CookieRequest(url))

    def close(self) -> None:
        """End this fetcher's connections (requests under way fail)."""
        loop = _engine[1] if _engine is not None and _engine[0] == os.getpid() else None
        if loop is not None and not loop.closed:
            clients, self._clients = self._clients, {}

            def close_all() -> None:
                for client in clients.values():
                    client.close()

            loop.call_soon_threadsafe(close_all)
        if self._session is not None:
            self._session.close()

    def _exchange(
        self, prepared: wire.Prepared, left: float, limit: float, cap: int
    ) -> wire.Answer:
        """Hand ``prepared`` to the engine and wait for its answer (``left`` seconds at most)."""
        if left <= 0:
            raise FetchError(_out_of_time(limit))
        loop = _loop()
        answers: list[wire.Answer] = []
        arrived = threading.Event()

        def done(answer: wire.Answer) -> None:
            answers.append(answer)
            arrived.set()

        def start() -> None:
            try:
                client = self._clients.get(cap)
                if client is None:
                    client = self._clients[cap] = wire.Client(
                        timeout=limit, max_body_bytes=cap, loop=loop
                    )
                client.send(prepared, done, left)
            except Exception as exc:  # the engine could not take it: the request's failure
                done(wire.Answer(None, b"", f"{type(exc).__name__}: {exc}", 0, 0))

        loop.call_soon_threadsafe(start)
        if not arrived.wait(left + _GRACE):
            raise FetchError(_out_of_time(limit))
        return answers[0]

    def _goes_indirect(self, url: str) -> bool:
        """Whether a proxy or a ``~/.netrc`` entry applies to ``url`` (read once per origin)."""
        key = origin(url)
        found = self._indirect.get(key)
        if found is None:
            found = self._indirect[key] = _proxied(url) or _in_netrc(url)
        return found

    def _via_session(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        query: Mapping[str, Any] | None,
        json: Any,
        body: str | bytes | None,
        limit: float,
        *,
        follow: bool,
        cap: int,
    ) -> Reply:
        """The request through the checks' session, which honours proxies and netrc."""
        # on use: requests loads only when a proxy or netrc applies
        from hooks.core.http import describe_error, make_session

        with self._session_lock:
            if self._session is None:
                self._session = make_session(
                    self.target,
                    deployment_id=self.deployment_id,
                    deadline=self.deadline,
                    timeout=self.timeout,
                    max_body_bytes=self.max_body_bytes,
                    secret_origins=self.secret_origins,
                )
        try:
            raw = self._session.request(
                method,
                url,
                params=query,
                headers=headers,
                json=json,
                data=body,
                timeout=limit,
                allow_redirects=follow,
                max_body_bytes=cap,
            )
        except Exception as exc:
            raise FetchError(describe_error(exc)) from exc
        return Reply(raw.status_code, raw.headers, raw.content, raw.url)


class _CookieRequest:
    """What :class:`http.cookiejar.CookieJar` reads of a request (``urllib.request.Request``'s
    shape), and where it writes the ``Cookie`` header."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.full_url = url
        self.type = parts.scheme
        self.host = parts.netloc
        self.origin_req_host = parts.hostname or ""
        self.unverifiable = False
        self.headers: dict[str, str] = {}

    def get_full_url(self) -> str:
        return self.full_url

    def get_host(self) -> str:
        return self.host

    def get_type(self) -> str:
        return self.type

    def get_origin_req_host(self) -> str:
        return self.origin_req_host

    def is_unverifiable(self) -> bool:
        return False

    def has_header(self, name: str) -> bool:
        return name.capitalize() in self.headers

    def get_header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.capitalize(), default)

    def header_items(self) -> list[tuple[str, str]]:
        return list(self.headers.items())

    def add_unredirected_header(self, name: str, value: str) -> None:
        self.headers[name.capitalize()] = value


class _CookieResponse:
    """What :class:`http.cookiejar.CookieJar` reads of a response: its header fields."""

    def __init__(self, headers: Headers) -> None:
        self._headers = headers

    def info(self) -> Headers:
        return self._headers


def _out_of_time(limit: float) -> str:
    return f"no complete response within {limit:g}s (connect, headers and body)"


def _decoded(answer: wire.Answer, cap: int) -> bytes:
    """The body, decompressed under ``cap`` (:class:`FetchError` past it)."""
    if not answer.encoding:
        return answer.body
    body = CappedBody(answer.encoding, cap)
    try:
        body.feed(answer.body)
    except OverCapError as exc:
        raise FetchError(str(exc)) from None
    except zlib.error as exc:
        raise FetchError(
            f"malformed response: a {answer.encoding} body that does not decode: {exc}"
        ) from None
    return bytes(body.data)


def _proxied(url: str) -> bool:
    """Whether the proxy variables send ``url`` through a proxy."""
    if not any(k.lower().endswith("_proxy") and k.lower() != "no_proxy" for k in os.environ):
        return False
    # on use: only when a proxy variable is set
    from urllib.request import (  # type: ignore[attr-defined]
        getproxies_environment,
        proxy_bypass_environment,
    )

    proxies = getproxies_environment()
    scheme = urlsplit(url).scheme.lower()
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    return not proxy_bypass_environment(urlsplit(url).hostname or "", proxies)


def _in_netrc(url: str) -> bool:
    """Whether ``~/.netrc`` (or ``$NETRC``) holds credentials for ``url``'s host."""
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.isfile(path):
        return False
    # on use: only when a netrc file exists
    import netrc

    try:
        return netrc.netrc(path).authenticators(urlsplit(url).hostname or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False
