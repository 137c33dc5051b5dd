"""Review fix: the URL guard's refusals (a webhook host that does not resolve, one that resolves to a
private address) give the run a reason, through the notifier's redaction, not "failed: unexpected
TransientError" and an ERROR traceback that carried the webhook's workflow path.

Through the real guarded httpx client; only the DNS answer is scripted (the guard's resolver is
injectable for exactly this)."""

from __future__ import annotations

import logging

import pytest

from sync.adapters.teams import TeamsWebhookNotifier
from sync.adapters.urlguard import UrlGuard, guarded_client
from sync.errors import TransientError
from sync.settings import Settings
from tests.notify import runs

WORKFLOW = "workflows/abc123def456"
SIG = "WEBHOOK-CANARY-4d1e"
PATH = f"/{WORKFLOW}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=x&sv=1.0&sig={SIG}"


def no_dns(host: str, port: int) -> list[str]:
    """What ``system_resolver`` raises when the OS resolver knows no such host."""
    raise TransientError(f"cannot resolve host {host!r}: [Errno -2] Name or service not known")


def private(host: str, port: int) -> list[str]:
    return ["10.0.0.5"]


@pytest.mark.parametrize(
    ("resolver", "reason"),
    [(no_dns, "cannot resolve host"), (private, "10.0.0.5 is private")],
    ids=["dns-failure", "private-address"],
)
def test_url_guard_refusal_is_a_reason_without_the_webhook_path(
    caplog: pytest.LogCaptureFixture, resolver, reason: str
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "https://prod-01.westus.logic.azure.com" + PATH
    client = guarded_client(Settings(), guard=UrlGuard(resolver=resolver))
    notifier = TeamsWebhookNotifier(
        webhook_url_provider=lambda: url, client=client, budget_seconds=0.5, wait_initial=0.05
    )
    with client:
        status = notifier.notify(runs.success_run())
    assert status.startswith("failed: ") and "unexpected" not in status, status
    assert reason in status
    for text in (status, caplog.text, *(str(r.__dict__) for r in caplog.records)):
        assert WORKFLOW not in text
        assert SIG not in text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert any(reason in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
