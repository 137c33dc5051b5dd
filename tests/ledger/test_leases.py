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


# -- the release inside the version transaction ----------------------------------------------------


def _record_under(ledger: TableLedger, lease, number: int = 1, state=None):
    from sync.models import TargetState
    from tests.ledger.test_state_and_versions import record

    rec = record(number, target=TARGET)
    state = state if state is not None else TargetState()
    return ledger.record_version(rec, state.evolve(version=number), rec.event_id, lease)


def _lease_row(ledger: TableLedger):
    from sync.adapters.ledger_tables import LEASE_ROW, partition_key

    return ledger._get(partition_key(API, TARGET), LEASE_ROW)


def _deletes(ledger: TableLedger, monkeypatch) -> list[str]:
    table = ledger._table()
    seen: list[str] = []
    real = table.delete_entity

    def counting(*args, **kwargs):
        seen.append(args[1] if len(args) > 1 else kwargs.get("row_key"))
        return real(*args, **kwargs)

    monkeypatch.setattr(table, "delete_entity", counting)
    return seen


def test_the_version_transaction_releases_the_lease_it_is_given(ledger, monkeypatch):
    lease = ledger.acquire_lease(API, TARGET, "worker-a", 60)
    _record_under(ledger, lease)
    assert lease.released and _lease_row(ledger) is None
    deletes = _deletes(ledger, monkeypatch)
    ledger.release_lease(lease)
    assert deletes == []  # nothing left to release: no request
    assert ledger.acquire_lease(API, TARGET, "worker-b", 60).owner == "worker-b"
    assert ledger.version(API, TARGET, 1) is not None


def test_a_lease_taken_over_meanwhile_is_left_alone_and_the_version_still_recorded(ledger):
    stale = ledger.acquire_lease(API, TARGET, "worker-a", 0.2)
    time.sleep(0.3)
    ledger.acquire_lease(API, TARGET, "worker-b", 60)
    state = _record_under(ledger, stale)  # worker-a finishes late
    assert state.version == 1 and ledger.version(API, TARGET, 1) is not None
    assert not stale.released
    assert _lease_row(ledger)["Owner"] == "worker-b"
    ledger.release_lease(stale)  # its own request, refused by the ETag as before
    assert _lease_row(ledger)["Owner"] == "worker-b"


def test_a_lease_row_already_gone_does_not_stop_the_record(ledger):
    lease = ledger.acquire_lease(API, TARGET, "worker-a", 60)
    ledger.release_lease(lease)  # e.g. an operator cleared it
    assert _record_under(ledger, lease).version == 1
    assert ledger.version(API, TARGET, 1) is not None


def test_a_refused_transaction_releases_nothing(ledger, monkeypatch):
    from sync.adapters.ledger_tables import ConcurrencyError
    from sync.models import TargetState

    first = ledger.save_state(API, TARGET, TargetState())
    ledger.save_state(API, TARGET, first.evolve(last_message="moved on"))
    lease = ledger.acquire_lease(API, TARGET, "worker-a", 60)
    stale_state = first  # its ETag no longer matches the row
    table = ledger._table()
    sent: list[int] = []
    real = table.submit_transaction
    monkeypatch.setattr(table, "submit_transaction", lambda ops: sent.append(len(ops)) or real(ops))
    with pytest.raises(ConcurrencyError):
        _record_under(ledger, lease, state=stale_state)
    assert sent == [4]  # the state row refused it: not sent again without the lease
    assert not lease.released
    assert _lease_row(ledger)["Owner"] == "worker-a"  # the item's finally releases it
    ledger.release_lease(lease)
    assert _lease_row(ledger) is None


def test_the_lease_of_another_target_is_not_part_of_the_transaction(ledger):
    other = ledger.acquire_lease(API, "another-target", "worker-a", 60)
    _record_under(ledger, other)
    assert not other.released
    ledger.release_lease(other)
