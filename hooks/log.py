"""Structured logging with Powertools ``Logger``.

Every module logs through the standard ``logging.getLogger(__name__)``; the ``hooks``
package logger gets the Powertools handler, so every line is JSON and carries the keys
appended for the invocation (deployment id, execution id, lifecycle event).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from aws_lambda_powertools.logging import Logger

_logger: Logger | None = None


def get_logger(stream: IO[str] | None = None, level: str | None = None) -> Logger:
    """The Powertools logger of this process, created on first use."""
    global _logger
    if _logger is None or stream is not None or level is not None:
        from aws_lambda_powertools.logging import Logger

        handler = logging.StreamHandler(stream) if stream is not None else None
        _logger = Logger(
            service=os.environ.get("POWERTOOLS_SERVICE_NAME", "greenlight"),
            level=level
            or os.environ.get("POWERTOOLS_LOG_LEVEL")
            or os.environ.get("LOG_LEVEL")
            or "INFO",
            logger_handler=handler,
        )
        package = logging.getLogger("hooks")
        package.handlers = [_logger.registered_handler]
        package.setLevel(_logger.log_level)
        package.propagate = False
    return _logger


def configure_for_cli(verbose: bool) -> Logger:
    """JSON logs on stderr for the command line: warnings only, unless ``verbose``."""
    return get_logger(stream=sys.stderr, level="DEBUG" if verbose else "WARNING")
