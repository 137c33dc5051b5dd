"""Fixtures for the ledger and queue tests: a fresh table/container/queue per test on Azurite.

Other engineers run the suite at the same time against their own Azurite, and tests in one session
share one emulator, so every name carries a uuid suffix.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sync.adapters.ledger_tables import TableLedger
from sync.adapters.queue_storage import StorageWorkQueue


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def edit_row(ledger: TableLedger, pk: str, rk: str, change: dict[str, Any]) -> None:
    """Edit a stored row as a person or another tool might: each value of ``change`` replaces
    that property, None removes it."""
    from azure.data.tables import UpdateMode

    table = ledger._table()
    row = table.get_entity(pk, rk)
    for key, value in change.items():
        if value is None:
            row.pop(key, None)
        else:
            row[key] = value
    table.update_entity(row, mode=UpdateMode.REPLACE)


@pytest.fixture
def ledger(azurite) -> TableLedger:
    return TableLedger(
        connection_string=azurite.connection_string,
        table_name=unique("ledger"),
        container=unique("ledger-"),
    )


@pytest.fixture
def queue(azurite) -> StorageWorkQueue:
    return StorageWorkQueue(connection_string=azurite.connection_string, queue_name=unique("work-"))
