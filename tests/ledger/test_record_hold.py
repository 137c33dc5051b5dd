"""``record_version(..., hold=...)`` on Azurite: the hold runs before anything is sent, may keep
the prepared transaction waiting, and what it raises leaves storage untouched."""

from __future__ import annotations

import threading
import time

import pytest

from sync.adapters import ledger_codec as codec
from sync.adapters.ledger_tables import TableLedger, partition_key, version_row_key
from sync.early_record import Gate, RecordWithheld
from sync.models import TargetState
from tests.ledger.test_large_definitions import (
    API,
    TARGET,
    _container_exists,
    _pair_near,
    _record,
)

pytestmark = pytest.mark.azurite

UP = {"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {}}
AP = {"swagger": "2.0", "info": {"title": "t", "version": "2"}, "paths": {}}


def _version_row_exists(ledger: TableLedger, number: int = 1) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        ledger._table().get_entity(partition_key(API, TARGET), version_row_key(number))
    except ResourceNotFoundError:
        return False
    return True


def test_a_held_transaction_reaches_storage_only_when_released(ledger):
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        assert release.wait(10)

    result: list[TargetState] = []
    worker = threading.Thread(
        target=lambda: result.append(
            ledger.record_version(_record(UP, AP), TargetState(version=1), "evt-1", hold=hold)
        )
    )
    worker.start()
    try:
        assert entered.wait(10)
        assert not _version_row_exists(ledger)  # prepared and held: nothing sent
        assert ledger.state(API, TARGET).etag is None
    finally:
        release.set()
        worker.join(10)
    assert result and result[0].etag  # the state row's ETag, as without a hold
    assert _version_row_exists(ledger)
    assert ledger.state(API, TARGET).version == 1


def test_a_closed_gate_writes_nothing_and_is_not_turned_into_a_storage_error(ledger):
    ledger.save_state(API, TARGET, TargetState(version=0, connector_id="c1"))
    before = ledger.state(API, TARGET)
    gate = Gate()
    gate.close()
    with pytest.raises(RecordWithheld):
        ledger.record_version(_record(UP, AP), before.evolve(version=1), "evt-1", hold=gate.wait)
    assert not _version_row_exists(ledger)
    after = ledger.state(API, TARGET)
    assert (after.etag, after.version) == (before.etag, 0)
    assert not ledger.seen_event(API, TARGET, "evt-1")


def test_the_hold_comes_before_a_large_pair_goes_to_its_blob(azurite, ledger):
    up, ap = _pair_near(codec.INLINE_LIMIT + 100_000)
    assert len(codec.pack_pair(up, ap).payload) > codec.INLINE_LIMIT  # precondition: a blob
    gate = Gate()
    gate.close()
    with pytest.raises(RecordWithheld):
        ledger.record_version(_record(up, ap), TargetState(version=1), "evt-1", hold=gate.wait)
    assert not _container_exists(azurite, ledger)  # no blob for a record never sent
    assert not _version_row_exists(ledger)
    opened = Gate()
    opened.open()
    ledger.record_version(_record(up, ap), TargetState(version=1), "evt-1", hold=opened.wait)
    assert ledger.version(API, TARGET, 1, include_definitions=True).applied == ap


def test_the_resend_without_a_lost_lease_passes_the_opened_hold_again(ledger):
    """The lease expired and was taken over: the transaction is sent again without its release;
    the hook runs before each send, and an opened gate lets both through."""
    ledger.save_state(API, TARGET, TargetState(version=0, connector_id="c1"))
    lease = ledger.acquire_lease(API, TARGET, "me", 0.2)
    time.sleep(0.3)
    ledger.acquire_lease(API, TARGET, "someone-else", 60)  # took it over once it expired
    calls: list[int] = []
    gate = Gate()
    gate.open()

    def hold() -> None:
        calls.append(1)
        gate.wait()

    state = ledger.state(API, TARGET)
    saved = ledger.record_version(
        _record(UP, AP), state.evolve(version=1), "evt-1", lease, hold=hold
    )
    assert saved.version == 1 and _version_row_exists(ledger)
    assert len(calls) == 2  # once per send: the refused one and the one without the lease
