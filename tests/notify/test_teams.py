"""Webhook delivery against a local receiver: accepted, throttled, failing, refused, unreachable.

Every test also proves the webhook URL (a credential: its ``sig``) stays out of logs and results.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from sync.adapters.teams import TeamsWebhookNotifier, redact
from sync.errors import SecretError
from sync.notify import build_message, encode_message
from tests.notify import runs
from tests.notify.receiver import Answer, webhook

pytestmark = pytest.mark.reliability

SIG = "sig=WEBHOOK-CANARY-7f3a9c"
SECRET_PART = "WEBHOOK-CANARY-7f3a9c"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(2.0, connect=1.0)) as c:
        yield c


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    assert SECRET_PART not in caplog.text
    for record in caplog.records:
        assert SECRET_PART not in str(record.__dict__), record.name


def notifier(url: str, client: httpx.Client, budget: float = 5.0) -> TeamsWebhookNotifier:
    return TeamsWebhookNotifier(
        webhook_url_provider=lambda: url,
        client=client,
        budget_seconds=budget,
        maker_portal=runs.PORTAL,
        wait_initial=0.05,
    )


def test_202_is_accepted_and_the_card_arrives_intact(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    run = runs.success_run()
    caplog.set_level(logging.INFO, logger="httpx")  # the CLI quiets httpx; this test needs it on
    with webhook([Answer(202)], sig=SIG) as hook:
        result = notifier(hook.url, client).notify(run)
    assert result == "accepted"
    assert len(hook.received) == 1
    got = hook.received[0]
    assert got.json() == build_message(run, maker_portal=runs.PORTAL)
    assert got.body == encode_message(build_message(run, maker_portal=runs.PORTAL))
    assert got.headers["Content-Type"] == "application/json"
    assert SIG in got.path  # the receiver did get the credential; nobody else did
    assert "HTTP Request: POST" in caplog.text  # httpx logged the request, redacted
    assert "POST <webhook-url>" in caplog.text


def test_429_retry_after_is_honoured_then_accepted(client: httpx.Client) -> None:
    throttled = Answer(
        429,
        headers={"Retry-After": "1"},
        body=b'{"error":{"code":"TooManyRequests","message":"Rate limit is exceeded."}}',
    )
    with webhook([throttled, Answer(202)], sig=SIG) as hook:
        result = notifier(hook.url, client).notify(runs.failed_run())
    assert result == "accepted"
    assert len(hook.received) == 2
    waited = hook.received[1].at - hook.received[0].at
    assert waited >= 0.9  # the server asked for 1 s; backoff alone would wait ~0.05 s


def test_500_forever_fails_without_raising(client: httpx.Client) -> None:
    with webhook([Answer(500, body=b'{"error":{"code":"InternalServerError"}}')], sig=SIG) as hook:
        result = notifier(hook.url, client, budget=0.6).notify(runs.success_run())
    assert result == "failed: webhook still answered HTTP 500 after retries"
    assert len(hook.received) >= 2  # retried before giving up
    assert SECRET_PART not in result


def test_4xx_is_not_retried_and_the_reason_is_kept_without_the_url(client: httpx.Client) -> None:
    with webhook([Answer(202)], sig=SIG) as hook:
        echo = (
            '{"error":{"code":"TriggerInputSchemaMismatch","message":"The input body for trigger '
            f"'manual' of type 'Request' did not match its schema. Url: {hook.url}\"}}}}"
        ).encode()
        hook.answers = [Answer(400, body=echo)]
        result = notifier(hook.url, client).notify(runs.blocked_run())
    assert len(hook.received) == 1
    assert result.startswith(
        "failed: webhook refused the card: HTTP 400 TriggerInputSchemaMismatch"
    )
    assert SECRET_PART not in result
    assert "127.0.0.1" not in result


def test_unreachable_webhook_fails_without_raising(client: httpx.Client) -> None:
    with webhook([Answer(202)], sig=SIG) as hook:
        url = hook.url
    # the server is gone: connection refused on every attempt
    result = notifier(url, client, budget=0.5).notify(runs.success_run())
    assert result == "failed: teams webhook: connection failed: ConnectError"
    assert SECRET_PART not in result


def test_slow_webhook_times_out_and_fails(client: httpx.Client) -> None:
    with (
        httpx.Client(timeout=httpx.Timeout(0.2)) as fast,
        webhook([Answer(202, delay=1.0)], sig=SIG) as hook,
    ):
        result = notifier(hook.url, fast, budget=0.3).notify(runs.success_run())
    assert result == "failed: teams webhook: timed out: ReadTimeout"
    assert SECRET_PART not in result


def test_missing_secret_fails_with_the_secret_name_only(client: httpx.Client) -> None:
    def provider() -> str:
        raise SecretError("secret 'teams-webhook-url' not found in vault kv-sync")

    result = TeamsWebhookNotifier(webhook_url_provider=provider, client=client).notify(
        runs.success_run()
    )
    assert result == (
        "failed: webhook URL unavailable: secret 'teams-webhook-url' not found in vault kv-sync"
    )


def test_any_unexpected_error_is_a_failed_status_not_an_exception(client: httpx.Client) -> None:
    def provider() -> str:
        raise RuntimeError(f"boom {SIG}")

    result = TeamsWebhookNotifier(webhook_url_provider=provider, client=client).notify(
        runs.success_run()
    )
    assert result == "failed: unexpected RuntimeError"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (f"http://example.com/workflows/x?{SIG}", "webhook URL must use https"),
        (f"ftp://example.com/x?{SIG}", "webhook URL must use https"),
        (f"/workflows/x?{SIG}", "webhook URL has no host"),
        ("", "webhook URL has no host"),
        # a secret pasted with its line break, or a port that is no number: httpx refuses them
        (
            f"https://prod-1.westus.logic.azure.com/workflows/x?{SIG}\n",
            "webhook URL is not a URL (Invalid non-printable ASCII character in URL, '\\n' at "
            "position 75.)",
        ),
        (
            f"https://prod-1.westus.logic.azure.com:abc/workflows/x?{SIG}",
            "webhook URL is not a URL (Invalid port: 'abc')",
        ),
    ],
)
def test_unusable_webhook_urls_are_refused_before_sending(
    client: httpx.Client, url: str, why: str
) -> None:
    assert notifier(url, client).notify(runs.success_run()) == f"failed: {why}"


def test_redact_removes_the_url_and_signature_values() -> None:
    url = f"https://prod-1.westus.logic.azure.com/workflows/x/invoke?api-version=1&sv=1.0&{SIG}"
    assert SECRET_PART not in redact(f"POST {url} failed", {url})
    assert redact(f"POST {url} failed", {url}) == "POST <webhook-url> failed"
    assert redact(f"?a=1&{SIG}&b=2") == "?a=1&sig=***&b=2"


def test_a_refusal_nested_past_the_recursion_limit_reads_as_one_that_is_not_json(
    client: httpx.Client,
) -> None:
    """A RecursionError out of the refusal's description ended as "failed: unexpected
    RecursionError", without the status."""
    results = []
    for body in (b"<html><body>Bad Request</body></html>", b"[" * 100_000 + b"]" * 100_000):
        with webhook([Answer(400, body=body)], sig=SIG) as hook:
            results.append(notifier(hook.url, client).notify(runs.blocked_run()))
    assert results == ["failed: webhook refused the card: HTTP 400"] * 2


# --- review fixes, 2026-12-07 ---------------------------------------------------------------


def test_a_legacy_connector_wrapping_its_refusal_in_a_200_is_a_failure(
    client: httpx.Client,
) -> None:
    """Office 365 connectors answer 200 to everything; only a numeric body ("1") means the card
    went out. Teams' own refusal (413, 429, 400) comes back as 200 text and read as accepted."""
    refused = b"Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 413"
    with webhook([Answer(200, body=refused)], sig=SIG) as hook:
        result = notifier(hook.url, client).notify(runs.success_run())
    assert result.startswith("failed: webhook refused the card: HTTP 200 Webhook message delivery")
    assert "413" in result and len(hook.received) == 1
    with webhook([Answer(200, body=b"1")], sig=SIG) as hook:
        assert notifier(hook.url, client).notify(runs.success_run()) == "accepted"


def test_the_budget_bounds_a_slow_answer_too(client: httpx.Client) -> None:
    """The budget only stopped new retries: a request in flight ran on under the per-read
    timeouts (97 s seen), past the 90 s in which the card's claim is the notifier's own."""
    from sync.adapters.urlguard import guarded_client
    from sync.settings import Settings

    guarded = guarded_client(Settings(allow_private_hosts=frozenset({"127.0.0.1"})))
    with guarded, webhook([Answer(202, delay=4.0)], sig=SIG) as hook:
        started = time.monotonic()
        result = notifier(hook.url, guarded, budget=1.0).notify(runs.success_run())
        elapsed = time.monotonic() - started
    assert result.startswith("failed:") and "total time" in result
    assert elapsed < 3.0, elapsed


def test_a_retry_after_past_the_budget_says_so(client: httpx.Client) -> None:
    throttled = Answer(429, headers={"Retry-After": "100"})
    with webhook([throttled], sig=SIG) as hook:
        result = notifier(hook.url, client, budget=1.0).notify(runs.success_run())
    assert result.startswith("failed: webhook answered HTTP 429 asking to wait 100s, past what")
    assert result.endswith("of 1s): not sent again") and len(hook.received) == 1
