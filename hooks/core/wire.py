"""HTTP/1.1 near the metal: the engine the load generator and the YAML checks send with.

A request is prepared once — its bytes, where it goes, its TLS settings — and sent many
times. :meth:`Client.send` writes it at once on an idle keep-alive connection (or opens one)
and calls back when the whole response has arrived, failed or run out of time. It runs on a
:class:`~hooks.core.reactor.Reactor`, with no thread, task, future, transport or protocol per
request: a request costs a ``send``, a readiness event, a ``recv_into`` and a parse.

- **Time.** A request's time runs from the moment it is handed to :meth:`Client.send`
  (connecting included, when no connection is idle) to its last byte; its timeout bounds
  the whole response, connect, headers and body.
- **Size.** A body is kept up to a cap; a larger one fails the request (and closes the
  connection) instead of growing the process.
- **Connections** are reused while the server keeps them alive; a reused connection that
  the server had closed before the request reached it is replaced once, as browsers do.
- **Credentials and names** follow the rules of :mod:`hooks.core.http`: the plan's headers
  and the ``Host`` override go to the target's own origins only, and a request elsewhere
  that would carry a bound credential is refused before anything is sent.

Proxies and ``~/.netrc`` do not apply here: the engine connects to the target directly.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from time import monotonic as _monotonic
from time import time as _now
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from hooks.core import redact
from hooks.core.http_rules import CERT_HINT, credential_refusal
from hooks.core.reactor import READ, WRITE, Reactor, Timer
from hooks.core.target import Target, origin

if TYPE_CHECKING:
    import ssl

__all__ = [
    "MAX_HEAD_BYTES",
    "READ_BYTES",
    "RESOLVED_SECONDS",
    "STAMPS",
    "SWEEP_SECONDS",
    "Answer",
    "Client",
    "Endpoint",
    "Prepared",
    "describe_failure",
    "prepare",
    "tls_context",
]

#: Most bytes one read takes from a socket.
READ_BYTES = 256 * 1024
#: Most seconds between two sweeps for requests out of time (a tenth of the timeout, if less).
SWEEP_SECONDS = 0.05
#: Characters of a URL's path and query sent as they are (``requests.utils.requote_uri``'s).
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
#: Seconds a host name's addresses are used before it is looked up again.
RESOLVED_SECONDS = 5.0
#: Largest status line and headers read before the response is called malformed.
MAX_HEAD_BYTES = 64 * 1024
#: The kernel stamps what each socket receives with its arrival time (Linux:
#: ``SO_TIMESTAMPNS``, a ``struct timespec`` of the realtime clock beside each read).
STAMPS = sys.platform.startswith("linux")
_SO_TIMESTAMPNS = 35
_STAMP_SPACE = socket.CMSG_SPACE(16) if STAMPS else 0


@dataclass(frozen=True, eq=False)
class Endpoint:
    """Where a connection goes: address, port and, for HTTPS, the TLS context and name.
    One object per place (:func:`_endpoint`), so it is told apart by identity."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    server_hostname: str | None = None


@dataclass(frozen=True)
class Prepared:
    """A request ready to be written as it is, any number of times."""

    endpoint: Endpoint
    data: bytes
    #: A HEAD request: its answer has no body, whatever its headers say.
    head: bool
    #: ``METHOD URL``, for messages and reports.
    line: str


@dataclass(slots=True)
class Answer:
    """What came back: a status and body, or the reason there is none."""

    status: int | None
    body: bytes
    error: str | None
    #: When the request was handed over and when its answer ended (the loop's clock).
    sent: float
    finished: float
    #: The ``Content-Encoding`` of ``body`` (lowercase), if any.
    encoding: str = ""
    #: The status line and headers as received (``error``: empty).
    head: bytes = b""
    #: The request failed because the body was over the cap / because time ran out.
    too_large: bool = False
    timed_out: bool = False
    #: What the sender gave :meth:`Client.send` to know its answer by.
    tag: Any = None


@cache
def tls_context(verify: bool, ca_bundle: str | None) -> ssl.SSLContext:
    """A client context: the bundle given, else ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``,
    else certifi's (as :mod:`hooks.core.http` verifies), else the system's."""
    import ssl  # on use: HTTPS only (some 7 ms on a cold start)

    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        bundle = (
            ca_bundle
            or os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or _certifi()
        )
        if bundle and os.path.isdir(bundle):
            context.load_verify_locations(capath=bundle)
        elif bundle:
            context.load_verify_locations(cafile=bundle)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _certifi() -> str | None:
    try:
        import certifi
    except ImportError:  # pragma: no cover - requests brings it
        return None
    return str(certifi.where())


def prepare(
    target: Target,
    method: str,
    url: str,
    *,
    deployment_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, Any] | None = None,
    json_body: Any = None,
    body: str | bytes | None = None,
    secret_origins: Iterable[str] = (),
    first_origin: str | None = None,
) -> Prepared:
    """``method url`` for ``target``, ready to write.

    ``first_origin``: for a redirect, the origin of the request that was redirected; the
    plan's headers go only to the origin they were first sent to.

    Raises ValueError naming what is wrong: a URL that is not http(s), a header that cannot
    be sent, or a bound credential bound for an origin that is not the target's."""
    # Long: one request from its URL to its bytes, each rule beside the line it shapes.
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    here = origin(url)
    target_origins = {origin(u) for u in (target.url, target.prod_url) if u}
    defaults = target.default_headers(deployment_id)
    own = {name: defaults.pop(name) for name in target.headers if name in defaults}
    given = {k: str(v) for k, v in (headers or {}).items()}
    merged = {**defaults, "Accept": "*/*", **given}
    named = {k.lower() for k in merged}
    if here in target_origins and first_origin in (None, here):
        merged.update({k: v for k, v in own.items() if k.lower() not in named})
    # As browsers and requests write them: what cannot go on the wire (spaces, non-ASCII)
    # percent-encoded, what already is kept.
    path = quote(parts.path or "/", safe=_URL_SAFE)
    extra = urlencode(_query(query), doseq=True) if query else ""
    target_query = "&".join(q for q in (quote(parts.query, safe=_URL_SAFE), extra) if q)
    path = f"{path}?{target_query}" if target_query else path
    payload: bytes | None
    if json_body is not None:
        payload = json.dumps(json_body, allow_nan=False).encode()
        if "content-type" not in named:
            merged["Content-Type"] = "application/json"
    elif body is not None:
        payload = body.encode() if isinstance(body, str) else body
    else:
        payload = None
    redact.bind(*own.values(), *target.headers.values())  # before the check below uses them
    if here not in target_origins and here not in {origin(o) for o in secret_origins}:
        text = payload.decode("utf-8", "replace") if payload else ""
        # Greenlight's own headers (User-Agent, the deployment id) carry no credential.
        if redact.carried(url, path, text, *given.values()):
            raise ValueError(credential_refusal(here))
    redact.register_headers(merged)
    port = parts.port or (443 if scheme == "https" else 80)
    named_host = target.host if here in target_origins and target.host else None
    given_host = next((v for k, v in given.items() if k.lower() == "host"), None)
    host_header = given_host or named_host or parts.netloc.rpartition("@")[2]
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header}"]
    lines += [f"{k}: {v}" for k, v in merged.items() if k.lower() != "host"]
    if payload is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(payload or b'')}")
    broken = [k for k, v in merged.items() if "\r" in k + v or "\n" in k + v]
    if broken:  # named, never shown: the value may be a secret
        raise ValueError(
            f"the header {broken[0]!r} of {method} {url} holds a line break (a value read "
            f"from a file or a variable often ends with one)"
        )
    if any("\r" in line or "\n" in line for line in lines):
        raise ValueError(f"a header of {method} {url} holds a line break")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"a header of {method} {url} cannot be sent as HTTP/1.1: {exc}") from None
    tls = tls_context(target.verify, target.ca_bundle) if scheme == "https" else None
    endpoint = _endpoint(parts.hostname, port, tls, (named_host or parts.hostname) if tls else None)
    return Prepared(endpoint, head + (payload or b""), method == "HEAD", f"{method} {url}")


def _query(query: Mapping[str, Any]) -> dict[str, Any]:
    """Query parameters as requests writes them: a list repeats its name, the rest is text."""
    return {
        k: [str(x) for x in v] if isinstance(v, list | tuple) else str(v) for k, v in query.items()
    }


_ENDPOINTS: dict[tuple[str, int, ssl.SSLContext | None, str | None], Endpoint] = {}


def _endpoint(host: str, port: int, tls: ssl.SSLContext | None, name: str | None) -> Endpoint:
    key = (host, port, tls, name)
    found = _ENDPOINTS.get(key)
    if found is None:
        found = _ENDPOINTS[key] = Endpoint(host, port, tls, name)
    return found


def describe_failure(exc: BaseException) -> str:
    """A short, specific message for a connection that failed (refused, TLS, name...)."""
    ssl = sys.modules.get("ssl")  # loaded if TLS was used, so if it can have failed
    if ssl is not None and isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc}{CERT_HINT}"
    if ssl is not None and isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        return f"cannot connect: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


Done = Callable[[Answer], None]


class _Exchange:
    """One request under way, from :meth:`Client.send` to its one callback. What most
    requests never change is the class's, not set on each."""

    connecting: _Opening | None = None
    connection: _Connection | None = None
    retried = False
    over = False
    #: Its own time limit (:meth:`Client.send`'s ``timeout``), else the client's.
    timeout: float | None = None
    timer: Timer | None = None

    def __init__(self, request: Prepared, done: Done, sent: float, tag: Any) -> None:
        self.request = request
        self.done = done
        self.sent = sent
        self.tag = tag


_UNTIL_CLOSE = -1
_CHUNKED = -2
#: What a socket raises when it has nothing to give or take now (TLS adds its own two).
_NOT_NOW: tuple[type[OSError], ...] = (BlockingIOError, InterruptedError)


def _not_now() -> tuple[type[OSError], ...]:
    ssl = sys.modules.get("ssl")
    return _NOT_NOW if ssl is None else (*_NOT_NOW, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _Connection:
    """One keep-alive connection: writes a request, reads and parses its response."""

    def __init__(self, client: Client, endpoint: Endpoint, sock: socket.socket) -> None:
        self.client = client
        self.endpoint = endpoint
        self.sock = sock
        self.tls = endpoint.tls is not None
        self.buffer = bytearray()
        self.exchange: _Exchange | None = None
        self.used = 0
        self.closed = False
        self.unsent: memoryview | None = None
        # The response being read.
        self.status: int | None = None
        self.remaining = 0
        self.keep_alive = True
        self.encoding = ""
        self.head = b""
        self.body = bytearray()
        self.received = False
        #: When the last bytes read reached the machine (the loop's clock), if stamped.
        self.stamped = client.stamped and not self.tls
        self.arrived = 0.0
        client.loop.watch(sock, READ, self._ready)

    def start(self, exchange: _Exchange) -> None:
        self.exchange, exchange.connection = exchange, self
        self.status, self.received, self.arrived = None, False, 0.0
        self.used += 1
        data = exchange.request.data
        try:
            sent = self.sock.send(data)
        except _not_now():
            sent = 0
        except OSError as exc:
            self._lost(exc)
            return
        if sent < len(data):  # the rest when the socket can take it
            self.unsent = memoryview(data)[sent:]
            self.client.loop.watch(self.sock, READ | WRITE, self._ready)

    def _ready(self, events: int) -> None:
        # Long: every answer passes here; its common case (a whole answer in one read) is
        # read, parsed and finished in this one frame.
        try:
            if events & WRITE and self.unsent is not None:
                self._flush()
            if not events & READ:
                return
            client, sock = self.client, self.sock
            while not self.closed:
                try:
                    if self.stamped:
                        size, stamps, _, _ = sock.recvmsg_into(client.landings, _STAMP_SPACE)
                        if stamps:
                            seconds: int
                            nanoseconds: int
                            seconds, nanoseconds = _TIMESPEC.unpack(stamps[0][2])
                            # realtime, on the loop's monotonic clock
                            self.arrived = seconds + nanoseconds * 1e-9 - (_now() - _monotonic())
                    else:
                        size = sock.recv_into(client.landing)
                except _not_now():
                    return
                except OSError as exc:
                    self._lost(exc)
                    return
                if not size:
                    self._lost(None)
                    return
                if self.exchange is None:  # nothing was asked: a server talking out of turn
                    self.abort()
                    return
                self.received = True
                try:
                    if self.status is None and not self.buffer:
                        # The first bytes of an answer, parsed where they landed; most often
                        # the whole of it, which then never passes through the buffer.
                        landing = client.landing
                        end = client.landed.find(b"\r\n\r\n", 0, size)
                        if end >= 0:
                            self._head(bytes(landing[:end]))
                            start, remaining = end + 4, self.remaining
                            if self.status is not None and 0 <= remaining <= size - start:
                                if size > start + remaining:  # read ahead: not reused
                                    self.buffer += landing[start + remaining : size]
                                self._finish(bytes(landing[start : start + remaining]))
                            else:  # an interim answer, or more to come
                                self.buffer += landing[start:size]
                                self._read()
                        else:
                            self.buffer += landing[:size]
                            self._read()
                    else:
                        self.buffer += client.landing[:size]
                        self._read()
                except _TooLarge as exc:
                    self._fail(f"{exc} of {client.max_body_bytes} bytes", too_large=True)
                except ValueError as exc:
                    self._fail(f"malformed response: {exc}")
                # TLS hands over one record a read and keeps the rest decrypted inside,
                # where the selector cannot see it: read on until it says there is nothing.
                if not self.tls:
                    return
        except Exception as exc:
            if self.exchange is None:  # the fault was the caller's callback: the loop reports it
                raise
            # Anything unforeseen in reading or writing ends the request at once, named,
            # rather than leaving it to its timeout.
            self._fail(f"{type(exc).__name__}: {exc}")

    def _flush(self) -> None:
        assert self.unsent is not None
        try:
            sent = self.sock.send(self.unsent)
        except _not_now():
            return
        except OSError as exc:
            self._lost(exc)
            return
        self.unsent = self.unsent[sent:] if sent < len(self.unsent) else None
        if self.unsent is None:
            self.client.loop.watch(self.sock, READ, self._ready)

    def _lost(self, exc: BaseException | None) -> None:
        """The server closed the connection, or it broke."""
        if self.closed:
            return
        self.abort()
        exchange = self.exchange
        if exchange is None or exchange.over:
            return
        if self.status is not None and self.remaining == _UNTIL_CLOSE:
            self._finish()
            return
        self.exchange = None
        if not self.received and self.used > 1 and not exchange.retried:
            # A keep-alive connection the server closed before the request reached it.
            exchange.retried = True
            self.client._open(exchange)
            return
        why = describe_failure(exc) if exc else "the server closed the connection"
        self.client._end(exchange, Answer(None, b"", f"{why} before a complete response", 0, 0))

    def _read(self) -> None:
        buffer = self.buffer
        while self.status is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise ValueError(f"status line and headers over {MAX_HEAD_BYTES} bytes")
                return
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            self._head(head)
        if self.remaining >= 0:
            if len(buffer) < self.remaining:
                return
            self.body += buffer[: self.remaining]
            del buffer[: self.remaining]
            self._finish()
        elif self.remaining == _CHUNKED:
            self._chunks()
        else:  # until the server closes the connection
            self._keep(buffer)
            buffer.clear()

    def _head(self, head: bytes) -> None:
        # The status line: ``HTTP/1.x NNN reason``.
        if head[:7] != b"HTTP/1." or head[8:9] != b" " or not head[9:12].isdigit():
            first = head.partition(b"\r\n")[0]
            raise ValueError(f"status line {first[:80]!r}")
        status = int(head[9:12])
        if 100 <= status < 200 and status != 101:
            return  # an interim answer (100 Continue, 103 Early Hints): the final one follows
        self.head = head
        self.status = status
        fields = head.lower()
        # A field is looked for only if it is there (``in`` is one scan, in C).
        connection = _field(fields, b"\r\nconnection:") if b"\r\nconnection:" in fields else None
        if head[7] == 0x31:  # HTTP/1.1: kept alive unless it says close
            self.keep_alive = connection != b"close"
        else:
            self.keep_alive = connection == b"keep-alive"
        exchange = self.exchange
        assert exchange is not None
        # No body, whatever the headers say: an answer to HEAD, 204, 304 (1xx: interim).
        empty = status < 200 or status == 204 or status == 304 or exchange.request.head
        if b"encoding:" in fields:
            coding = _field(fields, b"\r\ncontent-encoding:")
            self.encoding = coding.decode("latin-1") if coding else ""
            if (_field(fields, b"\r\ntransfer-encoding:") or b"").endswith(b"chunked"):
                self.remaining = 0 if empty else _CHUNKED
                return
        else:
            self.encoding = ""
        if empty:
            self.remaining = 0
            return
        at = fields.find(b"\r\ncontent-length:")
        if at < 0:
            self.remaining = _UNTIL_CLOSE
            self.keep_alive = False
            return
        end = fields.find(b"\r\n", at + 17)
        size = int(fields[at + 17 : end if end >= 0 else len(fields)])
        if size > self.client.max_body_bytes:
            raise _TooLarge(size)
        self.remaining = size

    def _chunks(self) -> None:
        buffer = self.buffer
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(buffer[:line_end]).split(b";")[0].strip() or b"x", 16)
            if size == 0:
                # The last chunk, trailers (ignored) and an empty line.
                trailer_end = buffer.find(b"\r\n\r\n", line_end)
                if buffer[line_end : line_end + 4] == b"\r\n\r\n" or trailer_end >= 0:
                    cut = line_end + 4 if trailer_end < 0 else trailer_end + 4
                    del buffer[:cut]
                    self._finish()
                return
            if len(buffer) < line_end + 2 + size + 2:
                return
            self._keep(buffer[line_end + 2 : line_end + 2 + size])
            del buffer[: line_end + 2 + size + 2]

    def _keep(self, data: bytes | bytearray) -> None:
        if len(self.body) + len(data) > self.client.max_body_bytes:
            raise _TooLarge(len(self.body) + len(data))
        self.body += data

    def _finish(self, body: bytes | None = None) -> None:
        """The answer is whole: its body is ``body``, else the one gathered."""
        exchange = self.exchange
        assert exchange is not None
        self.exchange = None
        if body is None:
            body, self.body = bytes(self.body), bytearray()
        # Stamped: the answer ended when its last bytes arrived, however late it was read.
        arrived = self.arrived
        finished = (arrived if arrived > exchange.sent else exchange.sent) if arrived else 0.0
        answer = Answer(self.status, body, None, 0, finished, self.encoding, self.head)
        # Reused only when clean: nothing read ahead, and nothing of the request left to
        # write (a server may answer before it has read the whole body: 413, 401).
        if self.keep_alive and not self.buffer and not self.closed and self.unsent is None:
            self.client._release(self)
        else:
            self.abort()
        self.client._end(exchange, answer)

    def _fail(self, why: str, too_large: bool = False) -> None:
        exchange = self.exchange
        self.exchange = None
        self.abort()
        if exchange is not None:
            self.client._end(exchange, Answer(None, b"", why, 0, 0, too_large=too_large))

    def abort(self) -> None:
        """Close at once, without a callback."""
        if self.closed:
            return
        self.closed = True
        self.client.loop.unwatch(self.sock)
        self.sock.close()
        self.client._forget(self)


def _field(fields: bytes, name: bytes) -> bytes | None:
    """The value of the header ``name`` (``\\r\\nname:``, lowercase) in lowercased ``fields``."""
    at = fields.find(name)
    if at < 0:
        return None
    start = at + len(name)
    end = fields.find(b"\r\n", start)
    return fields[start : end if end >= 0 else len(fields)].strip()


_TIMESPEC = struct.Struct("qq")


class _TooLarge(ValueError):
    def __init__(self, size: int) -> None:
        super().__init__(f"a body of {size} bytes or more is over the cap")


class _Opening:
    """A new connection for an exchange: the name resolved (on a thread, unless it is an
    address), each address tried in turn, then the TLS handshake; :meth:`cancel` stops it."""

    def __init__(self, client: Client, exchange: _Exchange) -> None:
        self.client = client
        self.exchange = exchange
        self.endpoint = exchange.request.endpoint
        self.sock: socket.socket | None = None
        self.addresses: list[tuple[int, Any]] = []
        self.error: BaseException | None = None
        self.cancelled = False
        host, port = self.endpoint.host, self.endpoint.port
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(family, host)
            except OSError:
                continue
            self.addresses = [(family, (host, port))]
            # On the next turn: even a connect that fails at once answers after send returns.
            client.loop.call_soon(self._next)
            return
        client._resolve(self)

    def cancel(self) -> None:
        self.cancelled = True
        self._drop()

    def _resolved(self, addresses: list[tuple[int, Any]]) -> None:
        self.addresses = list(addresses)
        self._next()

    def _next(self) -> None:
        """Connect to the next address; fail with the last error when none is left."""
        self._drop()
        if self.cancelled:
            return
        if not self.addresses:
            self._failed(self.error or OSError("the name has no address"))
            return
        family, address = self.addresses.pop(0)
        try:
            sock = self.sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex(address)
        except OSError as exc:  # no descriptor left (EMFILE), an address family not here
            code, self.error = -1, exc
        if code and code not in (errno.EINPROGRESS, errno.EWOULDBLOCK):
            if code > 0:
                self.error = OSError(code, os.strerror(code))
            self._next()
            return
        self.client.loop.watch(sock, WRITE, self._connected)

    def _connected(self, events: int) -> None:
        assert self.sock is not None
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.error = OSError(code, os.strerror(code))
            self._next()
            return
        if self.endpoint.tls is None:
            self._done()
            return
        try:
            self.sock = self.endpoint.tls.wrap_socket(
                self.sock,
                server_hostname=self.endpoint.server_hostname,
                do_handshake_on_connect=False,
            )
        except (OSError, ValueError) as exc:  # a name TLS cannot check (".example")
            self._failed(exc)
            return
        self._handshake(0)

    def _handshake(self, events: int) -> None:
        import ssl  # on use: only for HTTPS, whose context already loaded it

        assert self.sock is not None
        loop = self.client.loop
        try:
            self.sock.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            loop.watch(self.sock, READ, self._handshake)
        except ssl.SSLWantWriteError:
            loop.watch(self.sock, WRITE, self._handshake)
        except (OSError, ValueError) as exc:  # SSLError, a certificate refused, a reset
            self._failed(exc)
        else:
            self._done()

    def _done(self) -> None:
        sock, self.sock = self.sock, None
        assert sock is not None
        if self.client.stamped and self.endpoint.tls is None:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self.client._opened(self.exchange, _Connection(self.client, self.endpoint, sock))

    def _failed(self, exc: BaseException) -> None:
        self._drop()
        if not self.cancelled:
            self.client._end(self.exchange, Answer(None, b"", describe_failure(exc), 0, 0))

    def _drop(self) -> None:
        if self.sock is not None:
            self.client.loop.unwatch(self.sock)
            self.sock.close()
            self.sock = None


class Client:
    """Sends prepared requests on keep-alive connections; one callback per request, always:
    an answer, a failure or the timeout, whichever comes first."""

    def __init__(
        self, *, timeout: float, max_body_bytes: int, loop: Reactor, stamped: bool = False
    ) -> None:
        """On ``loop``, whose thread alone may call it. ``stamped`` (where :data:`STAMPS`):
        an answer over plain HTTP ends when the kernel says its last bytes arrived, not
        when the loop got round to reading them."""
        self.loop = loop
        self.stamped = stamped and STAMPS
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        #: Connections opened in all, and open now.
        self.opened = 0
        self._idle: dict[Endpoint, list[_Connection]] = {}
        self._open_now: set[_Connection] = set()
        self._opening: set[_Opening] = set()
        #: Host names looked up (until when, and their addresses), and those being looked
        #: up with the openings waiting for them.
        self._resolved: dict[tuple[str, int], tuple[float, list[tuple[int, Any]]]] = {}
        self._resolving: dict[tuple[str, int], list[_Opening]] = {}
        #: Exchanges in the order they were sent: with one timeout for all, the oldest are
        #: the first to run out of time, and one timer sweeps them (none per request).
        self._by_age: deque[_Exchange] = deque()
        #: Exchanges with a timeout of their own, under way.
        self._timed: set[_Exchange] = set()
        self._sweeper: Timer | None = None
        self._sweep_every = min(SWEEP_SECONDS, timeout / 10)
        #: Where every connection's reads land before they join its own buffer.
        self.landed = bytearray(READ_BYTES)
        self.landing = memoryview(self.landed)
        self.landings = [self.landing]

    def send(
        self, request: Prepared, done: Done, timeout: float | None = None, tag: Any = None
    ) -> None:
        """Write ``request`` now (or connect first); ``done`` is called once with the answer.

        ``timeout``: this request's own limit instead of the client's (a timer of its own;
        the client's limit is swept for all requests at once). ``tag`` comes back as the
        answer's: one callback serves every request, with no closure made for each."""
        exchange = _Exchange(request, done, self.loop.time(), tag)
        if timeout is None:
            self._by_age.append(exchange)
            if self._sweeper is None:
                self._sweeper = self.loop.call_later(self._sweep_every, self._sweep)
        else:
            exchange.timeout = timeout
            exchange.timer = self.loop.call_later(timeout, self._expire, exchange)
            self._timed.add(exchange)
        idle = self._idle.get(request.endpoint)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                connection.start(exchange)
                return
        self._open(exchange)

    def close(self) -> None:
        """Abort every connection and every connect under way; no callback follows."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for exchange in self._by_age:
            exchange.over = True
        for exchange in list(self._timed):
            exchange.over = True
            if exchange.timer is not None:
                exchange.timer.cancel()
        self._timed.clear()
        for opening in list(self._opening):
            opening.cancel()
        self._opening.clear()
        for connection in list(self._open_now):
            connection.exchange = None
            connection.abort()
        self._idle.clear()

    def _open(self, exchange: _Exchange) -> None:
        exchange.connecting = _Opening(self, exchange)
        self._opening.add(exchange.connecting)

    def _resolve(self, opening: _Opening) -> None:
        """The addresses of ``opening``'s host: remembered for RESOLVED_SECONDS, else looked
        up on a thread, one per host at a time (a load against a stalled service opens
        hundreds of connections at once: they share one lookup, never a thread each)."""
        key = (opening.endpoint.host, opening.endpoint.port)
        known = self._resolved.get(key)
        if known is not None and known[0] > self.loop.time():
            self.loop.call_soon(opening._resolved, known[1])
            return
        waiting = self._resolving.get(key)
        if waiting is not None:
            waiting.append(opening)
            return
        self._resolving[key] = [opening]
        try:
            threading.Thread(
                target=self._look_up, args=(key,), name="greenlight-resolve", daemon=True
            ).start()
        except RuntimeError as exc:  # no thread left to start (the process's limit)
            self.loop.call_soon(self._looked_up, key, OSError(f"cannot resolve now: {exc}"))

    def _look_up(self, key: tuple[str, int]) -> None:  # on its own thread: getaddrinfo blocks
        try:
            found: Any = [
                (family, address)
                for family, _, _, _, address in socket.getaddrinfo(*key, type=socket.SOCK_STREAM)
            ]
        except OSError as exc:
            found = exc
        self.loop.call_soon_threadsafe(self._looked_up, key, found)

    def _looked_up(self, key: tuple[str, int], found: list[tuple[int, Any]] | OSError) -> None:
        waiting = self._resolving.pop(key, [])
        if not isinstance(found, OSError):
            self._resolved[key] = (self.loop.time() + RESOLVED_SECONDS, found)
        for opening in waiting:
            if isinstance(found, OSError):
                opening._failed(found)
            else:
                opening._resolved(found)

    def _opened(self, exchange: _Exchange, connection: _Connection) -> None:
        assert exchange.connecting is not None
        self._opening.discard(exchange.connecting)
        exchange.connecting = None
        self.opened += 1
        self._open_now.add(connection)
        if exchange.over:
            self._release(connection)
            return
        connection.start(exchange)

    def _release(self, connection: _Connection) -> None:
        idle = self._idle.get(connection.endpoint)
        if idle is None:
            idle = self._idle[connection.endpoint] = []
        idle.append(connection)

    def _forget(self, connection: _Connection) -> None:
        self._open_now.discard(connection)

    def _sweep(self) -> None:
        """End every exchange that has run out of time; come back while any is under way."""
        by_age, expired_before = self._by_age, self.loop.time() - self.timeout
        while by_age and (by_age[0].over or by_age[0].sent <= expired_before):
            exchange = by_age.popleft()
            if not exchange.over:
                self._expire(exchange)
        self._sweeper = self.loop.call_later(self._sweep_every, self._sweep) if by_age else None

    def _expire(self, exchange: _Exchange) -> None:
        if exchange.connecting is not None:
            exchange.connecting.cancel()
            self._opening.discard(exchange.connecting)
        connection = exchange.connection
        if connection is not None and connection.exchange is exchange:
            connection.exchange = None
            connection.abort()
        limit = self.timeout if exchange.timeout is None else exchange.timeout
        why = f"no complete response within {limit:g}s (connect, headers and body)"
        self._end(exchange, Answer(None, b"", why, 0, 0, timed_out=True))

    def _end(self, exchange: _Exchange, answer: Answer) -> None:
        if exchange.over:
            return
        exchange.over = True
        if exchange.connecting is not None:
            self._opening.discard(exchange.connecting)
        if exchange.timer is not None:
            exchange.timer.cancel()
            self._timed.discard(exchange)
        answer.sent = exchange.sent
        if not answer.finished:
            answer.finished = self.loop.time()
        answer.tag = exchange.tag
        exchange.done(answer)
