"""The green stack as the suites see it: where to send requests, and how."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

from hooks.version import __version__

__all__ = [
    "DEPLOYMENT_HEADER",
    "USER_AGENT",
    "NoProductionUrlError",
    "Target",
    "cloudwatch_dimensions",
    "header_value",
    "origin",
]

USER_AGENT = f"greenlight/{__version__}"
#: Header that carries the deployment id on every request, so services can tell test traffic.
DEPLOYMENT_HEADER = "X-Greenlight-Deployment-Id"


@dataclass(frozen=True)
class Target:
    """Where the suites send requests.

    ``url`` reaches the green tasks (the test listener; the production listener from
    AfterAllowTraffic on). ``prod_url`` reaches whatever serves production traffic.
    ``host`` is the service's host name: sent as the ``Host`` header and as TLS SNI, and the
    certificate is verified against it, while the connection goes to ``url``'s address.
    """

    url: str
    prod_url: str | None = None
    host: str | None = None
    verify: bool = True
    ca_bundle: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Green behind the load balancer as CloudWatch names it: ``LoadBalancer``
    #: (``app/NAME/ID``) and ``TargetGroup`` (``targetgroup/NAME/ID``), when discovered.
    dimensions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"target URL must be http(s)://host[:port][/path], got {self.url!r}")

    def resolve(self, path_or_url: str, *, prod: bool = False) -> str:
        """A full URL (used as given), or a path appended to the base URL (and its path).

        ``prod`` asks for production: without a production URL that is an error, never the
        green URL in its place.
        """
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        if prod and not self.prod_url:
            raise NoProductionUrlError(
                "the check addresses production (listener: prod), but no production URL is "
                "known: set GREENLIGHT_PROD_URL or prod_url in the plan, or let discovery "
                "find the production listener"
            )
        base = self.prod_url if prod and self.prod_url else self.url
        return f"{base.rstrip('/')}/{path_or_url.lstrip('/')}"

    @property
    def tls_verify(self) -> bool | str:
        """The value for requests' ``verify``: False, a CA bundle path, or True."""
        if not self.verify:
            return False
        return self.ca_bundle or True

    def default_headers(self, deployment_id: str | None) -> dict[str, str]:
        """Headers for every request; ``Host`` is added per request, for the target's origins."""
        headers = {"User-Agent": USER_AGENT}
        if deployment_id:
            headers[DEPLOYMENT_HEADER] = header_value(deployment_id)
        headers.update({k: header_value(str(v)) for k, v in self.headers.items()})
        return headers


class NoProductionUrlError(ValueError):
    """A check addressed production, and no production URL is known."""


def cloudwatch_dimensions(listener_arn: str | None, target_group_arn: str | None) -> dict[str, str]:
    """The CloudWatch dimensions of a target group behind a listener, from their ARNs:
    ``...:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2`` -> ``app/shop/50dc6c495c0c9188``,
    ``...:targetgroup/shop-green/73e2d6bc24d8a067`` -> ``targetgroup/shop-green/73e2d6bc24d8a067``.
    A listener rule's ARN (``listener-rule/app/...``) names its load balancer the same way."""
    found: dict[str, str] = {}
    if listener_arn:
        resource = listener_arn.split(":", 5)[-1]
        parts = resource.split("/")
        if len(parts) >= 4 and parts[0] in ("listener", "listener-rule"):
            found["LoadBalancer"] = "/".join(parts[1:4])
    if target_group_arn:
        resource = target_group_arn.split(":", 5)[-1]
        if resource.startswith("targetgroup/"):
            found["TargetGroup"] = resource
    return found


@lru_cache(maxsize=1024)
def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, with the scheme's default port made explicit
    (remembered: a request asks it of its URL, the target's and each allowed origin)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


_UNSAFE_HEADER_CHARS = re.compile(r"[^\x20-\x7e]")


def header_value(value: str) -> str:
    """``value`` as a valid header value: control and non-ASCII characters percent-encoded."""
    if value.isascii() and value.isprintable():  # nothing to encode (the usual case)
        return value
    return _UNSAFE_HEADER_CHARS.sub(lambda m: "".join(f"%{b:02X}" for b in m[0].encode()), value)
