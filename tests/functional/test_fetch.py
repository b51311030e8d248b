"""The checks' requests on the engine (:mod:`hooks.core.fetch`) and through the ``requests``
session, against loopback servers: redirects and what crosses origins, bodies under the cap
(decompressed), text and headers, time limits, proxies and netrc — the same rules for both."""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from hooks.core import redact
from hooks.core.deadline import Deadline
from hooks.core.fetch import Fetcher, FetchError, Reply
from hooks.core.http import describe_error, make_session
from hooks.core.target import Target
from tests.helpers import closed_port_url, http_server, silent_server

Seen = list[tuple[str, str, dict[str, str], bytes]]


def recorder(
    answers: dict[str, tuple[int, dict[str, str], bytes]],
) -> tuple[Seen, Any]:
    """A handler answering ``path -> (status, headers, body)``; it records what it got."""
    seen: Seen = []
    lock = threading.Lock()

    def handle(handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with lock:
            seen.append((handler.command, handler.path, dict(handler.headers.items()), body))
        status, headers, data = answers.get(handler.path, (404, {}, b"no such path"))
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    return seen, handle


class SessionClient:
    """The same calls through the checks' ``requests`` session (pytest and OpenAPI suites
    send with it, and the engine hands it what a proxy or netrc applies to): both keep the
    same rules, so every test here runs against each."""

    def __init__(self, target: Target, **kwargs: Any) -> None:
        self.session = make_session(target, **kwargs)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        json: Any = None,
        body: str | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
        max_body_bytes: int | None = None,
    ) -> Reply:
        try:
            raw = self.session.request(
                method,
                url,
                params=query,
                headers=headers,
                json=json,
                data=body,
                timeout=timeout,
                allow_redirects=allow_redirects,
                max_body_bytes=max_body_bytes,
            )
        except Exception as exc:
            raise FetchError(describe_error(exc)) from exc
        history = tuple(Reply(r.status_code, r.headers, r.content, r.url) for r in raw.history)
        return Reply(raw.status_code, raw.headers, raw.content, raw.url, history)

    def close(self) -> None:
        self.session.close()


@pytest.fixture(params=["engine", "session"])
def fetcher_for(request: pytest.FixtureRequest) -> Iterator[Any]:
    made: list[Any] = []
    client = Fetcher if request.param == "engine" else SessionClient

    def make(target: Target, **kwargs: Any) -> Any:
        made.append(client(target, **kwargs))
        return made[-1]

    yield make
    for fetcher in made:
        fetcher.close()


def test_a_redirect_is_followed_only_when_asked_and_303_becomes_a_get(fetcher_for: Any) -> None:
    seen, handle = recorder(
        {
            "/old": (302, {"Location": "/new"}, b""),
            "/form": (303, {"Location": "/done"}, b""),
            "/new": (200, {}, b"new"),
            "/done": (200, {}, b"done"),
        }
    )
    with http_server(handle) as url:
        fetcher = fetcher_for(Target(url))
        kept = fetcher.request("GET", f"{url}/old")
        followed = fetcher.request("GET", f"{url}/old", allow_redirects=True)
        posted = fetcher.request("POST", f"{url}/form", body="a=1", allow_redirects=True)
    assert (kept.status_code, kept.headers["location"]) == (302, "/new")
    assert (followed.status_code, followed.text, followed.url) == (200, "new", f"{url}/new")
    assert [r.status_code for r in followed.history] == [302]
    assert posted.text == "done"
    assert [(m, p, b) for m, p, _, b in seen[-2:]] == [
        ("POST", "/form", b"a=1"),
        ("GET", "/done", b""),
    ]


def test_a_307_keeps_the_method_and_the_body(fetcher_for: Any) -> None:
    seen, handle = recorder({"/a": (307, {"Location": "/b"}, b""), "/b": (201, {}, b"made")})
    with http_server(handle) as url:
        reply = fetcher_for(Target(url)).request(
            "POST", f"{url}/a", json={"n": 1}, allow_redirects=True
        )
    assert reply.status_code == 201
    assert [(m, p, b) for m, p, _, b in seen] == [
        ("POST", "/a", b'{"n": 1}'),
        ("POST", "/b", b'{"n": 1}'),
    ]


def test_a_redirect_to_another_origin_carries_no_credential_nor_the_plans_headers(
    fetcher_for: Any,
) -> None:
    there_seen, there = recorder({"/landing": (200, {}, b"there")})
    with http_server(there, "127.0.0.2") as other:
        here_seen, here = recorder({"/go": (302, {"Location": f"{other}/landing"}, b"")})
        with http_server(here) as url:
            target = Target(url, headers={"X-Api-Key": "plan-key-7"})
            reply = fetcher_for(target).request(
                "GET",
                f"{url}/go",
                headers={
                    "Authorization": "Basic dXNlcjpwdw==",
                    "X-Custom": "1",
                    "Accept": "text/plain",
                },
                allow_redirects=True,
            )
    assert reply.text == "there"
    first, second = here_seen[0][2], there_seen[0][2]
    assert (first["Authorization"], first["X-Custom"], first["X-Api-Key"]) == (
        "Basic dXNlcjpwdw==",
        "1",
        "plan-key-7",
    )
    assert not {"Authorization", "X-Custom", "X-Api-Key"} & set(second)
    assert second["Accept"] == "text/plain"
    assert second["User-Agent"].startswith("greenlight/")
    assert second["Host"] == other.removeprefix("http://")


def test_too_many_redirects_is_an_error_naming_the_limit(fetcher_for: Any) -> None:
    _, handle = recorder({"/loop": (302, {"Location": "/loop"}, b"")})
    with http_server(handle) as url, pytest.raises(FetchError, match="more than 10 redirects"):
        fetcher_for(Target(url)).request("GET", f"{url}/loop", allow_redirects=True)


def test_a_request_elsewhere_carrying_a_bound_secret_is_not_sent(fetcher_for: Any) -> None:
    seen, handle = recorder({"/": (200, {}, b"")})
    with http_server(handle, "127.0.0.2") as other:
        target = Target("http://127.0.0.1:9", headers={"X-Api-Key": "key-31337-abc"})
        fetcher = fetcher_for(target)
        with pytest.raises(FetchError, match="would carry a secret"):
            fetcher.request("GET", f"{other}/", headers={"X-Token": "key-31337-abc"})
        allowed = fetcher_for(target, secret_origins=[other])
        assert (
            allowed.request("GET", f"{other}/", headers={"X-Token": "key-31337-abc"}).status_code
            == 200
        )
    assert len(seen) == 1
    redact.reset()


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
    ],
)
def test_compressed_bodies_are_read_decompressed(
    fetcher_for: Any, encoding: str, pack: Any
) -> None:
    text = "[" + ", ".join(['{"greeting": "héllo"}'] * 50) + "]"
    _, handle = recorder(
        {
            "/": (
                200,
                {"Content-Encoding": encoding, "Content-Type": "application/json"},
                pack(text.encode()),
            )
        }
    )
    with http_server(handle) as url:
        reply = fetcher_for(Target(url)).request("GET", f"{url}/")
    assert reply.text == text
    assert reply.json() == [{"greeting": "héllo"}] * 50


def test_a_body_over_the_cap_fails_decompressed_or_not(fetcher_for: Any) -> None:
    bomb = gzip.compress(b"0" * (1 << 20))  # 1 MiB from about 1 KiB
    _, handle = recorder(
        {
            "/bomb": (200, {"Content-Encoding": "gzip"}, bomb),
            "/big": (200, {}, b"x" * 5000),
            "/fits": (200, {}, b"x" * 4096),
        }
    )
    with http_server(handle) as url:
        fetcher = fetcher_for(Target(url), max_body_bytes=4096)
        assert len(bomb) < 4096
        for path in ("/bomb", "/big"):
            with pytest.raises(FetchError) as caught:
                fetcher.request("GET", f"{url}{path}")
            assert str(caught.value) == (
                "response body larger than the 4 KiB cap "
                "(max_body_bytes; GREENLIGHT_MAX_BODY_BYTES)"
            )
        assert len(fetcher.request("GET", f"{url}/fits").content) == 4096
        # A request's own cap wins over the fetcher's.
        assert len(fetcher.request("GET", f"{url}/big", max_body_bytes=8192).content) == 5000


def test_text_follows_the_charset_and_repeated_headers_are_joined(fetcher_for: Any) -> None:
    def handle(handler: BaseHTTPRequestHandler) -> None:
        data = "café".encode("latin-1") if handler.path == "/latin" else "café".encode()
        handler.send_response(200)
        if handler.path == "/latin":
            handler.send_header("Content-Type", "text/plain; charset=ISO-8859-1")
        handler.send_header("X-Multi", "a")
        handler.send_header("x-multi", "b")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    with http_server(handle) as url:
        fetcher = fetcher_for(Target(url))
        latin, plain = fetcher.request("GET", f"{url}/latin"), fetcher.request("GET", f"{url}/")
    assert (latin.text, plain.text) == ("café", "café")
    assert latin.headers["x-MULTI"] == "a, b"
    assert "X-Multi" in list(latin.headers)


def test_a_host_header_given_is_sent_as_given(fetcher_for: Any) -> None:
    seen, handle = recorder({"/": (200, {}, b"")})
    with http_server(handle) as url:
        fetcher_for(Target(url, host="svc.internal")).request(
            "GET", f"{url}/", headers={"Host": "other.example"}
        )
        fetcher_for(Target(url, host="svc.internal")).request("GET", f"{url}/")
    assert [s[2]["Host"] for s in seen] == ["other.example", "svc.internal"]


def test_silence_ends_at_the_timeout_and_the_deadline_shortens_it(fetcher_for: Any) -> None:
    with silent_server() as url:
        fetcher = fetcher_for(Target(url), timeout=0.3)
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"^no complete response within 0.3s \(connect"):
            fetcher.request("GET", f"{url}/")
        own = time.monotonic() - started
        near = fetcher_for(Target(url), deadline=Deadline.in_seconds(0.4), timeout=30)
        with pytest.raises(FetchError, match=r"no complete response within 0.[34]\d*s"):
            near.request("GET", f"{url}/")
        clamped = time.monotonic() - started - own
    # The engine's timer ended them, not a waiting check's last resort (timeout + 5 s).
    assert own < 5
    assert clamped < 5


def test_a_refused_connection_names_it(fetcher_for: Any) -> None:
    url = closed_port_url()
    with pytest.raises(FetchError, match=r"^connection refused"):
        fetcher_for(Target(url)).request("GET", f"{url}/")


def test_proxies_and_netrc_are_honoured(
    fetcher_for: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A proxy variable sends the request through the proxy, unless ``NO_PROXY`` names the
    host; a ``.netrc`` entry for the host gives it its credentials."""
    proxied: list[str] = []

    def proxy(handler: BaseHTTPRequestHandler) -> None:
        proxied.append(handler.path)  # absolute-form: the proxy is asked for the whole URL
        handler.send_response(200)
        handler.send_header("Content-Length", "9")
        handler.end_headers()
        handler.wfile.write(b"via proxy")

    seen, handle = recorder({"/": (200, {}, b"direct")})
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with http_server(proxy, "127.0.0.2") as proxy_url, http_server(handle) as url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        assert fetcher_for(Target(url)).request("GET", f"{url}/").text == "via proxy"
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert fetcher_for(Target(url)).request("GET", f"{url}/").text == "direct"
        monkeypatch.delenv("HTTP_PROXY")
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login ops password s3cret\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        assert fetcher_for(Target(url)).request("GET", f"{url}/").text == "direct"
    assert proxied == [f"{url}/"]
    assert "Authorization" not in seen[0][2]
    assert seen[1][2]["Authorization"] == "Basic b3BzOnMzY3JldA=="
    redact.reset()


def test_a_path_with_spaces_or_non_ascii_is_sent_percent_encoded(fetcher_for: Any) -> None:
    seen, handle = recorder({})
    with http_server(handle) as url:
        fetcher = fetcher_for(Target(url))
        fetcher.request(
            "GET",
            f"{url}/caf\u00e9 menu?q=cr\u00e8me br\u00fbl\u00e9e&x=%2F",
            query={"n": "\u00e9 1"},
        )
        fetcher.request("GET", f"{url}/already%20encoded#fragment")
    assert [s[1] for s in seen] == [
        "/caf%C3%A9%20menu?q=cr%C3%A8me%20br%C3%BBl%C3%A9e&x=%2F&n=%C3%A9+1",
        "/already%20encoded",
    ]


def test_requests_share_keep_alive_connections_until_closed() -> None:
    ports: list[int] = []

    def handle(handler: BaseHTTPRequestHandler) -> None:
        ports.append(handler.client_address[1])
        handler.send_response(204)
        handler.end_headers()

    with http_server(handle) as url:
        fetcher = Fetcher(Target(url))
        for _ in range(3):
            assert fetcher.request("GET", f"{url}/").status_code == 204
        fetcher.close()
        other = Fetcher(Target(url))
        assert other.request("GET", f"{url}/").status_code == 204
        other.close()
    assert len(set(ports[:3])) == 1  # one connection for the three
    assert ports[3] != ports[0]  # a new fetcher, a new connection


def test_cookies_the_target_sets_go_back_to_it_and_nowhere_else(fetcher_for: Any) -> None:
    """A login that sets a cookie (here on a redirect, as most do) opens the pages that ask
    for it, as in a browser; a check that sets ``Cookie`` itself sends its own."""
    other_seen, other = recorder({"/": (200, {}, b"")})

    def site(handler: BaseHTTPRequestHandler) -> None:
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        cookie = handler.headers.get("Cookie")
        if handler.path == "/login":
            status, headers, body = (
                302,
                {"Set-Cookie": "sid=abc123; Path=/; HttpOnly", "Location": "/home"},
                b"",
            )
        elif handler.path == "/prefs":
            status, headers, body = 200, {"Set-Cookie": "theme=dark; Path=/prefs"}, b""
        else:
            status, headers, body = (200, {}, cookie.encode()) if cookie else (401, {}, b"")
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with http_server(site) as url, http_server(other, "127.0.0.2") as elsewhere:
        fetcher = fetcher_for(Target(url), secret_origins=[elsewhere])
        assert fetcher.request("GET", f"{url}/me").status_code == 401
        home = fetcher.request("POST", f"{url}/login", body="u=a", allow_redirects=True)
        assert (home.status_code, home.text) == (200, "sid=abc123")
        fetcher.request("GET", f"{url}/prefs")
        assert fetcher.request("GET", f"{url}/me").text == "sid=abc123"  # theme: /prefs only
        assert (
            fetcher.request("GET", f"{url}/me", headers={"Cookie": "sid=mine"}).text == "sid=mine"
        )
        fetcher.request("GET", f"{elsewhere}/")
    assert "Cookie" not in other_seen[0][2]
