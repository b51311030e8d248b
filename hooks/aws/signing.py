"""State that leaves the deciding process comes back signed, or not at all.

What Greenlight carries across an invocation boundary — an ECS gate's progress in
``hookDetails``, a Step Functions shard's results in the evidence bucket — is sealed here:
an HMAC-SHA256 over a purpose, the binding (the deployment, the hook execution, the stage
or shard, the plan's digest) and the content, with a key the stack owns (a Secrets
Manager secret the template generates, ``GREENLIGHT_SIGNING_KEY``). What comes back is
opened only if the signature holds and the binding is the reader's own; anything else
raises :class:`SealError`, and the reader discards it (runs the work again, or fails),
never half-uses it — as Django's and itsdangerous's signing do.

On a laptop (no key set outside Lambda) the key is this process's own random one: the
command line runs a continuation or a state machine's shards in one process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets as token
from collections.abc import Mapping
from functools import cache
from typing import Any

from hooks.aws import secrets
from hooks.core.exceptions import ConfigError, SealError

__all__ = ["SealError", "digest", "key_from_env", "open_sealed", "seal"]

VERSION = 1
KEY_VARIABLE = "GREENLIGHT_SIGNING_KEY"


def digest(data: Any) -> str:
    """A short, stable digest of JSON-like data (the plan a gate or an execution runs)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _mac(key: bytes, purpose: str, binding: Mapping[str, Any], content: Any) -> str:
    message = json.dumps(
        {"v": VERSION, "purpose": purpose, "binding": binding, "content": content},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def seal(key: bytes, purpose: str, binding: Mapping[str, Any], content: Any) -> dict[str, Any]:
    """``content`` with its binding and signature, as JSON-like data."""
    return {
        "v": VERSION,
        "binding": dict(binding),
        "content": content,
        "sig": _mac(key, purpose, binding, content),
    }


def open_sealed(key: bytes, purpose: str, binding: Mapping[str, Any], sealed: Any) -> Any:
    """The content of ``sealed`` if it is signed with ``key`` for ``purpose`` and bound to
    ``binding`` exactly; :class:`SealError` naming what is wrong otherwise."""
    if not isinstance(sealed, Mapping) or not isinstance(sealed.get("sig"), str):
        raise SealError("it is not signed")
    if sealed.get("v") != VERSION:
        raise SealError(f"unknown version {sealed.get('v')!r}")
    theirs = sealed.get("binding")
    if not isinstance(theirs, Mapping):
        raise SealError("it names no binding")
    expected = _mac(key, purpose, theirs, sealed.get("content"))
    if not hmac.compare_digest(expected, str(sealed["sig"])):
        raise SealError("its signature does not verify (altered, or signed with another key)")
    for name, value in binding.items():
        if theirs.get(name) != value:
            raise SealError(f"it belongs to another {name} ({theirs.get(name)!r}, not {value!r})")
    return sealed.get("content")


def key_from_env(env: Mapping[str, str] | None = None) -> bytes:
    """The stack's signing key: ``GREENLIGHT_SIGNING_KEY`` names a Secrets Manager secret
    (``secret:NAME`` or its ARN), fetched once per process; a laptop run without one gets
    this process's own key. In Lambda a missing key is a configuration error."""
    env = os.environ if env is None else env
    name = (env.get(KEY_VARIABLE) or "").strip()
    if not name:
        if env.get("AWS_LAMBDA_FUNCTION_NAME"):
            raise ConfigError(
                f"{KEY_VARIABLE} is not set: carried state cannot be signed or verified "
                "(the stack sets it to its signing secret)"
            )
        return _process_key()
    return _fetched(name if name.startswith(("secret:", "ssm:")) else f"secret:{name}")


@cache
def _process_key() -> bytes:
    return token.token_bytes(32)


@cache
def _fetched(reference: str) -> bytes:

    value = secrets.fetch(reference, age=0)
    if len(value) < 32:
        raise ConfigError(f"the signing key {reference} is shorter than 32 characters")
    return value.encode()
