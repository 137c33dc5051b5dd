"""A row read back without an ETag is refused: every later write of it is conditional on the
ETag, and a state row without one would read as "no row yet" (the next save would create, not
replace, and fail on the row that exists), while the SDK's conditional update would raise a
bare ValueError."""

from __future__ import annotations

import pytest
from azure.data.tables import TableEntity

from sync.adapters.ledger_tables import TableLedger, _etag
from sync.errors import PermanentError
from sync.models import TargetState

ETAG = "W/\"datetime'2026-12-07T15%3A00%3A00Z'\""


def _row(etag: str | None, **values: object) -> TableEntity:
    row = TableEntity(PartitionKey="api~t00", RowKey="state", **values)
    # the SDK's default metadata is a class attribute: give this row its own
    row._metadata = {"etag": etag, "timestamp": None}
    return row


def test_a_state_row_without_an_etag_is_refused() -> None:
    with pytest.raises(PermanentError, match="without its ETag") as caught:
        TableLedger._state_from(_row(None, Version=3))
    assert caught.value.where == "ledger.state"


def test_a_state_row_with_its_etag_reads() -> None:
    state = TableLedger._state_from(_row(ETAG, Version=3))
    assert isinstance(state, TargetState)
    assert state.etag == ETAG
    assert state.version == 3


@pytest.mark.parametrize("etag", [None, ""])
def test_any_row_without_an_etag_names_the_row_and_the_caller(etag: str | None) -> None:
    with pytest.raises(PermanentError, match="'state' without its ETag") as caught:
        _etag(_row(etag), "ledger.lease(api/t00)")
    assert caught.value.where == "ledger.lease(api/t00)"


def test_a_default_entity_has_no_etag_of_its_own() -> None:
    """What the tests above rely on: an entity the SDK did not read has none."""
    assert TableEntity(PartitionKey="p", RowKey="r").metadata["etag"] is None
