"""``check_transient`` carries the service's tracking id, so a give-up after retries can be traced."""

from __future__ import annotations

import httpx
import pytest

from sync.adapters.http import RetryableStatus, check_transient
from sync.adapters.pp_errors import raise_for_status
from sync.errors import TargetError


def answer(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> httpx.Response:
    return httpx.Response(
        status, headers=headers, content=body, request=httpx.Request("GET", "https://x.test/")
    )


@pytest.mark.parametrize(
    "header", ["x-ms-correlation-request-id", "x-ms-request-id", "x-ms-service-request-id"]
)
def test_retryable_status_reads_the_tracking_header(header: str) -> None:
    with pytest.raises(RetryableStatus) as caught:
        check_transient(answer(503, {header: "trk-1"}), where="w")
    assert caught.value.tracking_id == "trk-1"
    assert caught.value.status == 503


def test_correlation_id_wins_over_request_id() -> None:
    response = answer(
        429, {"x-ms-request-id": "req", "x-ms-correlation-request-id": "corr", "retry-after": "2"}
    )
    with pytest.raises(RetryableStatus) as caught:
        check_transient(response, where="w")
    assert caught.value.tracking_id == "corr"
    assert caught.value.retry_after == 2.0


def test_no_tracking_header_leaves_it_empty_and_a_caller_id_wins() -> None:
    with pytest.raises(RetryableStatus) as caught:
        check_transient(answer(500), where="w")
    assert caught.value.tracking_id is None
    with pytest.raises(RetryableStatus) as caught:
        check_transient(answer(500, {"x-ms-request-id": "hdr"}), where="w", tracking_id="body")
    assert caught.value.tracking_id == "body"


def test_non_retryable_status_is_returned_untouched() -> None:
    response = answer(400, {"x-ms-request-id": "trk"})
    assert check_transient(response, where="w") is response
    with pytest.raises(RetryableStatus):
        check_transient(answer(404), where="w", extra=(404,))


def test_power_platform_tracking_id_in_the_message_reaches_the_retryable_error() -> None:
    body = b'{"error":{"code":"ServerBusy","message":"Busy; tracking id is \'0123abcd-0000\'"}}'
    with pytest.raises(RetryableStatus) as caught:
        raise_for_status(
            answer(503, {"content-type": "application/json"}, body), service="S", where="w"
        )
    assert caught.value.tracking_id == "0123abcd-0000"
    assert "S answered HTTP 503 ServerBusy" in caught.value.message


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-NaN"}, None),
        ({"x-ms-retry-after-ms": "nan"}, None),
        ({"x-ms-retry-after-ms": "-5000"}, 0.0),
    ],
)
def test_a_retry_after_that_is_no_wait_in_seconds_does_not_break_the_retry(headers, wait) -> None:
    """float() reads "nan", and the milliseconds header was not floored at 0: the retry's sleep
    raised ValueError ("Invalid value NaN", "sleep length must be non-negative"), which escaped
    every adapter's error handling instead of the RetryableStatus."""
    from sync.adapters.http import retry_after_seconds, with_retries

    assert retry_after_seconds(answer(429, headers)) == wait
    calls = []

    def call() -> httpx.Response:
        calls.append(1)
        return check_transient(answer(429, headers), where="w")

    with pytest.raises(RetryableStatus) as caught:
        with_retries(call, budget_seconds=0.5, attempts=2, wait_initial=0.01, wait_max=0.01)
    assert caught.value.retry_after == wait
    assert len(calls) == 2


@pytest.mark.parametrize(("status", "error"), [(503, RetryableStatus), (400, TargetError)])
def test_a_power_platform_error_body_nested_past_the_recursion_limit_reads_as_non_json(
    status: int, error: type
) -> None:
    """A RecursionError out of parse_error escaped raise_for_status: a 503 was not retried and
    a 400 was no TargetError."""
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(
        error, match=rf"HTTP {status}: non-JSON body \(unknown content type\): \[\["
    ):
        raise_for_status(answer(status, body=deep), service="Power Apps", where="w")
