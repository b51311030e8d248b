"""What Greenlight's HTTP clients share — the checks' session (:mod:`hooks.core.http`) and
the load engine (:mod:`hooks.core.wire`): the body cap, and the words for a credential that
would leave the target and for a certificate that does not match. Light enough for any
import path (neither client's libraries load with it)."""

from __future__ import annotations

__all__ = [
    "CERT_HINT",
    "CROSS_ORIGIN_SAFE",
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_REDIRECTS",
    "CappedBody",
    "OverCapError",
    "credential_refusal",
    "decoder",
    "redirected_method",
    "size_text",
    "too_large",
]

import zlib
from typing import Any

#: Most redirects a request follows.
MAX_REDIRECTS = 10
#: Headers kept on a redirect to another origin; every other one is dropped.
CROSS_ORIGIN_SAFE = frozenset({"user-agent", "accept", "accept-language", "accept-encoding"})
#: Largest response body read by default (decompressed, where a client decompresses).
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
#: What to set when a certificate does not match: the service's name, or a CA bundle.
CERT_HINT = (
    " (set the service's host name with host in the plan, the greenlight:host tag or "
    "GREENLIGHT_TARGET_HOST, or a CA bundle with tls.ca_bundle / GREENLIGHT_CA_BUNDLE)"
)


def credential_refusal(destination: str) -> str:
    """Why a request to ``destination`` was not sent: it would carry a bound credential."""
    return (
        f"not sent: the request to {destination} would carry a secret or a plan header "
        f"value, and {destination} is not the target; a suite that must send credentials "
        f"there names it (secrets_to: [{destination}])"
    )


def too_large(cap: int) -> str:
    """Why a response was refused: its body (decompressed) is over ``cap`` bytes."""
    return (
        f"response body larger than the {size_text(cap)} cap (max_body_bytes; "
        f"GREENLIGHT_MAX_BODY_BYTES)"
    )


def size_text(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def redirected_method(method: str, status: int) -> tuple[str, bool]:
    """The method of the next hop, and whether the body goes with it (RFC 9110: 303, and
    301/302 after POST, become a GET without a body)."""
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        return "GET", False
    return method, True


class OverCapError(ValueError):
    """A body over the cap (decompressed); the message names the cap and how to raise it."""


class CappedBody:
    """A response body kept up to ``cap`` bytes after its ``Content-Encoding`` is undone:
    :meth:`feed` raises :class:`OverCapError` as soon as it would hold more (a small
    compressed body cannot make the client allocate a large one), and ``zlib.error`` for a
    body that is not what its encoding says."""

    def __init__(self, encoding: str, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self._decoder = decoder(encoding)

    def feed(self, chunk: bytes) -> None:
        if self._decoder is None:
            self.data += chunk
        else:
            while chunk:
                self.data += self._decoder.decompress(chunk, self.cap + 1 - len(self.data))
                if len(self.data) > self.cap:
                    break
                chunk = self._decoder.unconsumed_tail
        if len(self.data) > self.cap:
            raise OverCapError(too_large(self.cap))


def decoder(encoding: str) -> Any:
    """A decompressor for a ``Content-Encoding`` read under the cap (``decompress(data,
    max_length)`` and ``unconsumed_tail``), or None for an identity body."""
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _DeflateDecoder()
    return None


class _DeflateDecoder:
    """``deflate`` as servers send it: zlib-wrapped, or (wrongly) raw."""

    def __init__(self) -> None:
        self._inner: Any = None

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            raw = not data or (data[0] & 0x0F) != 8
            self._inner = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        out: bytes = self._inner.decompress(data, max_length)
        return out

    @property
    def unconsumed_tail(self) -> bytes:
        return self._inner.unconsumed_tail if self._inner is not None else b""
