"""What Greenlight's HTTP clients share — the checks' session (:mod:`hooks.core.http`) and
the load engine (:mod:`hooks.core.wire`): the body cap, and the words for a credential that
would leave the target and for a certificate that does not match. Light enough for any
import path (neither client's libraries load with it)."""

from __future__ import annotations

__all__ = ["CERT_HINT", "DEFAULT_MAX_BODY_BYTES", "credential_refusal"]

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
