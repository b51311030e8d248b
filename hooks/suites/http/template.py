"""``${name}`` substitution: suite variables, captures, ``${env:NAME}``, deployment values,
and secrets by reference (``${secret:NAME}``, ``${secret:NAME#key}``, ``${ssm:/path}``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from hooks.aws.secrets import SecretError, lookup
from hooks.core import redact

__all__ = ["UnknownVariableError", "render"]

_VARIABLE = re.compile(r"\$\$\{|\$\{([^}]*)\}")


class UnknownVariableError(KeyError):
    """A ``${name}`` that no variable, capture or environment variable defines."""

    def __str__(self) -> str:
        return str(self.args[0])


def render(value: Any, variables: Mapping[str, str]) -> Any:
    """``value`` with every ``${name}`` in its strings replaced; ``$${`` is a literal ``${``."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        return _VARIABLE.sub(lambda m: _lookup(m, variables), value)
    if isinstance(value, list | tuple):
        return [render(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: render(item, variables) for key, item in value.items()}
    return value


def _lookup(match: re.Match[str], variables: Mapping[str, str]) -> str:
    if match.group(0) == "$${":
        return "${"
    name = match.group(1).strip()
    if name.startswith(("secret:", "ssm:")):
        try:
            return lookup(name)  # registered as a secret before it is returned
        except SecretError as exc:
            raise UnknownVariableError(str(exc)) from None
    if name.startswith("env:"):
        env_name = name[4:]
        if env_name not in os.environ:
            raise UnknownVariableError(f"environment variable {env_name!r} is not set")

        value = os.environ[env_name]
        redact.register(value)  # values from the environment are treated as secrets
        return value
    if name not in variables:
        if name == "target.prod_url":
            raise UnknownVariableError(
                "${target.prod_url}: no production URL is known (set GREENLIGHT_PROD_URL or "
                "prod_url in the plan, or let discovery find the production listener)"
            )
        known = ", ".join(sorted(variables)) or "none"
        raise UnknownVariableError(f"unknown variable ${{{name}}} (known: {known})")
    return str(variables[name])
