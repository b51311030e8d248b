"""The hook's deadline: when work must stop so the report still goes out in time."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "DEFAULT_SAFETY_MARGIN",
    "LAMBDA_MAX_SECONDS",
    "MAX_MARGIN_SHARE",
    "Deadline",
    "HasRemainingTime",
    "remaining_seconds",
]

#: Seconds kept back from the Lambda's remaining time for reporting, by default.
DEFAULT_SAFETY_MARGIN = 10.0
#: The margin never takes more than this share of a short remaining time.
MAX_MARGIN_SHARE = 1 / 3


class HasRemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


#: Lambda's longest run, assumed when a caller passes no usable context.
LAMBDA_MAX_SECONDS = 900.0


def remaining_seconds(context: object) -> float:
    """The context's remaining time; Lambda's maximum when the context cannot tell."""
    method = getattr(context, "get_remaining_time_in_millis", None)
    try:
        return max(float(method()), 0.0) / 1000 if callable(method) else LAMBDA_MAX_SECONDS
    except (TypeError, ValueError):
        return LAMBDA_MAX_SECONDS


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock; ``remaining()`` is never negative."""

    at: float

    @classmethod
    def in_seconds(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    @classmethod
    def from_context(
        cls, context: object, safety_margin: float = DEFAULT_SAFETY_MARGIN
    ) -> Deadline:
        """Remaining Lambda time minus the margin (at most a third of a short remainder)."""
        remaining = remaining_seconds(context)
        margin = min(max(safety_margin, 0.0), remaining * MAX_MARGIN_SHARE)
        return cls.in_seconds(remaining - margin)

    def remaining(self) -> float:
        return max(self.at - time.monotonic(), 0.0)

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def earlier(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` before this one (used to finish work before reporting)."""
        return Deadline(self.at - seconds)

    def clamp(self, timeout: float) -> float:
        """A timeout that ends no later than the deadline (at least a few milliseconds)."""
        return max(min(timeout, self.remaining()), 0.001)
