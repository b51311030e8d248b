"""Every error Greenlight raises on purpose; all share :class:`GreenlightError`."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DiscoveryError",
    "GreenlightError",
    "InvalidEventError",
    "SealError",
    "TargetNotReadyError",
]


class GreenlightError(Exception):
    """Base class of every error Greenlight raises on purpose."""


class InvalidEventError(GreenlightError, ValueError):
    """The Lambda event is not a CodeDeploy lifecycle hook event."""


class ConfigError(GreenlightError):
    """A setting, plan file or suite file is invalid; the message names file and line."""


class DiscoveryError(GreenlightError):
    """The green stack could not be found from the deployment; names the failing call."""


class TargetNotReadyError(GreenlightError):
    """The green targets did not become healthy in time; names them and why."""


class SealError(GreenlightError, ValueError):
    """State carried across an invocation that does not verify, or belongs to another call."""
