"""The distribution's version, read once from its metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("greenlight-hooks")
except PackageNotFoundError:  # pragma: no cover - running from a plain source tree
    __version__ = "0.0.0+local"
