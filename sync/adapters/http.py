"""Outbound HTTP discipline shared by every adapter: timeouts, bounded retries, Retry-After.

One place decides what is transient (connection errors, timeouts, 429, 5xx, plus any status an
adapter adds, e.g. 404/503 while an API warms up) and how long to wait: the server's Retry-After
when it sends one, exponential backoff with jitter otherwise, all inside a total time budget.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeVar

import httpx
import stamina

from sync.errors import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 120.0
# Where Azure services put the id a support case needs, most specific first.
TRACKING_HEADERS = (
    "x-ms-correlation-request-id",
    "x-ms-request-id",
    "x-ms-service-request-id",
    "request-id",
    "x-ms-client-request-id",
)


class RetryableStatus(TransientError):
    """A response whose status says "try again"; carries the server's Retry-After."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        where: str | None = None,
        retry_after: float | None = None,
        tracking_id: str | None = None,
    ) -> None:
        super().__init__(message, where=where, retry_after=retry_after)
        self.status = status
        self.tracking_id = tracking_id


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), capped; None if absent."""
    raw = response.headers.get("retry-after") or response.headers.get("x-ms-retry-after-ms")
    if not raw:
        return None
    if "x-ms-retry-after-ms" in response.headers and "retry-after" not in response.headers:
        try:
            return _wait(float(raw) / 1000.0)
        except ValueError:
            return None
    try:
        return _wait(float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return _wait(when.timestamp() - time.time())


def _wait(seconds: float) -> float | None:
    """A wait ``time.sleep`` takes: 0 to ``MAX_RETRY_AFTER``. float() reads "nan" and "-5000",
    which sleep() would refuse with ValueError; NaN is no wait at all (None)."""
    return None if math.isnan(seconds) else min(max(seconds, 0.0), MAX_RETRY_AFTER)


def json_or_none(response: httpx.Response) -> Any:
    """The answer's JSON, or None where it has none: not JSON (a gateway's HTML page), not UTF-8,
    or nested past the recursion limit, whose RecursionError would otherwise escape an error
    path and turn a retryable answer into a crash."""
    try:
        return response.json()
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        return None


def header_tracking_id(response: httpx.Response) -> str | None:
    """The service's request id from the first of ``TRACKING_HEADERS`` the response carries."""
    for header in TRACKING_HEADERS:
        value = response.headers.get(header)
        if value:
            return value
    return None


def check_transient(
    response: httpx.Response,
    *,
    where: str,
    extra: Iterable[int] = (),
    describe: Callable[[httpx.Response], str] | None = None,
    tracking_id: str | None = None,
) -> httpx.Response:
    """Raise ``RetryableStatus`` for a status worth retrying; return the response otherwise.

    The error carries the service's tracking id (``tracking_id`` when the caller found one, e.g.
    in the body, else the response headers) so a give-up after retries can still be traced.
    """
    if response.status_code in TRANSIENT_STATUSES or response.status_code in set(extra):
        detail = describe(response) if describe else f"HTTP {response.status_code}"
        raise RetryableStatus(
            detail,
            status=response.status_code,
            where=where,
            retry_after=retry_after_seconds(response),
            tracking_id=tracking_id or header_tracking_id(response),
        )
    return response


def _backoff(exc: BaseException) -> bool | float:
    if isinstance(exc, TransientError):
        return exc.retry_after if exc.retry_after is not None else True
    return isinstance(exc, (httpx.TransportError, httpx.TimeoutException))


def with_retries(
    call: Callable[[], T],
    *,
    budget_seconds: float,
    attempts: int = 8,
    wait_initial: float = 0.5,
    wait_max: float = 15.0,
) -> T:
    """Run ``call`` until it succeeds, raises a non-transient error, or the budget is spent. A
    ``Retry-After`` longer than what is left of the budget ends the retries at once: the error,
    which carries it, goes to the caller (the queue retries the item that late) instead of a
    wait past the budget, which would eat into the lease and the function's time."""
    deadline = time.monotonic() + budget_seconds

    def backoff(exc: BaseException) -> bool | float:
        wait = _backoff(exc)
        if not isinstance(wait, bool) and wait > deadline - time.monotonic():
            return False
        return wait

    for attempt in stamina.retry_context(
        on=backoff,
        attempts=attempts,
        timeout=budget_seconds,
        wait_initial=wait_initial,
        wait_max=wait_max,
        wait_jitter=min(1.0, wait_initial),
    ):
        with attempt:
            if attempt.num > 1:
                log.info("retrying, attempt %d", attempt.num)
            return call()
    raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover


class Retries(NamedTuple):
    """How long and how often ``send_retried`` tries one request."""

    budget_seconds: float
    attempts: int
    wait_initial: float


TOKEN_RETRIES = Retries(budget_seconds=30.0, attempts=3, wait_initial=0.5)


def send_retried(
    send: Callable[[], httpx.Response],
    *,
    where: str,
    describe: Callable[[httpx.Response], str],
    retries: Retries,
) -> httpx.Response:
    """One request to a token endpoint (the delegated grant, the App Service identity): a status
    worth retrying is retried within the budget, and a transport failure that outlasts it is a
    ``TransientError`` naming ``where``. The answer, whatever its status, goes to the caller."""

    def call() -> httpx.Response:
        return check_transient(send(), where=where, describe=describe)

    try:
        return with_retries(
            call,
            budget_seconds=retries.budget_seconds,
            attempts=retries.attempts,
            wait_initial=retries.wait_initial,
        )
    except httpx.HTTPError as exc:
        raise as_transient(exc, where=where) from None


def as_transient(exc: httpx.HTTPError, *, where: str) -> TransientError:
    """A transport failure after retries, as an error that names where it happened."""
    from sync.adapters.response_limits import ran_out_of_total_time

    if ran_out_of_total_time(exc):
        return TransientError(f"{exc}: {type(exc).__name__}", where=where)
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return TransientError(f"{kind}: {type(exc).__name__}", where=where)


def default_timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))
