"""Definitions near the Table Storage limits: many chunks inline, blob beyond, corruption caught."""

from __future__ import annotations

import uuid

import pytest

from sync.adapters import ledger_codec as codec
from sync.adapters.ledger_tables import TableLedger, partition_key, version_row_key
from sync.models import TargetState, VersionRecord
from sync.spec.canonical import sha256_hex
from tests.ledger.docs import noisy_spec

pytestmark = pytest.mark.azurite

API, TARGET = "contoso-invoicing", "prod"


def _record(upstream, applied, number: int = 1) -> VersionRecord:
    return VersionRecord(
        api=API,
        target=TARGET,
        version=number,
        reason="event",
        outcome="updated",
        run_id="run1",
        created_at="2026-01-01T00:00:00Z",
        event_id=f"evt-{number}",
        upstream_sha256=sha256_hex(upstream),
        applied_sha256=sha256_hex(applied),
        upstream=upstream,
        applied=applied,
    )


def _pair_near(compressed: int) -> tuple[dict, dict]:
    """Two different incompressible specs whose packed pair is about ``compressed`` bytes."""
    raw = int(compressed / 0.76 / 2)
    return noisy_spec(raw, 11), noisy_spec(raw, 12)


def _row(ledger: TableLedger, number: int = 1) -> dict:
    return ledger._table().get_entity(partition_key(API, TARGET), version_row_key(number))


def test_pair_just_under_the_inline_limit_is_chunked_in_the_row(azurite, ledger):
    up, ap = _pair_near(codec.INLINE_LIMIT - 20_000)
    packed = len(codec.pack_pair(up, ap).payload)
    assert codec.INLINE_LIMIT - 3 * codec.CHUNK_BYTES < packed <= codec.INLINE_LIMIT  # precondition
    ledger.record_version(_record(up, ap), TargetState(version=1), "evt-1")
    row = _row(ledger)
    assert "DefBlob" not in row
    assert row["DefChunks"] == -(-packed // codec.CHUNK_BYTES) >= 8
    got = ledger.version(API, TARGET, 1, include_definitions=True)
    assert got.upstream == up
    assert got.applied == ap
    assert not _container_exists(azurite, ledger)  # nothing went to blob storage


def _container_exists(azurite, ledger: TableLedger) -> bool:
    from azure.storage.blob import BlobServiceClient

    svc = BlobServiceClient.from_connection_string(azurite.connection_string)
    return any(c.name == ledger.container for c in svc.list_containers())


def test_pair_over_the_limit_goes_to_a_blob(ledger):
    up, ap = _pair_near(codec.INLINE_LIMIT + 100_000)
    assert len(codec.pack_pair(up, ap).payload) > codec.INLINE_LIMIT  # precondition
    ledger.record_version(_record(up, ap), TargetState(version=1), "evt-1")
    row = _row(ledger)
    assert row["DefChunks"] == 0
    assert row["DefBlob"].startswith(f"{API}/{TARGET}/v0000000001-")
    assert not any(k.startswith("Def0") for k in row)
    assert [b.name for b in ledger._blobs().list_blobs()] == [row["DefBlob"]]
    got = ledger.version(API, TARGET, 1, include_definitions=True)
    assert got.upstream == up
    assert got.applied == ap
    listed = ledger.versions(API, TARGET)
    assert [r.version for r in listed] == [1]


def test_corrupted_chunk_is_detected(ledger):
    up, ap = _pair_near(200_000)
    ledger.record_version(_record(up, ap), TargetState(version=1), "evt-1")
    row = _row(ledger)
    chunk = bytearray(row["Def01"])
    chunk[100] ^= 0xFF
    row["Def01"] = bytes(chunk)
    ledger._table().update_entity(row)
    with pytest.raises(codec.LedgerCorruptError) as info:
        ledger.version(API, TARGET, 1, include_definitions=True)
    assert f"{API}~{TARGET}" in str(info.value)
    assert ledger.version(API, TARGET, 1).version == 1  # metadata stays readable


def test_missing_chunk_is_detected(ledger):
    up, ap = _pair_near(200_000)
    ledger.record_version(_record(up, ap), TargetState(version=1), "evt-1")
    row = _row(ledger)
    from azure.data.tables import UpdateMode

    del row["Def02"]
    ledger._table().update_entity(row, mode=UpdateMode.REPLACE)
    with pytest.raises(codec.LedgerCorruptError, match="Def02"):
        ledger.version(API, TARGET, 1, include_definitions=True)


def test_corrupted_or_missing_blob_is_detected(ledger):
    up, ap = _pair_near(codec.INLINE_LIMIT + 100_000)
    ledger.record_version(_record(up, ap), TargetState(version=1), "evt-1")
    name = _row(ledger)["DefBlob"]
    blob = ledger._blobs().get_blob_client(name)
    data = bytearray(blob.download_blob().readall())
    data[-10] ^= 0xFF
    blob.upload_blob(bytes(data), overwrite=True)
    with pytest.raises(codec.LedgerCorruptError):
        ledger.version(API, TARGET, 1, include_definitions=True)
    blob.delete_blob()
    with pytest.raises(codec.LedgerCorruptError, match="missing"):
        ledger.version(API, TARGET, 1, include_definitions=True)


def test_entity_too_large_is_why_the_inline_limit_exists(azurite):
    """Probe: 13 x 60 KiB in one entity is refused with EntityTooLarge; our maximum row fits.

    Azurite 3.35 checks the entity size on update/merge (upsert) only, not on insert, so the probe
    upserts; Azure checks both and counts binary as raw bytes, which our maximum row is far below.
    """
    from azure.core.exceptions import HttpResponseError
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(
        azurite.connection_string, table_name=f"probe{uuid.uuid4().hex[:12]}"
    )
    table.create_table()
    too_big = {"PartitionKey": "p", "RowKey": "big"}
    too_big.update({f"Def{i:02d}": b"\x01" * codec.CHUNK_BYTES for i in range(13)})
    with pytest.raises(HttpResponseError) as info:
        table.upsert_entity(too_big)
    assert info.value.error_code == "EntityTooLarge"
    fits = {"PartitionKey": "p", "RowKey": "max", "Summary": "s" * codec.MAX_STRING_CHARS}
    fits.update(codec.chunk_properties(b"\x02" * codec.INLINE_LIMIT))
    table.upsert_entity(fits)
    table.delete_table()
