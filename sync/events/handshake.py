"""The two webhook handshakes Event Grid performs before it delivers anything.

Event Grid schema: a ``SubscriptionValidationEvent`` whose code we echo back. CloudEvents schema:
an HTTP OPTIONS "abuse protection" request whose origin we echo back. Both are answered by the
planner's HTTP endpoint; nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from sync.events.model import Event, MalformedEvent

SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
# A host name (what Event Grid sends, e.g. eventgrid.azure.net); anything else - a URL, a list,
# CR/LF - is refused rather than reflected into a response header.
_ORIGIN = re.compile(
    r"^(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)
_CODE = re.compile(r"^[A-Za-z0-9-]{1,128}\Z")


def validation_response(event: Event) -> dict[str, str] | None:
    """``{"validationResponse": code}`` for a subscription validation event, else None."""
    if not event.is_type(SUBSCRIPTION_VALIDATION):
        return None
    code = event.data.get("validationCode")
    if not isinstance(code, str) or not _CODE.match(code):
        raise MalformedEvent(
            "must be a string of letters, digits and '-' (1-128 chars)",
            field="data.validationCode",
            where=f"event {event.id}",
        )
    return {"validationResponse": code}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.casefold()
    for key, value in headers.items():
        if isinstance(key, str) and key.casefold() == wanted:
            return value
    return None


def is_cloudevents_abuse_protection(
    method: str,
    headers: Mapping[str, str],
    *,
    allowed_origins: Collection[str] | None = None,
    rate: int | None = None,
) -> dict[str, str] | None:
    """Response headers for a CloudEvents OPTIONS handshake, or None when this is not one.

    ``allowed_origins`` (case-insensitive host names) restricts who may subscribe; None accepts any
    well-formed origin, since the endpoint itself is guarded by the function key. ``rate`` is the
    requests per minute we accept (None: unlimited, "*").
    """
    if method.upper() != "OPTIONS":
        return None
    origin = _header(headers, "WebHook-Request-Origin")
    if origin is None:
        return None
    origin = origin.strip()
    if not _ORIGIN.match(origin):
        raise MalformedEvent("must be a single host name", field="WebHook-Request-Origin header")
    if allowed_origins is not None and origin.casefold() not in {
        o.casefold() for o in allowed_origins
    }:
        raise MalformedEvent(
            f"origin {origin!r} is not among the allowed origins",
            field="WebHook-Request-Origin header",
        )
    if rate is not None and rate < 1:
        raise ValueError("rate must be a positive number of requests per minute")
    return {
        "WebHook-Allowed-Origin": origin,
        "WebHook-Allowed-Rate": "*" if rate is None else str(rate),
    }
