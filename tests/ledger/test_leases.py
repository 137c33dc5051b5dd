"""Leases: one owner at a time, expiry lets the next in, release only what is still ours."""

from __future__ import annotations

import threading
import time

import pytest

from sync.adapters.ledger_tables import TableLedger
from sync.errors import LeaseTakenError

pytestmark = pytest.mark.azurite

API, TARGET = "contoso-invoicing", "prod"


def test_two_workers_race_exactly_one_wins(ledger, azurite):
    # two ledgers = two worker processes, each with its own client
    other = TableLedger(
        connection_string=azurite.connection_string,
        table_name=ledger.table_name,
        container=ledger.container,
    )
    barrier = threading.Barrier(2)
    won: list[str] = []
    lost: list[LeaseTakenError] = []

    def claim(store: TableLedger, owner: str) -> None:
        barrier.wait()
        try:
            store.acquire_lease(API, TARGET, owner, 60)
            won.append(owner)
        except LeaseTakenError as exc:
            lost.append(exc)

    threads = [
        threading.Thread(target=claim, args=(ledger, "worker-a")),
        threading.Thread(target=claim, args=(other, "worker-b")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert len(lost) == 1
    assert lost[0].transient


def test_held_lease_names_owner_and_expiry(ledger):
    lease = ledger.acquire_lease(API, TARGET, "worker-a", 60)
    with pytest.raises(LeaseTakenError, match="held by worker-a until") as info:
        ledger.acquire_lease(API, TARGET, "worker-b", 60)
    assert lease.expires in str(info.value)
    assert 0 < info.value.retry_after <= 60


def test_expired_lease_lets_the_next_owner_in(ledger):
    ledger.acquire_lease(API, TARGET, "worker-a", 0.2)
    time.sleep(0.3)
    lease = ledger.acquire_lease(API, TARGET, "worker-b", 60)
    assert lease.owner == "worker-b"
    with pytest.raises(LeaseTakenError, match="worker-b"):
        ledger.acquire_lease(API, TARGET, "worker-a", 60)


def test_same_owner_refreshes(ledger):
    first = ledger.acquire_lease(API, TARGET, "worker-a", 30)
    again = ledger.acquire_lease(API, TARGET, "worker-a", 600)
    assert again.etag != first.etag
    assert again.expires > first.expires


def test_release_frees_the_target(ledger):
    lease = ledger.acquire_lease(API, TARGET, "worker-a", 60)
    ledger.release_lease(lease)
    assert ledger.acquire_lease(API, TARGET, "worker-b", 60).owner == "worker-b"


def test_release_does_not_delete_someone_elses_lease(ledger):
    stale = ledger.acquire_lease(API, TARGET, "worker-a", 0.2)
    time.sleep(0.3)
    ledger.acquire_lease(API, TARGET, "worker-b", 60)
    ledger.release_lease(stale)  # worker-a finishes late
    with pytest.raises(LeaseTakenError, match="worker-b"):
        ledger.acquire_lease(API, TARGET, "worker-c", 60)


def test_release_of_a_missing_lease_is_quiet(ledger):
    lease = ledger.acquire_lease(API, TARGET, "worker-a", 60)
    ledger.release_lease(lease)
    ledger.release_lease(lease)


@pytest.mark.parametrize("seconds", [0, -5])
def test_non_positive_lease_length_is_refused(ledger, seconds):
    from sync.errors import PermanentError

    with pytest.raises(PermanentError, match="lease length"):
        ledger.acquire_lease(API, TARGET, "worker-a", seconds)


def test_release_uses_the_claim_it_was_given(ledger):
    """Deleting under the claim's ETag: an older claim of the same owner, since refreshed, does
    not remove the newer one; the refreshed claim does."""
    first = ledger.acquire_lease(API, TARGET, "worker-a", 60)
    again = ledger.acquire_lease(API, TARGET, "worker-a", 60)
    ledger.release_lease(first)
    with pytest.raises(LeaseTakenError, match="worker-a"):
        ledger.acquire_lease(API, TARGET, "worker-b", 60)
    ledger.release_lease(again)
    assert ledger.acquire_lease(API, TARGET, "worker-b", 60).owner == "worker-b"
