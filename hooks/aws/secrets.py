"""Secrets by reference: ``${secret:NAME}``, ``${secret:NAME#json_key}``, ``${ssm:/path}``.

A suite (YAML or pytest), or the plan's headers, name a secret instead of holding it:

- ``secret:NAME`` — the Secrets Manager secret's string (NAME or its ARN);
- ``secret:NAME#key`` — one key of a secret that holds JSON;
- ``ssm:/path`` — a Parameter Store parameter, SecureString decrypted.

Values are fetched with Powertools Parameters in the hook's own process, which lives across
warm invocations, so each is fetched once per ``GREENLIGHT_SECRETS_MAX_AGE`` seconds (300 by
default; 0 fetches every time), not once per run. Before the suites run, the supervisor
finds the references in the suite files (read as text: no suite code runs here) and in the
plan's headers, fetches them, and hands the values to the workers with the job. Every
value — and each of its encoded forms — joins the redaction set first: it never appears in
a log line, a result, the evidence or the return value. A reference no one could resolve
fails the check that uses it (or, in the plan, the run), naming the reference and the
error.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from hooks.core import redact
from hooks.core.exceptions import ConfigError
from hooks.core.settings import secrets_max_age

__all__ = [
    "FETCH_SECONDS",
    "REFERENCE",
    "SecretError",
    "fetch",
    "lookup",
    "max_age",
    "provide",
    "references_in",
    "resolve_all",
    "scan",
    "substitute",
]

log = logging.getLogger(__name__)

#: ``${secret:...}`` / ``${ssm:...}``, and the quoted ``"secret:..."`` a pytest suite passes
#: to the ``secret`` fixture.
REFERENCE = re.compile(r"""(?:\$\{|(?<=["']))((?:secret|ssm):[^}"'\s]+)(?=[}"'])""")
#: Suite files larger than this are not scanned for references (their lookups still work,
#: fetched by the worker that runs them).
_SCAN_LIMIT = 4 * 1024 * 1024


class SecretError(Exception):
    """A reference that cannot be resolved; the message names it."""


def max_age(env: Mapping[str, str] | None = None) -> int:
    """``GREENLIGHT_SECRETS_MAX_AGE``, checked as every setting is (a bad value is an error)."""

    return secrets_max_age(env if env is not None else os.environ)


_PROVIDERS_LOCK = threading.Lock()


def _providers() -> tuple[Any, Any]:
    """One Secrets Manager and one SSM provider per process: their cache is the process's
    (made once, under a lock: references are fetched side by side)."""
    with _PROVIDERS_LOCK:
        return _make_providers()


@cache
def _make_providers() -> tuple[Any, Any]:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=3,
        read_timeout=5,
        user_agent_extra="greenlight",
    )
    return SecretsProvider(boto_config=config), SSMProvider(boto_config=config)


#: The longest one reference may take to fetch (every attempt included): a Secrets
#: Manager or Parameter Store call that hangs fails naming its reference, in time.
FETCH_SECONDS = 10.0


def fetch(reference: str, age: int | None = None, seconds: float | None = None) -> str:
    """The value ``reference`` names (fetched, or from this process's cache), within
    ``seconds`` (:data:`FETCH_SECONDS`); else a :class:`SecretError` naming it."""
    limit = FETCH_SECONDS if seconds is None else seconds
    found: list[str] = []
    failed: list[BaseException] = []

    def work() -> None:
        try:
            found.append(_fetch(reference, age))
        except BaseException as exc:
            failed.append(exc)

    worker = threading.Thread(target=work, name="greenlight-secret", daemon=True)
    worker.start()
    worker.join(limit)
    if failed:
        raise failed[0]
    if not found:
        raise SecretError(f"${{{reference}}} could not be read within {limit:g}s (no answer)")
    return found[0]


def _fetch(reference: str, age: int | None) -> str:

    kind, _, name = reference.partition(":")
    age = max_age() if age is None else age
    secrets_provider, ssm_provider = _providers()
    try:
        if kind == "secret":
            secret_name, _, key = name.partition("#")
            if not secret_name:
                raise SecretError(f"${{{reference}}}: no secret name")
            raw = secrets_provider.get(secret_name, max_age=age, force_fetch=age == 0)
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            redact.bind(text)  # the whole secret, before anything can show it
            value = _json_key(reference, text, key) if key else text
        elif kind == "ssm":
            if not name.startswith("/") and not name.startswith("arn:"):
                raise SecretError(f"${{{reference}}}: a parameter path starts with /")
            raw = ssm_provider.get(name, max_age=age, decrypt=True, force_fetch=age == 0)
            value = raw.decode() if isinstance(raw, bytes) else str(raw)
        else:
            raise SecretError(f"${{{reference}}}: use secret:NAME, secret:NAME#key or ssm:/path")
    except SecretError:
        raise
    except Exception as exc:
        raise SecretError(f"${{{reference}}} could not be read: {_cause(exc)}") from None
    redact.bind(value)
    return value


def _json_key(reference: str, text: str, key: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        raise SecretError(
            f"${{{reference}}}: the secret is not JSON, it has no key {key!r}"
        ) from None
    if not isinstance(data, dict) or key not in data:
        keys = ", ".join(sorted(data)) if isinstance(data, dict) else "none"
        raise SecretError(f"${{{reference}}}: the secret has no key {key!r} (keys: {keys})")
    value = data[key]
    return value if isinstance(value, str) else json.dumps(value)


def _cause(exc: BaseException) -> str:
    """The AWS error's code and message (never the value: there is none)."""
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    response = getattr(cause, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response["Error"]
        return f"{error.get('Code')}: {error.get('Message')}"
    return f"{type(cause).__name__}: {cause}"


# ---- in the worker: values handed over with the job, else fetched here ----

_given: dict[str, str] = {}
_failed: dict[str, str] = {}


def provide(values: Mapping[str, str], errors: Mapping[str, str] | None = None) -> None:
    """What the supervisor resolved (the job's ``resolved``) and could not (``unresolved``:
    not fetched again here), for :func:`lookup`."""

    redact.bind(*values.values())
    _given.update(values)
    _failed.update(errors or {})


def lookup(reference: str) -> str:
    """A reference's value: handed over by the supervisor, else fetched in this process."""
    if reference in _given:
        return _given[reference]
    if reference in _failed:
        raise SecretError(_failed[reference])
    value = fetch(reference)
    _given[reference] = value
    return value


# ---- in the supervisor: find the references before the suites run ----


def references_in(texts: Iterable[str]) -> set[str]:
    return {match.group(1) for text in texts for match in REFERENCE.finditer(text)}


def scan(suites_dir: Path) -> set[str]:
    """The references written in the suite files (read as text, never run)."""
    found: set[str] = set()
    try:
        files = [p for p in suites_dir.rglob("*") if p.suffix in (".yaml", ".yml", ".py")]
    except OSError:
        return found
    for path in files:
        try:
            if path.stat().st_size > _SCAN_LIMIT:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "secret:" in text or "ssm:" in text:
            found |= references_in([text])
    return found


def substitute(text: str, where: str, age: int | None = None) -> str:
    """``text`` with each ``${secret:...}`` / ``${ssm:...}`` in it replaced by its value
    (for the plan's headers); an unresolvable one is a configuration error naming ``where``."""

    def value(match: re.Match[str]) -> str:
        try:
            return fetch(match.group(1), age)
        except SecretError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    return re.sub(r"\$\{((?:secret|ssm):[^}]+)\}", value, text)


def resolve_all(
    references: Iterable[str], age: int | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """({reference: value}, {reference: error}) for each reference."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    wanted = sorted(set(references))

    def one(reference: str) -> None:  # each within its own bound, all at once
        try:
            values[reference] = fetch(reference, age)
        except SecretError as exc:
            errors[reference] = str(exc)

    threads = [threading.Thread(target=one, args=(r,), daemon=True) for r in wanted]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if values or errors:
        log.info(
            "secrets resolved by reference",
            extra={"resolved": sorted(values), "unresolved": errors},
        )
    return values, errors
