"""A suite run against one green task directly (``ip:port``) instead of the listener."""

from __future__ import annotations

import dataclasses

from hooks.suites.base import Suite, SuiteContext

__all__ = ["TargetedSuite"]


class TargetedSuite(Suite):
    """``inner`` against the task at ``url``; named ``<suite> @ <ip:port>`` in every result.

    Host name, TLS settings and headers stay the target's: only the address changes, so a
    task serving the service's certificate is verified against the service's name.
    """

    def __init__(self, inner: Suite, url: str, label: str) -> None:
        self.inner = inner
        self.url = url
        self.label = label
        self.name = f"{inner.name} @ {label}"
        self.kind = inner.kind
        self.description = inner.description
        self.tags = inner.tags
        self.events = inner.events
        self.policy = inner.policy
        self.source = inner.source
        self.origin = inner.origin
        self.secret_origins = inner.secret_origins

    def check_names(self) -> list[str]:
        return self.inner.check_names()

    def run(self, ctx: SuiteContext) -> None:
        target = dataclasses.replace(ctx.target, url=self.url)
        own = dataclasses.replace(ctx, target=target)
        try:
            self.inner.run(own)
        finally:
            own.close()  # its connections to this task
