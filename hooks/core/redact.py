"""Secrets never leave: values registered here are replaced in every text that goes out.

Registered are the values of ``${env:...}`` references, of credential-bearing headers
(``Authorization``, ``Cookie``, ``X-Api-Key``, ... and any header a suite marks secret) and
of the plan's headers. Values of secret references and of the plan's headers are also
*bound* to the target's origins (:func:`bind`): :mod:`hooks.core.http` refuses to send one
anywhere else. Every message, log line, report and record passes through
:func:`redact` on its way out; each value is also replaced in the forms it takes in URLs
and quoted text (percent-encoded, JSON-escaped, without surrounding white space).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "CREDENTIAL_HEADERS",
    "MASK",
    "MIN_BOUND_LENGTH",
    "bind",
    "carried",
    "credential_parts",
    "redact",
    "redact_data",
    "register",
    "register_headers",
    "reset",
    "secrets",
]

MASK = "***"
#: Headers whose values are credentials, whatever a suite says.
CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-amz-security-token",
        "x-csrf-token",
    }
)

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None
#: Values registered so far as given (their forms are in _values): a request registers its
#: headers each time, and a value seen before costs a lookup, not its encodings.
_given: set[str] = set()
#: Credentials bound to the target's origins: values of secret references and of the
#: plan's headers. A request to any other origin must not carry one (:func:`carried`).
_bound: set[str] = set()
#: Shorter values are not looked for in a request (too likely to occur by chance).
MIN_BOUND_LENGTH = 4


def _forms(value: str) -> set[str]:
    forms = {value, value.strip()}
    for form in list(forms):
        forms |= {quote(form, safe=""), quote_plus(form), json.dumps(form)[1:-1]}
        forms.add(repr(form)[1:-1])
    return {f for f in forms if f}


def register(*values: Any) -> None:
    """Treat each value (and its encoded forms) as a secret from now on."""
    global _pattern
    added = False
    with _lock:
        for value in values:
            if value is None:
                continue
            text = str(value)
            if text in _given:
                continue
            _given.add(text)
            for form in _forms(text):
                if form not in _values:
                    _values.add(form)
                    added = True
        if added:
            # Longest first, so a secret that contains another is masked whole.
            alternatives = sorted(_values, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(v) for v in alternatives))


def bind(*values: Any) -> None:
    """Register each value as a secret, and as a credential for the target's origins only."""
    register(*values)
    with _lock:
        _bound.update(str(v) for v in values if v is not None and len(str(v)) >= MIN_BOUND_LENGTH)


def carried(*texts: str) -> bool:
    """Whether any of ``texts`` holds a bound credential, in any of its encoded forms."""
    with _lock:
        bound = list(_bound)
    forms = {form for value in bound for form in _forms(value) if len(form) >= MIN_BOUND_LENGTH}
    return any(form in text for text in texts if text for form in forms)


def register_headers(headers: Mapping[str, Any] | None, secret: Iterable[str] = ()) -> None:
    """Register the values of credential-bearing headers and of those named in ``secret``."""
    if not headers:
        return
    marked = {name.lower() for name in secret}
    values = [
        str(value)
        for name, value in headers.items()
        if name.lower() in CREDENTIAL_HEADERS or name.lower() in marked
    ]
    register(*values, *(part for value in values for part in credential_parts(value)))


#: Shorter parts are not registered on their own (they would mask ordinary text).
_MIN_PART = 6


def credential_parts(value: str) -> list[str]:
    """The secret parts of a header value, which a response may echo on their own: the
    credentials after an auth scheme (``Bearer <token>``, ``Basic <b64>``), a Basic
    credential decoded (``user:password``, and the password), and each cookie's value
    (``a=<v1>; b=<v2>``)."""
    parts: list[str] = []
    scheme = re.fullmatch(r"\s*([A-Za-z][\w.-]*)\s+(\S.*?)\s*", value)
    if scheme:
        parts.append(scheme.group(2))
        if scheme.group(1).lower() == "basic":
            parts += _basic(scheme.group(2))
    for cookie in value.split(";"):
        name, sep, rest = cookie.partition("=")
        if sep and name.strip() and rest.strip():
            parts.append(rest.strip())
    return [part for part in parts if len(part) >= _MIN_PART]


def _basic(encoded: str) -> list[str]:
    """``user:password`` and the password, from a Basic credential (nothing if malformed)."""
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return []
    _, sep, password = decoded.partition(":")
    return [decoded, password] if sep else [decoded]


def secrets() -> list[str]:
    with _lock:
        return sorted(_values)


def reset() -> None:
    """Forget every secret (a new invocation in a warm container; tests)."""
    global _pattern
    with _lock:
        _values.clear()
        _given.clear()
        _bound.clear()
        _pattern = None


def redact(text: str) -> str:
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def redact_data(data: Any) -> Any:
    """``data`` (JSON-like) with every string redacted, keys included."""
    if _pattern is None:
        return data
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, Mapping):
        return {redact(str(k)): redact_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(item) for item in data]
    return data
