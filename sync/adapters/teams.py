"""Deliver a run's card to a Teams Workflows webhook ("When a Teams webhook request is received").

Best-effort by design: a notification must never fail or undo a sync, so ``notify`` returns a
status string and never raises. The webhook answers 202 and posts the card later, so success is
"accepted", not "posted". The webhook URL carries its own credential (the ``sig`` query
parameter): it comes from Key Vault at call time and never appears in a log line, an error or the
returned status; httpx's own request log line is redacted too.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from sync.adapters.http import RetryableStatus, as_transient, check_transient, with_retries
from sync.adapters.response_limits import DEADLINE
from sync.adapters.urlguard import install_httpx_log_redaction
from sync.errors import SyncError
from sync.models import RunSummary
from sync.notify.cards import build_message, encode_message, plain
from sync.redact import redact_url

log = logging.getLogger(__name__)

WHERE = "teams webhook"
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_SIG = re.compile(r"(?i)([?&](?:sig|sv|sp|code|token|signature)=)[^&\s\"']*")


def _without(text: str, secrets: set[str] | frozenset[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "<webhook-url>")
    return text


def redact(text: str, secrets: set[str] | frozenset[str] = frozenset()) -> str:
    """``text`` without any of ``secrets`` and without signature-like query values."""
    return _SIG.sub(r"\1***", _without(text, secrets))


class _RedactFilter(logging.Filter):
    """Redacts webhook URLs from httpx's "HTTP Request: POST <url>" INFO line.

    Installed once on the ``httpx`` logger: in Functions that line reaches Application Insights.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()

    def add(self, url: str) -> None:
        # Also the URL guard's redacted form: whichever filter on the httpx logger runs first,
        # the whole webhook URL (its workflow path included) is replaced.
        forms = {url, str(httpx.URL(url)), redact_url(url), redact_url(httpx.URL(url))}
        with self._lock:
            self._secrets |= forms

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = set(self._secrets)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        # Only the whole webhook URL here; query signatures of every other URL are redacted by
        # the URL guard's filter on the same logger (one mechanism, not two).
        cleaned = _without(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = _RedactFilter()
_FILTER_LOCK = threading.Lock()


def _guard_httpx_logs(url: str) -> None:
    with _FILTER_LOCK:
        logger = logging.getLogger("httpx")
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    install_httpx_log_redaction()
    _FILTER.add(url)


def _usable(url: str) -> str | None:
    """Why the URL cannot be a webhook (https only; http just for loopback tests), or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "webhook URL is not a URL"
    try:
        httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        # a secret pasted with its line break, a port that is no number: urlsplit lets them
        # through, httpx does not. Its reason names a character, a port or a host, never the query
        return f"webhook URL is not a URL ({exc})"
    if not parts.hostname:
        return "webhook URL has no host"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return None
    return "webhook URL must use https"


def _describe_refusal(response: httpx.Response, secrets: set[str]) -> str:
    """ "HTTP 400 TriggerInputSchemaMismatch: ..." from a Logic Apps / Workflows error body; a
    body that is not JSON, or nests past the recursion limit, gives the status alone (not
    "unexpected RecursionError")."""
    detail = ""
    try:
        error = response.json().get("error") or {}
        code, message = error.get("code"), error.get("message")
        detail = ": ".join(str(p) for p in (code, message) if p)
    except (ValueError, AttributeError, RecursionError):  # JSONDecodeError is a ValueError
        detail = ""
    text = f"HTTP {response.status_code}" + (f" {detail}" if detail else "")
    return plain(redact(text, secrets), 300)


def _wrapped_refusal(response: httpx.Response, secrets: set[str]) -> str | None:
    """A legacy Office 365 connector answers 200 to everything and says in the body whether the
    card went out: "1" when it did, "Webhook message delivery failed with error: ..." (Teams'
    own 400, 413 or 429) when it did not. Workflows answer 202 with no body."""
    if response.status_code != 200:
        return None
    text = response.text.strip()
    if not text or text.isdigit():
        return None
    return f"HTTP 200 {plain(redact(text, secrets), 300)}"


class TeamsWebhookNotifier:
    """``sync.ports.Notifier`` for a Teams Workflows webhook."""

    def __init__(
        self,
        *,
        webhook_url_provider: Callable[[], str],
        client: httpx.Client,
        budget_seconds: float = 60,
        maker_portal: str | None = None,
        wait_initial: float = 0.5,
    ) -> None:
        self._url_provider = webhook_url_provider
        self._client = client
        self._budget = budget_seconds
        self._maker_portal = maker_portal
        self._wait_initial = wait_initial

    def notify(self, run: RunSummary) -> str:
        """POST the run's card; "accepted" or "failed: <why>", never an exception."""
        try:
            return self._notify(run)
        except Exception as exc:  # the last line of "never fail a sync"
            log.exception("teams notification for run %s failed unexpectedly", run.run_id)
            return f"failed: unexpected {type(exc).__name__}"

    def _notify(self, run: RunSummary) -> str:
        # One deadline for all of it, the vault read included: a card still on its way after
        # the claim's window (NOTIFY_CLAIM_SECONDS, 90 s) could be sent a second time by another
        # delivery; each request's headers and body end by it too (response_limits.DEADLINE).
        deadline = time.monotonic() + self._budget
        body = encode_message(build_message(run, maker_portal=self._maker_portal))
        try:
            url = self._url_provider()
        except SyncError as exc:  # SecretError names vault and secret, never the value
            log.warning("teams webhook URL unavailable for run %s: %s", run.run_id, exc)
            return f"failed: webhook URL unavailable: {exc}"
        problem = _usable(url or "")
        if problem:
            problem = redact(problem, {url} if url else set())
            log.warning("teams notification for run %s not sent: %s", run.run_id, problem)
            return f"failed: {problem}"
        # The URL guard names a refused URL in its redacted form (signature masked, workflow
        # path kept): that form is a secret here too.
        secrets = {url, str(httpx.URL(url)), redact_url(url), redact_url(httpx.URL(url))}
        _guard_httpx_logs(url)

        def post() -> httpx.Response:
            response = self._client.post(
                url,
                content=body,
                headers={"Content-Type": "application/json"},
                extensions={DEADLINE: deadline},
            )
            return check_transient(response, where=WHERE)

        try:
            response = with_retries(
                post,
                budget_seconds=max(0.0, deadline - time.monotonic()),
                wait_initial=self._wait_initial,
            )
        except RetryableStatus as exc:
            left = deadline - time.monotonic()
            if exc.retry_after is not None and exc.retry_after >= left:
                why = (
                    f"webhook answered HTTP {exc.status} asking to wait {exc.retry_after:g}s, "
                    f"past what is left of the notification budget ({max(left, 0):.0f}s of "
                    f"{self._budget:g}s): not sent again"
                )
            else:
                why = f"webhook still answered HTTP {exc.status} after retries"
        except httpx.HTTPError as exc:
            why = str(as_transient(exc, where=WHERE))
        except SyncError as exc:
            # The URL guard, inside the transport: a host that does not resolve (transient, so
            # retried until the budget ends) or an address it refuses (UnsafeUrlError). Their
            # message is the reason; their ``where`` is the URL, so the webhook is named instead.
            why = f"{WHERE}: {exc.message}"
        else:
            wrapped = _wrapped_refusal(response, secrets)
            if response.is_success and wrapped is None:
                log.info(
                    "teams webhook accepted run %s (HTTP %d, %d bytes)",
                    run.run_id,
                    response.status_code,
                    len(body),
                )
                return "accepted"
            why = f"webhook refused the card: {wrapped or _describe_refusal(response, secrets)}"
        why = redact(why, secrets)
        log.warning("teams notification for run %s failed: %s", run.run_id, why)
        return f"failed: {why}"
