"""Every ledger call that reaches storage reports an outage as the service's TransientError,
never as a raw azure-core exception: the pipeline, the CLI and the queue trigger sort failures
by that tree (a raw error ended ``sync run`` with a traceback and lost the other targets)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest

from sync.adapters.ledger_tables import TableLease, TableLedger
from sync.errors import TransientError
from sync.models import (
    RunSummary,
    SyncRequest,
    TargetOutcome,
    TargetState,
    VersionRecord,
)
from sync.pending_write import PendingWrite
from sync.spec.canonical import sha256_hex
from tests.support.azurite import ACCOUNT, KEY

RUN_ID = "20260101T000000Z-0123456789abcdef"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def unreachable() -> TableLedger:
    port = closed_port()
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )
    return TableLedger(
        connection_string=connection,
        table_name="ledgerdown",
        container="ledger-down",
        client_options={"retry_total": 0, "connection_timeout": 2},
    )


REQUEST = SyncRequest(api="api", reason="event", event_id="evt-1", targets=("t",))
RUN = RunSummary(run_id=RUN_ID, api="api", request=REQUEST, targets=("t",))
RECORD = VersionRecord(
    api="api",
    target="t",
    version=1,
    reason="event",
    outcome="updated",
    run_id=RUN_ID,
    created_at="2026-01-01T00:00:00Z",
    upstream={"swagger": "2.0"},
    applied={"swagger": "2.0"},
)
LEASE = TableLease(api="api", target="t", owner="me", expires="2026-01-01T00:10:00Z", etag='"x"')
OUTCOME = TargetOutcome(api="api", target="t", result="updated")

PENDING = PendingWrite(
    run_id=RUN_ID,
    at="2026-12-07T00:00:00Z",
    upstream={"swagger": "2.0"},
    applied={"swagger": "2.0"},
    upstream_sha256=sha256_hex({"swagger": "2.0"}),
    applied_sha256=sha256_hex({"swagger": "2.0"}),
)
PENDING_IN_BLOB = TargetState(  # a marker whose definitions went to a blob: read from there
    pending=json.dumps(
        {
            "run": RUN_ID,
            "sha256": "0" * 64,
            "upstream_sha256": "0" * 64,
            "upstream_len": 10,
            "applied_len": -2,
            "bytes": 10,
            "blob": "api/t/pending-0000000000000000.zlib",
        }
    )
)
CALLS: dict[str, Callable[[TableLedger], Any]] = {
    "state": lambda ledger: ledger.state("api", "t"),
    "save_state": lambda ledger: ledger.save_state("api", "t", TargetState()),
    "mark_pending": lambda ledger: ledger.mark_pending("api", "t", TargetState(), PENDING),
    "pending_write": lambda ledger: ledger.pending_write("api", "t", PENDING_IN_BLOB),
    "acquire_lease": lambda ledger: ledger.acquire_lease("api", "t", "me", 60),
    "release_lease": lambda ledger: ledger.release_lease(LEASE),
    "seen_event": lambda ledger: ledger.seen_event("api", "t", "evt-1"),
    "record_version": lambda ledger: ledger.record_version(RECORD, TargetState(), "evt-1"),
    "version": lambda ledger: ledger.version("api", "t", 1, include_definitions=True),
    "versions": lambda ledger: ledger.versions("api", "t"),
    "start_run": lambda ledger: ledger.start_run(RUN),
    "get_run": lambda ledger: ledger.get_run(RUN_ID),
    "finish_item": lambda ledger: ledger.finish_item(RUN_ID, OUTCOME),
    "mark_notified": lambda ledger: ledger.mark_notified(RUN_ID, "written"),
    "debounce": lambda ledger: ledger.debounce("api:evt", 10),
    "stage_spec": lambda ledger: ledger.stage_spec(b"openapi: 3.0.3\n"),
    "staged_spec": lambda ledger: ledger.staged_spec("sha256:" + "0" * 64),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_an_unreachable_store_is_a_transient_error_naming_the_call(
    unreachable: TableLedger, name: str
) -> None:
    with pytest.raises(TransientError) as raised:
        CALLS[name](unreachable)
    assert raised.value.where.startswith(f"ledger.{name}")


def test_every_storage_call_of_the_ledger_is_covered() -> None:
    public = {
        name
        for name in vars(TableLedger)
        if not name.startswith("_") and callable(getattr(TableLedger, name))
    }
    assert public - {"from_settings", "prepare_definitions"} == set(CALLS)
