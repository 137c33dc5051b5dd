"""A row read back without an ETag is refused: every later write of it is conditional on the
ETag, and a state row without one would read as "no row yet" (the next save would create, not
replace, and fail on the row that exists)."""

from __future__ import annotations

import pytest
from azure.data.tables import TableEntity

from sync.adapters.ledger_tables import TableLedger
from sync.errors import PermanentError
from sync.models import TargetState


def test_a_state_row_without_an_etag_is_refused() -> None:
    row = TableEntity(PartitionKey="api~t00", RowKey="state", Version=3)
    with pytest.raises(PermanentError, match="without its ETag"):
        TableLedger._state_from(row)


def test_a_state_row_with_its_etag_reads() -> None:
    row = TableEntity(PartitionKey="api~t00", RowKey="state", Version=3)
    row._metadata["etag"] = "W/\"datetime'2026-12-07T15%3A00%3A00Z'\""
    state = TableLedger._state_from(row)
    assert isinstance(state, TargetState)
    assert state.etag == row.metadata["etag"]
    assert state.version == 3
