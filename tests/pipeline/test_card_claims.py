"""Every complete run gets its card, also when the worker that completed it never sent it: its
process died between the fan-in and the card, or the answer to the fan-in's write was lost. The
write that completes the run claims the card; a later delivery finds the claim and either waits
for it (the claimant may be sending now) or, once the notifier's whole time budget has passed,
takes it over. Through the queue trigger, as the Functions host calls it, on Azurite."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sync.adapters import ledger_tables
from sync.adapters.ledger_tables import NOTIFY_CLAIM_SECONDS
from sync.errors import NotificationPendingError
from tests.pipeline.test_function_app import call
from tests.pipeline.test_lease_wait import API, delivery, started_item

pytestmark = pytest.mark.azurite


class Died(BaseException):
    """The worker's process ends here (not an error the trigger could handle)."""


def _later(monkeypatch, seconds: float) -> None:
    ahead = datetime.now(UTC) + timedelta(seconds=seconds)
    monkeypatch.setattr(ledger_tables, "utcnow", lambda: ahead)


def test_a_run_whose_worker_died_before_the_card_gets_it_from_a_later_delivery(env, monkeypatch):
    env.serve("openapi-v1.yaml")
    svc = env.service()
    item = started_item(svc)

    def die(run, ports):
        raise Died

    with monkeypatch.context() as patch:
        patch.setattr("sync.runs.notify", die)
        with pytest.raises(Died):
            call("work_item", delivery(item, dequeue_count=1))
    ledger = svc.ports.ledger
    assert ledger.get_run(item.run_id).complete
    assert env.cards() == []

    # The host delivers again 30 s later: the claim is younger than the notifier's budget, so
    # the claimant may still be sending; the delivery fails and the host asks again later.
    with pytest.raises(NotificationPendingError, match="claimed"):
        call("work_item", delivery(item, dequeue_count=2))
    assert env.cards() == []

    _later(monkeypatch, NOTIFY_CLAIM_SECONDS + 1)
    assert call("work_item", delivery(item, dequeue_count=3)) is None
    [card] = env.cards()
    assert item.run_id in json.dumps(card) and "updated" in json.dumps(card)
    run = ledger.get_run(item.run_id)
    assert run.notified and [o.result for o in run.outcomes] == ["updated"]
    assert ledger.state(API, "dev").version == 1  # the connector was written once

    assert call("work_item", delivery(item, dequeue_count=4)) is None  # a duplicate: nothing
    assert len(env.cards()) == 1


def test_a_claim_outlives_the_notifiers_whole_budget():
    """A live claimant has marked its card before anyone may take the claim over."""
    import inspect

    from sync.adapters.teams import TeamsWebhookNotifier

    budget = inspect.signature(TeamsWebhookNotifier).parameters["budget_seconds"].default
    assert budget + 20 <= NOTIFY_CLAIM_SECONDS
