"""One way to call a Power Platform endpoint and to turn its failures into our error tree.

The PowerApps resource provider and the Dataverse Web API both answer errors as
``{"error": {"code", "message"}}``, but gateways in front of them also send ASP.NET routing bodies
(``{"message": ...}``), HTML or nothing at all (paconn crashes on those, issue #289). Operators need
status, code and the service's tracking id to open a support case, so every message carries them;
none carries a request body, header value or token.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from sync.adapters.http import (
    RetryableStatus,
    check_transient,
    header_tracking_id,
    with_retries,
)
from sync.errors import TargetError, TransientError

log = logging.getLogger(__name__)

_TRACKING_IN_MESSAGE = re.compile(r"tracking id is '([0-9a-fA-F-]{8,})'", re.IGNORECASE)
MAX_SNIPPET = 200


def parse_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from an error body, whatever shape it has; one nested past the recursion
    limit is described as non-JSON (a RecursionError would escape raise_for_status, turning a
    retryable 503 into a crash)."""
    text = response.text.strip() if response.content else ""
    if not text:
        return None, "empty body"
    try:
        body: Any = json.loads(text)
    except (ValueError, RecursionError):
        kind = response.headers.get("content-type", "unknown content type").split(";")[0]
        snippet = " ".join(text.split())[:MAX_SNIPPET]
        return None, f"non-JSON body ({kind}): {snippet}"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            message = error.get("message")
            return (str(code) if code is not None else None), str(message or "no message")
        if isinstance(body.get("message"), str):  # ASP.NET routing answer (paconn issue #58)
            return None, body["message"]
    return None, " ".join(text.split())[:MAX_SNIPPET]


def tracking_id(response: httpx.Response, message: str = "") -> str | None:
    """The tracking id from the headers, else the one the RP writes into its message text."""
    from_header = header_tracking_id(response)
    if from_header:
        return from_header
    found = _TRACKING_IN_MESSAGE.search(message)
    return found.group(1) if found else None


def describe(response: httpx.Response, *, service: str) -> tuple[str, str | None, str | None]:
    """A one-line description: status, code, message, tracking id."""
    code, message = parse_error(response)
    tid = tracking_id(response, message)
    parts = [f"{service} answered HTTP {response.status_code}"]
    if code:
        parts.append(code)
    text = ": ".join([" ".join(parts), message])
    if tid:
        text += f" (tracking id {tid})"
    return text, code, tid


def raise_for_status(
    response: httpx.Response,
    *,
    service: str,
    where: str,
    transient: Iterable[int] = (),
    hint: Callable[[int, str | None], str | None] | None = None,
) -> httpx.Response:
    """Return a 2xx response; raise RetryableStatus for retryable statuses, TargetError otherwise."""
    if response.is_success:
        return response
    text, code, tid = describe(response, service=service)
    status = response.status_code
    check_transient(
        response, where=where, extra=transient, describe=lambda _: text, tracking_id=tid
    )
    extra = hint(status, code) if hint else None
    if extra:
        text = f"{text}. {extra}"
    raise TargetError(text, where=where, status=status, code=code, tracking_id=tid)


def _when_sent(on_sent: Callable[[], None]) -> Callable[[str, dict[str, Any]], None]:
    """An httpcore trace callback that calls ``on_sent`` once, when a body has first been sent
    whole (an attempt whose upload failed reports no completion; a retry sends the same body);
    its failure is logged, never raised into the request."""
    called: list[bool] = []

    def trace(event: str, info: dict[str, Any]) -> None:
        if called or not event.endswith(".send_request_body.complete"):
            return
        called.append(True)
        try:
            on_sent()
        except Exception:
            log.warning("on_sent callback failed", exc_info=True)

    return trace


class _Unanswered(Exception):
    """A non-idempotent request went out and no answer came back (not retried in place)."""


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    service: str,
    where: str,
    budget_seconds: float,
    headers: Callable[[], dict[str, str]] | None = None,
    json_body: Any = None,
    content: bytes | None = None,
    transient: Iterable[int] = (),
    hint: Callable[[int, str | None], str | None] | None = None,
    wait_initial: float = 0.5,
    resend_unanswered: bool = True,
    on_sent: Callable[[], None] | None = None,
) -> httpx.Response:
    """One logical call with the shared retry policy; ``headers`` is re-evaluated per attempt so a
    token refreshed by the provider is used on the retry.

    ``resend_unanswered=False`` is for calls that are not idempotent (a create): when the request
    was sent but no answer came, or the answer was a 5xx or 408 (a gateway's 502 may follow a
    create the service carried out, reference F3), the platform may have acted on it, so it is
    not sent again here; the caller's next attempt must look for the result first. A 429 is
    still retried here: a throttled request was not carried out.

    ``content`` is a JSON body already encoded (``json_bytes``), for callers that send the same
    large definition more than once and should not encode it each time.

    ``on_sent`` is called on this thread once a request's body has first left whole, where
    httpcore reports it (its ``trace`` extension; other transports never call it): work for
    after the answer can start in the background then, while this thread only waits, instead of
    competing for the GIL with the upload itself."""
    statuses = tuple(transient)
    extensions = None if on_sent is None else {"trace": _when_sent(on_sent)}

    def attempt() -> httpx.Response:
        sent = dict(headers()) if headers else {}
        if content is not None:
            sent["Content-Type"] = "application/json"
        try:
            response = client.request(
                method,
                url,
                headers=sent or None,
                json=json_body,
                content=content,
                extensions=extensions,
            )
        except (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError) as exc:
            if resend_unanswered:
                raise
            raise _Unanswered(type(exc).__name__) from exc
        status = response.status_code
        if not resend_unanswered and (status >= 500 or status == 408):
            text, _, tid = describe(response, service=service)
            raise _Unanswered(f"{text}{f', tracking id {tid}' if tid and tid not in text else ''}")
        return raise_for_status(
            response, service=service, where=where, transient=statuses, hint=hint
        )

    try:
        return with_retries(attempt, budget_seconds=budget_seconds, wait_initial=wait_initial)
    except RetryableStatus as exc:
        log.warning("%s %s gave up: %s", method, where, exc.message)
        raise
    except _Unanswered as exc:
        raise TransientError(
            f"{service} gave no usable answer to {method} ({exc}); not sent again since it may "
            "have been carried out",
            where=where,
        ) from None
    except httpx.TimeoutException as exc:
        raise TransientError(
            f"{service} did not answer {method} in time ({type(exc).__name__})", where=where
        ) from None
    except httpx.TransportError as exc:
        raise TransientError(
            f"{service} could not be reached for {method} ({type(exc).__name__})", where=where
        ) from None
