"""Redaction: every form a registered secret takes on its way out is masked, in headers,
URLs and bodies. Each case fails if the one line of ``hooks/core/redact.py`` that makes its form
is taken away."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest

from hooks.core import redact

#: Characters that each encoding changes in its own way: space, slash, quote, backslash, &, =.
SECRET = 'p@ss w/"q\\uote&=k3y'


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    redact.reset()
    yield
    redact.reset()


@pytest.mark.parametrize(
    ("form", "encoded"),
    [
        ("raw", SECRET),
        ("percent-encoded (a URL path or query)", quote(SECRET, safe="")),
        ("form-encoded (spaces as +)", quote_plus(SECRET)),
        ("JSON-escaped (a JSON body)", json.dumps(SECRET)[1:-1]),
        ("repr (a Python message)", repr(SECRET)[1:-1]),
        ("raw, registered with its trailing newline", SECRET.strip()),
    ],
)
def test_each_encoded_form_of_a_registered_secret_is_masked(form: str, encoded: str) -> None:
    """Each form differs from every other (see SECRET), so each needs its own line."""
    redact.register(SECRET + "\n" if "newline" in form else SECRET)
    text = f"before {encoded} after"
    assert redact.redact(text) == "before *** after", form


def test_a_secret_read_with_a_trailing_newline_is_masked_without_it() -> None:
    redact.register("p4ssw0rd-value\n")  # as a file or a parameter often holds it
    assert redact.redact("the value p4ssw0rd-value.") == "the value ***."


def test_the_longest_secret_is_masked_whole() -> None:
    redact.register("abcdef12", "abcdef12345678")
    assert redact.redact("x abcdef12345678 y abcdef12 z") == "x *** y *** z"


def test_basic_auth_is_masked_encoded_decoded_and_as_its_password() -> None:
    encoded = base64.b64encode(b"deploy-bot:correct-horse").decode()
    redact.register_headers({"Authorization": f"Basic {encoded}"})
    echoed = (
        f'{{"auth": "Basic {encoded}", "raw": "{encoded}", "user": "deploy-bot:correct-horse"}}'
    )
    out = redact.redact(echoed)
    assert encoded not in out
    assert "correct-horse" not in out
    assert redact.redact("password correct-horse leaked") == "password *** leaked"


def test_a_malformed_basic_credential_still_masks_its_value() -> None:
    redact.register_headers({"Authorization": "Basic not-base64!!"})
    assert redact.redact("got Basic not-base64!!") == "got ***"  # the header value whole
    assert redact.redact("echoed not-base64!! alone") == "echoed *** alone"


def test_bearer_tokens_cookies_and_marked_headers_are_masked_on_their_own() -> None:
    redact.register_headers(
        {
            "Authorization": "Bearer eyJhbGciOi.abc",
            "Cookie": "session=9f8e7d6c5b; theme=dark",
            "X-Shop-Key": "shop-key-123456",
            "Accept": "application/json",
        },
        secret=["x-shop-key"],
    )
    out = redact.redact("eyJhbGciOi.abc 9f8e7d6c5b shop-key-123456 application/json dark")
    assert out == "*** *** *** application/json dark"  # short cookie values stay: too common


def test_data_in_headers_urls_and_bodies_is_masked_keys_included() -> None:
    redact.register(SECRET)
    data = {
        "request": f"GET https://h.example/?t={quote(SECRET, safe='')}",
        "headers": {"X-Token": SECRET, SECRET: "as a key"},
        "body": [json.dumps({"echo": SECRET}), 3, None],
    }
    assert redact.redact_data(data) == {
        "request": "GET https://h.example/?t=***",
        "headers": {"X-Token": "***", "***": "as a key"},
        "body": ['{"echo": "***"}', 3, None],
    }


def test_nothing_registered_changes_nothing_and_reset_forgets() -> None:
    assert redact.redact(SECRET) == SECRET
    redact.register(SECRET, None)
    assert redact.redact(SECRET) == "***"
    assert SECRET in redact.secrets()
    redact.reset()
    assert redact.redact(SECRET) == SECRET
    assert redact.secrets() == []
