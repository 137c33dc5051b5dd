"""A connector write that landed without its ledger record, met by a newer spec.

The pending marker carries the write's definitions (``Ledger.mark_pending``), so the next sync
records the lost write as the version it was and merges the new spec against that write's
upstream. Before the evening of 2026-12-06 it merged against the last recorded upstream: what
the lost write brought looked like a connector-side edit and was kept (RELIABILITY.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import sync.adapters.ledger_codec as codec
from sync.adapters.ledger_tables import TableLedger, version_row_key
from sync.errors import TransientError
from sync.lru import Lru
from sync.models import RunSummary, SyncRequest, WorkItem
from sync.runs import execute, run_id_for
from sync.spec.canonical import sha256_hex
from tests.pipeline.conftest import EXAMPLES, SPEC_PATH, Stack

pytestmark = pytest.mark.azurite

API = "contoso-invoicing"


def item_for(svc: Any, event_id: str) -> WorkItem:
    request = SyncRequest(api=API, reason="event", event_id=event_id, targets=("dev",))
    item = WorkItem(run_id=run_id_for(request), api=API, target="dev", request=request)
    svc.ports.ledger.start_run(
        RunSummary(run_id=item.run_id, api=API, request=request, targets=("dev",))
    )
    return item


def serve_v3(stack: Stack) -> None:
    """v1's operations under a new version: the API took back what v2 changed."""
    body = (EXAMPLES / "openapi-v1.yaml").read_text().replace("version: 1.0.0", "version: 3.0.0")
    assert "version: 3.0.0" in body
    stack.server.set_spec(SPEC_PATH, body.encode(), "application/yaml")


def operations(doc: dict[str, Any]) -> set[str]:
    return {op["operationId"] for path in doc["paths"].values() for op in path.values()}


def versions(svc: Any) -> list[int]:
    return [r.version for r in svc.ports.ledger.versions(API, "dev", limit=50)]


def lose_the_record_of(svc: Any, stack: Stack, spec: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Sync ``spec`` to dev with the version transaction failing: the connector is written, the
    ledger keeps the marker. Returns the connector's definition after that write."""
    ledger = svc.ports.ledger
    real = ledger.record_version

    def lost(*args: Any, **kwargs: Any) -> Any:
        raise TransientError("storage went away after the write", where="test")

    monkeypatch.setattr(ledger, "record_version", lost)
    stack.serve(spec)
    with pytest.raises(TransientError):
        execute(item_for(svc, f"evt-{spec}"), svc.pipeline, svc.ports)
    monkeypatch.setattr(ledger, "record_version", real)
    assert ledger.state(API, "dev").pending
    return json.loads(stack.folder("dev").read_text())


@pytest.fixture
def synced_v1(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(codec, "_PACKED", Lru(8))
    stack.serve("openapi-v1.yaml")
    svc = stack.service()
    first = execute(item_for(svc, "evt-v1"), svc.pipeline, svc.ports)
    assert first.result == "updated", first.message
    return svc


def test_the_lost_write_is_recorded_and_the_next_spec_merges_against_its_upstream(
    stack: Stack, synced_v1: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = synced_v1
    v1_ops = operations(json.loads(stack.folder("dev").read_text()))
    written = lose_the_record_of(svc, stack, "openapi-v2.yaml", monkeypatch)
    v2_ops = operations(written)
    assert "PayInvoice" in v2_ops - v1_ops and "SendReminder" in v1_ops - v2_ops
    # The API takes v2 back before the failed item is redelivered.
    serve_v3(stack)
    third = execute(item_for(svc, "evt-v3"), svc.pipeline, svc.ports)
    assert third.result == "updated", third.message
    assert third.version == 3 and third.conflicts == ()
    connector = json.loads(stack.folder("dev").read_text())
    assert operations(connector) == v1_ops  # PayInvoice removed, SendReminder back
    assert versions(svc) == [3, 2, 1]
    lost = svc.ports.ledger.version(API, "dev", 2, include_definitions=True)
    assert lost.reason == "recovered" and lost.applied == written
    assert lost.applied_sha256 == sha256_hex(written)
    assert operations(lost.upstream) == v2_ops
    assert "SendReminder" in lost.summary["removed"] and "PayInvoice" in lost.summary["added"]
    state = svc.ports.ledger.state(API, "dev")
    assert state.pending is None and state.pending_definitions is None
    assert state.version == 3 and state.applied_sha256 == sha256_hex(connector)


def test_the_spec_back_at_the_recorded_etag_is_downloaded_while_a_write_is_pending(
    stack: Stack, synced_v1: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorded ETag describes v1, the connector holds v2: a 304 for v1's very bytes must
    not end the run as "unchanged" (before the evening of 2026-12-06 it did, and the connector
    kept v2)."""
    svc = synced_v1
    v1_ops = operations(json.loads(stack.folder("dev").read_text()))
    lose_the_record_of(svc, stack, "openapi-v2.yaml", monkeypatch)
    stack.serve("openapi-v1.yaml")  # the same bytes, so the same ETag, as v1's version row
    third = execute(item_for(svc, "evt-v1-again"), svc.pipeline, svc.ports)
    assert third.result == "updated", third.message
    assert operations(json.loads(stack.folder("dev").read_text())) == v1_ops
    assert versions(svc) == [3, 2, 1]


def test_the_redelivered_item_of_the_lost_write_then_finds_nothing_to_do(
    stack: Stack, synced_v1: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = synced_v1
    lose_the_record_of(svc, stack, "openapi-v2.yaml", monkeypatch)
    serve_v3(stack)
    assert execute(item_for(svc, "evt-v3"), svc.pipeline, svc.ports).result == "updated"
    before = stack.folder("dev").stat().st_mtime_ns
    again = execute(item_for(svc, "evt-v3-again"), svc.pipeline, svc.ports)
    assert again.result == "unchanged", again.message
    assert stack.folder("dev").stat().st_mtime_ns == before
    assert versions(svc) == [3, 2, 1]


def test_the_same_spec_after_a_lost_write_still_records_one_version(
    stack: Stack, synced_v1: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = synced_v1
    written = lose_the_record_of(svc, stack, "openapi-v2.yaml", monkeypatch)
    before = stack.folder("dev").stat().st_mtime_ns
    again = execute(item_for(svc, "evt-v2-again"), svc.pipeline, svc.ports)
    assert again.result == "updated" and again.version == 2, again.message
    assert stack.folder("dev").stat().st_mtime_ns == before  # not written twice
    assert versions(svc) == [2, 1]
    record = svc.ports.ledger.version(API, "dev", 2, include_definitions=True)
    assert record.reason != "recovered" and record.applied == written


def test_a_marker_saved_without_definitions_merges_as_before(
    stack: Stack, synced_v1: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A marker from before the evening of 2026-12-06 (no definitions): nothing to recover, no
    error."""
    svc = synced_v1
    lose_the_record_of(svc, stack, "openapi-v2.yaml", monkeypatch)
    ledger = svc.ports.ledger
    state = ledger.state(API, "dev")
    old = json.loads(state.pending)
    marker = json.dumps({"run": old["run"], "sha256": old["sha256"], "at": old["at"]})
    ledger.save_state(API, "dev", state.evolve(pending=marker, pending_definitions=None))
    serve_v3(stack)
    third = execute(item_for(svc, "evt-v3"), svc.pipeline, svc.ports)
    assert third.result == "updated" and third.version == 2, third.message
    assert versions(svc) == [2, 1]
    assert ledger.state(API, "dev").pending is None


def test_definitions_that_do_not_match_their_marker_are_named_and_not_used(
    stack: Stack, synced_v1: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    svc = synced_v1
    lose_the_record_of(svc, stack, "openapi-v2.yaml", monkeypatch)
    ledger = svc.ports.ledger
    state = ledger.state(API, "dev")
    marker = json.loads(state.pending)
    marker["upstream_sha256"] = "0" * 64  # edited by hand, or another tool's
    ledger.save_state(API, "dev", state.evolve(pending=json.dumps(marker)))
    with pytest.raises(codec.LedgerCorruptError, match=r"pending marker of .*dev"):
        ledger.pending_write(API, "dev", ledger.state(API, "dev"))
    serve_v3(stack)
    third = execute(item_for(svc, "evt-v3"), svc.pipeline, svc.ports)
    assert third.result == "updated" and third.version == 2, third.message
    assert "pending write of contoso-invoicing/dev not recovered" in caplog.text


def test_the_definitions_survive_other_saves_of_the_row_and_go_with_the_marker(
    stack: Stack, synced_v1: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed item's outcome is saved on the state row (read, evolve, save): the marker's
    definitions must survive that, and leave with the marker."""
    svc = synced_v1
    written = lose_the_record_of(svc, stack, "openapi-v2.yaml", monkeypatch)
    ledger = svc.ports.ledger
    state = ledger.state(API, "dev")
    ledger.save_state(API, "dev", state.evolve(last_outcome="failed", last_message="why"))
    kept = ledger.pending_write(API, "dev", ledger.state(API, "dev"))
    assert kept is not None and kept.applied == written
    assert kept.applied_sha256 == sha256_hex(written)
    cleared = ledger.state(API, "dev")
    ledger.save_state(API, "dev", cleared.evolve(pending=None))
    entity = ledger._table().get_entity(ledger_pk(), "state")
    assert not [name for name in entity if name.startswith("PendingDef")]


def test_definitions_too_big_to_go_inline_go_to_a_blob(
    stack: Stack, synced_v1: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(codec, "INLINE_LIMIT", 500)  # the pair is ~840 bytes, run outcomes ~350
    svc = synced_v1
    written = lose_the_record_of(svc, stack, "openapi-v2.yaml", monkeypatch)
    ledger = svc.ports.ledger
    state = ledger.state(API, "dev")
    assert json.loads(state.pending)["blob"].startswith(f"{API}/dev/v0000000002-")
    assert state.pending_definitions is None
    assert ledger.pending_write(API, "dev", state).applied == written
    serve_v3(stack)
    third = execute(item_for(svc, "evt-v3"), svc.pipeline, svc.ports)
    assert third.result == "updated" and third.version == 3, third.message
    assert versions(svc) == [3, 2, 1]
    # the markers' blobs are the versions' own: nothing is left that no row names
    named = set()
    for number in (2, 3):
        row = ledger._table().get_entity(ledger_pk(), version_row_key(number))
        named.add(row["DefBlob"])
    assert {blob.name for blob in ledger._blobs().list_blobs()} == named


def ledger_pk() -> str:
    from sync.adapters.ledger_tables import partition_key

    return partition_key(API, "dev")


def test_the_marker_is_saved_with_no_request_more_than_before(
    stack: Stack, synced_v1: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The definitions ride in the marker's own request: one state-row write before the write,
    and no blob for a definition that fits the row."""
    calls: list[str] = []
    for name in ("save_state", "_save_state", "mark_pending", "record_version", "acquire_lease"):
        real = getattr(TableLedger, name)

        def counting(self: Any, *args: Any, _name: str = name, _real: Any = real) -> Any:
            calls.append(_name)
            return _real(self, *args)

        monkeypatch.setattr(TableLedger, name, counting)
    stack.serve("openapi-v2.yaml")
    second = execute(item_for(synced_v1, "evt-v2"), synced_v1.pipeline, synced_v1.ports)
    assert second.result == "updated", second.message
    assert calls == ["acquire_lease", "mark_pending", "_save_state", "record_version"]
    assert synced_v1.ports.ledger._container_client is None  # no blob service touched


def test_a_run_stopped_after_recording_the_lost_write_still_downloads_the_spec(
    stack: Stack, synced_v1: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recovered version must not keep the spec validators of the version before it: a run
    that stops between that record and its own write (a storage blip on the new marker) would
    otherwise be answered 304 for v1's bytes and leave the lost v2 write in place for good."""
    svc = synced_v1
    v1_ops = operations(json.loads(stack.folder("dev").read_text()))
    lose_the_record_of(svc, stack, "openapi-v2.yaml", monkeypatch)
    stack.serve("openapi-v1.yaml")  # v1's very bytes: v1's ETag
    real, calls = TableLedger.mark_pending, []

    def blip_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise TransientError("table blinked", where="ledger.mark_pending")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(TableLedger, "mark_pending", blip_once)
    item = item_for(svc, "evt-v1-again")
    with pytest.raises(TransientError):
        execute(item, svc.pipeline, svc.ports)
    state = svc.ports.ledger.state(API, "dev")
    assert state.version == 2 and not state.pending and state.spec_etag is None
    again = execute(item, svc.pipeline, svc.ports)  # the queue's redelivery
    assert again.result == "updated", again.message
    assert operations(json.loads(stack.folder("dev").read_text())) == v1_ops
    assert versions(svc) == [3, 2, 1]


def test_a_write_the_platform_refused_leaves_no_marker_behind(
    stack: Stack, synced_v1: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker of a write that never landed (the connector still holds the last recorded
    version) is cleared by the next run: kept, the same spec recorded an empty version, and every
    state read carried its definitions."""
    from sync.adapters.folder_target import FolderTarget
    from sync.errors import TargetError

    svc = synced_v1
    before = stack.folder("dev").read_text()
    real_write = FolderTarget.write

    def refused(self: Any, definition: Any, current: Any) -> Any:
        raise TargetError("PATCH refused: 400 InvalidRequestContent", where="test")

    monkeypatch.setattr(FolderTarget, "write", refused)
    stack.serve("openapi-v2.yaml")
    assert execute(item_for(svc, "evt-v2"), svc.pipeline, svc.ports).result == "failed"
    monkeypatch.setattr(FolderTarget, "write", real_write)
    assert svc.ports.ledger.state(API, "dev").pending_definitions
    stack.serve("openapi-v1.yaml")  # the API went back: nothing to write
    again = execute(item_for(svc, "evt-v1-redeploy"), svc.pipeline, svc.ports)
    assert again.result == "unchanged", again.message
    assert stack.folder("dev").read_text() == before and versions(svc) == [1]
    state = svc.ports.ledger.state(API, "dev")
    assert state.pending is None and state.pending_definitions is None


def test_a_lost_first_write_is_recorded_with_its_summary_and_info_version(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(codec, "_PACKED", Lru(8))
    svc = stack.service()
    lose_the_record_of(svc, stack, "openapi-v1.yaml", monkeypatch)
    stack.serve("openapi-v2.yaml")
    assert execute(item_for(svc, "evt-v2"), svc.pipeline, svc.ports).result == "updated"
    first = svc.ports.ledger.version(API, "dev", 1)
    assert first.reason == "recovered" and first.info_version == "1.0.0"
    assert "SendReminder" in first.summary["added"]
    assert versions(svc) == [2, 1]
