"""The load engine's HTTP/1.1 client against raw loopback servers that say exactly what a
test scripts: lengths, chunks, bodies until close, interim answers, stale keep-alive
connections, silence, garbage and TLS — and what it sends, to whom."""

from __future__ import annotations

import errno
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme

from hooks.core import redact
from hooks.core.reactor import Reactor
from hooks.core.target import Target
from hooks.core.wire import STAMPS, Answer, Client, Prepared, prepare
from tests.helpers import closed_port_url, each

#: Answers a request: the bytes to write back (None: close without a word), given the
#: request's number on its connection and its bytes.
Script = Callable[[int, bytes], bytes | None]
#: Ends an answer that the server closes the connection after.
CLOSE = b"<close>"


def ok(body: bytes = b"hello", extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


@contextmanager
def raw_server(script: Script, tls: ssl.SSLContext | None = None) -> Iterator[list[bytes]]:
    """A TCP server on loopback answering each request with ``script``; yields the list of
    requests it read (the port is in ``server.port``)."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []
    connections: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        buffer, number = b"", 0
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                seen.append(head + b"\r\n\r\n" + body)
                number += 1
                answer = script(number, head)
                if answer is None:
                    return
                conn.sendall(answer.removesuffix(CLOSE))
                if answer.endswith(CLOSE):
                    return

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if tls is not None:
                try:
                    conn = tls.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()
                    continue
            connections.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    raw_server.port = listener.getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield seen
    finally:
        listener.close()
        for conn in connections:
            conn.close()


def url(path: str = "/", scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{raw_server.port}{path}"  # type: ignore[attr-defined]


def fetch(
    *requests: Prepared, timeout: float = 5.0, cap: int = 1 << 20
) -> tuple[list[Answer], int]:
    """Send ``requests`` one after the other on one client; the answers and connections."""

    loop = Reactor()
    client = Client(timeout=timeout, max_body_bytes=cap, loop=loop)
    answers: list[Answer] = []

    def done(answer: Answer) -> None:
        answers.append(answer)
        loop.stop()

    try:
        for request in requests:
            client.send(request, done)
            loop.run()
    finally:
        client.close()
        loop.close()
    return answers, client.opened


def get(path: str = "/", method: str = "GET", **target: object) -> Prepared:
    return prepare(Target(url(), **target), method, url(path))  # type: ignore[arg-type]


def test_answers_with_a_length_share_one_connection() -> None:
    with raw_server(lambda n, _: ok(f"answer {n}".encode())) as seen:
        answers, opened = fetch(get("/a"), get("/b"), get("/c"))
    assert [(a.status, a.body, a.error) for a in answers] == [
        (200, b"answer 1", None),
        (200, b"answer 2", None),
        (200, b"answer 3", None),
    ]
    assert opened == 1
    assert [r.split(b"\r\n")[0] for r in seen] == [
        b"GET /a HTTP/1.1",
        b"GET /b HTTP/1.1",
        b"GET /c HTTP/1.1",
    ]
    assert each(a.finished >= a.sent for a in answers)


@pytest.mark.skipif(not STAMPS, reason="the kernel's arrival stamps are Linux's")
def test_a_stamped_answer_ends_when_it_arrived_not_when_it_was_read() -> None:
    """The loop is held a second after the request is written, while the answer comes in
    at once: stamped, the answer's time is its arrival; unstamped, the moment it was read."""
    held = 1.0
    latencies: dict[bool, float] = {}
    with raw_server(lambda n, _: ok()):
        for stamped in (True, False):
            loop = Reactor()
            client = Client(timeout=30, max_body_bytes=1 << 20, loop=loop, stamped=stamped)
            answers: list[Answer] = []

            def done(answer: Answer, answers: list[Answer] = answers, loop: Reactor = loop) -> None:
                answers.append(answer)
                loop.stop()

            try:
                for hold in (False, True):  # the first opens the connection
                    client.send(get("/"), done)  # written at once, on the open connection
                    if hold:
                        time.sleep(held)  # the loop reads nothing meanwhile
                    loop.run()
            finally:
                client.close()
                loop.close()
            answer = answers[-1]
            assert (answer.status, answer.body) == (200, b"hello")
            assert answer.finished >= answer.sent
            latencies[stamped] = answer.finished - answer.sent
    assert latencies[False] >= held
    assert latencies[True] < held, latencies  # the loopback answer takes milliseconds


def test_a_chunked_body_with_extensions_and_trailers_is_put_back_together() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    with raw_server(lambda n, _: chunked):
        answers, opened = fetch(get(), get())
    assert [a.body for a in answers] == [b"hello world", b"hello world"]
    assert opened == 1


def test_a_body_until_close_and_an_interim_answer() -> None:
    def script(n: int, _: bytes) -> bytes:
        interim = b"HTTP/1.1 100 Continue\r\n\r\n"
        return interim + b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it" + CLOSE

    with raw_server(script):
        done = fetch(get(), get())
    # each body ends with its connection: two connections
    assert [a.body for a in done[0]] == [b"all of it", b"all of it"]
    assert done[1] == 2


def test_head_and_no_content_answers_have_no_body_whatever_their_length_says() -> None:
    def script(n: int, head: bytes) -> bytes:
        if head.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
        return b"HTTP/1.1 204 No Content\r\n\r\n"

    with raw_server(script):
        answers, opened = fetch(get(method="HEAD"), get(), get(method="HEAD"))
    assert [(a.status, a.body) for a in answers] == [(200, b""), (204, b""), (200, b"")]
    assert opened == 1


def test_a_body_over_the_cap_fails_the_request_naming_the_cap() -> None:
    with raw_server(lambda n, _: ok(b"x" * 5000)):
        (answer,), _ = fetch(get(), cap=1000)
    assert answer.status is None
    assert answer.error == "a body of 5000 bytes or more is over the cap of 1000 bytes"


def test_a_stale_keep_alive_connection_is_replaced_once() -> None:
    """The server answers once per connection and then closes it without saying so."""

    def script(n: int, _: bytes) -> bytes | None:
        return ok(b"fresh") if n == 1 else None

    with raw_server(script) as seen:
        answers, opened = fetch(get(), get(), get())
    assert [(a.status, a.body) for a in answers] == [(200, b"fresh")] * 3
    assert opened == 3
    assert len(seen) == 5  # two requests met a closed connection and went again


def test_silence_ends_at_the_timeout_with_a_reason() -> None:
    timeout = 0.3
    with raw_server(lambda n, _: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"):
        (answer,), _ = fetch(get(), timeout=timeout)
    assert answer.status is None
    assert answer.error == "no complete response within 0.3s (connect, headers and body)"
    assert timeout <= answer.finished - answer.sent < 3 * timeout + 1


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "malformed response: status line b'SSH-2.0-OpenSSH_9.6'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", "malformed response: invalid"),
        (None, "the server closed the connection before a complete response"),
    ],
)
def test_a_server_that_does_not_speak_http_fails_the_request(
    answer: bytes | None, error: str
) -> None:
    with raw_server(lambda n, _: answer):
        (found,), _ = fetch(get())
    assert found.status is None
    assert found.error is not None
    assert found.error.startswith(error), found.error


def test_a_refused_connection_says_so() -> None:
    target = Target(closed_port_url())
    (answer,), opened = fetch(prepare(target, "GET", target.resolve("/")))
    assert (answer.status, answer.error, opened) == (None, "connection refused", 0)


def test_no_descriptor_left_fails_the_request_at_once_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process out of file descriptors cannot open a socket: the request fails at once
    naming that, not later as a timeout."""
    loop = Reactor()
    client = Client(timeout=30, max_body_bytes=1 << 20, loop=loop)
    answers: list[Answer] = []

    def out_of_descriptors(*args: object, **kwargs: object) -> socket.socket:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    target = Target(closed_port_url())
    request = prepare(target, "GET", target.resolve("/"))
    monkeypatch.setattr(socket, "socket", out_of_descriptors)
    try:
        client.send(request, lambda answer: (answers.append(answer), loop.stop()))
        loop.run()
    finally:
        monkeypatch.undo()
        client.close()
        loop.close()
    (answer,) = answers
    assert (answer.status, answer.error) == (None, "cannot connect: Too many open files")
    assert answer.finished - answer.sent < 10  # not the 30 s timeout


def test_a_fault_in_reading_fails_the_request_at_once_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever goes wrong while a response is read (here a parser that raises what it was
    never meant to) ends that request at once, named, not at its timeout."""
    import hooks.core.wire as wire

    def broken(self: object, head: bytes) -> None:
        raise RuntimeError("parser fault")

    monkeypatch.setattr(wire._Connection, "_head", broken)
    with raw_server(lambda n, _: ok()):
        (answer,), _ = fetch(get(), timeout=30)
    assert (answer.status, answer.error) == (None, "RuntimeError: parser fault")
    assert answer.finished - answer.sent < 10  # not the 30 s timeout


def test_tls_verifies_the_service_s_name_at_an_address(tmp_path: Path) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("shop.example.test").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with raw_server(lambda n, _: ok(b"secure"), tls=context) as seen:
        base = url(scheme="https")
        named = Target(base, host="shop.example.test", ca_bundle=str(bundle))
        unnamed = Target(base, ca_bundle=str(bundle))
        answers, _ = fetch(
            prepare(named, "GET", named.resolve("/")), prepare(unnamed, "GET", unnamed.resolve("/"))
        )
    assert (answers[0].status, answers[0].body) == (200, b"secure")
    assert b"Host: shop.example.test\r\n" in seen[0]
    assert answers[1].status is None
    assert answers[1].error is not None
    assert answers[1].error.startswith("TLS certificate verification failed:")
    assert "set the service's host name with host in the plan" in answers[1].error


def test_tls_bodies_of_many_records_and_large_requests_go_through_whole(tmp_path: Path) -> None:
    """TLS hands a read one record (16 KiB) and keeps the rest inside, where the selector
    cannot see it; a large request body may not fit the socket at once. Both arrive whole,
    twice on one connection."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    body = bytes(range(256)) * 4096  # 1 MiB, 64 records
    upload = b"u" * (4 << 20)  # more than a socket's send buffer
    with raw_server(lambda n, request: ok(body), tls=context) as seen:
        target = Target(url(scheme="https"), ca_bundle=str(bundle))
        post = prepare(target, "POST", target.resolve("/up"), body=upload)
        answers, opened = fetch(post, post, cap=2 << 20)
    assert [(a.status, a.body == body) for a in answers] == [(200, True)] * 2
    assert opened == 1
    assert [len(r) - r.index(b"\r\n\r\n") - 4 for r in seen] == [len(upload)] * 2


def test_an_answer_before_the_whole_body_was_written_retires_its_connection() -> None:
    """A server may answer (413, 401) before it has read a large body, and read the rest
    later; what the client had left to write must never follow the next request on that
    connection: the next request goes on a new one. The server here answers at once, reads
    nothing until a second connection comes (or 5 s: the body is larger than both sockets'
    buffers, so the client still holds some of it), then reads the body to its length and
    serves on."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    heads: list[bytes] = []
    size = 32 << 20
    second = threading.Event()

    def serve() -> None:
        accepted = 0
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted += 1
            if accepted == 2:
                second.set()
            threading.Thread(target=answer_early, args=(conn,), daemon=True).start()

    def answer_early(conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                heads.append(head)
                if not head.startswith(b"POST"):
                    conn.sendall(ok(b"fresh"))
                    continue
                conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
                second.wait(5)
                left = size - len(buffer)
                while left > 0:
                    data = conn.recv(min(left, 1 << 20))
                    if not data:
                        return
                    left -= len(data)
                buffer = b"" if left == 0 else buffer[size:]

    threading.Thread(target=serve, daemon=True).start()
    try:
        target = Target(f"http://127.0.0.1:{port}")
        post = prepare(target, "POST", target.resolve("/up"), body=b"u" * size)
        answers, opened = fetch(post, prepare(target, "GET", target.resolve("/")), timeout=5)
    finally:
        listener.close()
    outcome = [(a.status, a.body) for a in answers]
    assert outcome == [(413, b""), (200, b"fresh")], [a.error for a in answers]
    assert opened == 2
    assert [h.split(b" ")[0] for h in heads] == [b"POST", b"GET"]


def test_a_host_name_is_resolved_off_the_loop_and_one_that_does_not_resolve_says_so() -> None:
    with raw_server(lambda n, _: ok(b"named")):
        port = raw_server.port  # type: ignore[attr-defined]
        named = Target(f"http://localhost:{port}")
        missing = Target(f"http://no-such-host.invalid:{port}")
        answers, opened = fetch(
            prepare(named, "GET", named.resolve("/")), prepare(missing, "GET", missing.resolve("/"))
        )
    assert (answers[0].status, answers[0].body, opened) == (200, b"named", 1)
    assert answers[1].status is None
    assert answers[1].error is not None
    assert answers[1].error.startswith("cannot resolve the host name:"), answers[1].error


def test_connections_opened_at_once_to_one_name_share_one_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A load against a stalled service opens a connection per request due: they wait on
    one lookup of the name, never a thread each (Lambda allows 1,024 threads)."""
    lookups: list[str] = []
    real = socket.getaddrinfo

    def counted(host: str, *args: object, **kwargs: object) -> object:
        lookups.append(host)
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", counted)
    with raw_server(lambda n, _: ok(b"named")):
        port = raw_server.port  # type: ignore[attr-defined]
        named = Target(f"http://localhost:{port}")
        missing = Target(f"http://no-such-host.invalid:{port}")
        loop = Reactor()
        client = Client(timeout=5, max_body_bytes=1 << 20, loop=loop)
        answers: list[Answer] = []

        def done(answer: Answer) -> None:
            answers.append(answer)
            if len(answers) == 25:
                loop.stop()

        try:
            for _ in range(20):
                client.send(prepare(named, "GET", named.resolve("/")), done)
            for _ in range(5):
                client.send(prepare(missing, "GET", missing.resolve("/")), done)
            loop.run()
        finally:
            client.close()
            loop.close()
    assert sorted(lookups) == ["localhost", "no-such-host.invalid"]
    assert sorted((a.status or 0, a.body) for a in answers)[5:] == [(200, b"named")] * 20
    failed = [a.error or "" for a in answers if a.status is None]
    assert len(failed) == 5
    assert all(e.startswith("cannot resolve the host name:") for e in each(failed)), failed
    assert client.opened == 20


def test_plan_headers_and_the_host_name_go_to_the_target_only() -> None:
    with raw_server(lambda n, _: ok()):
        base = url()
        target = Target(base, host="shop.example.test", headers={"X-Env": "green"})
        own = prepare(target, "POST", target.resolve("/orders"), json_body={"sku": "tea"})
        elsewhere = prepare(target, "GET", "http://other.example.test/")
    assert own.data.startswith(b"POST /orders HTTP/1.1\r\nHost: shop.example.test\r\n")
    assert b"X-Env: green\r\n" in own.data
    assert own.data.endswith(b'Content-Length: 14\r\n\r\n{"sku": "tea"}')
    assert b"Content-Type: application/json\r\n" in own.data
    assert elsewhere.data.startswith(b"GET / HTTP/1.1\r\nHost: other.example.test\r\n")
    assert b"X-Env" not in elsewhere.data
    assert elsewhere.endpoint.host == "other.example.test"


def test_a_bound_credential_is_never_prepared_for_another_origin() -> None:
    redact.bind("s3cr3t-token-value")
    try:
        target = Target("http://127.0.0.1:9")
        with pytest.raises(ValueError, match=r"not sent: the request to http://evil.test:80"):
            prepare(
                target,
                "GET",
                "http://evil.test/",
                headers={"Authorization": "Bearer s3cr3t-token-value"},
            )
        allowed = prepare(
            target,
            "GET",
            "http://evil.test/",
            headers={"Authorization": "Bearer s3cr3t-token-value"},
            secret_origins=["http://evil.test"],
        )
        assert b"Bearer s3cr3t-token-value" in allowed.data
    finally:
        redact.reset()


def test_a_header_that_would_split_the_request_is_refused() -> None:
    target = Target("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="holds a line break"):
        prepare(target, "GET", target.resolve("/"), headers={"X-A": "a\r\nX-Injected: 1"})
