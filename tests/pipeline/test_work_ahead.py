"""Work an update does while it waits on the network: the diff it will most likely need starts as
soon as the connector is read, and the version row's compressed definitions while the connector is
written. Both only move work: each is done once per update, and what is recorded is the same."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import sync.adapters.ledger_codec as codec
import sync.pipeline as pipeline
from sync import spec
from sync.lru import Lru
from sync.models import RunSummary, SyncRequest, WorkItem
from sync.runs import execute, run_id_for
from sync.spec.canonical import sha256_hex
from tests.pipeline.conftest import Stack

API = "contoso-invoicing"


def item_for(svc: Any, target: str, event_id: str) -> WorkItem:
    request = SyncRequest(api=API, reason="event", event_id=event_id, targets=(target,))
    item = WorkItem(run_id=run_id_for(request), api=API, target=target, request=request)
    svc.ports.ledger.start_run(
        RunSummary(run_id=item.run_id, api=API, request=request, targets=(target,))
    )
    return item


@pytest.fixture
def first_sync(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A service whose dev connector holds v1 of the spec, with caches no other test filled."""
    monkeypatch.setattr(pipeline, "_DIFFS", Lru(16))
    monkeypatch.setattr(codec, "_PACKED", Lru(8))
    stack.serve("openapi-v1.yaml")
    svc = stack.service()
    first = execute(item_for(svc, "dev", "evt-v1"), svc.pipeline, svc.ports)
    assert first.result == "updated", first.message
    return svc


def threads_calling(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[str]:
    """The names of the threads that call ``owner.name`` from now on."""
    seen: list[str] = []
    real = getattr(owner, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return seen


def test_the_diff_starts_in_the_background_when_the_connector_holds_the_last_upstream(
    stack: Stack, first_sync: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = json.loads(stack.folder("dev").read_text())
    diffs = threads_calling(monkeypatch, spec, "diff")
    stack.serve("openapi-v2.yaml")
    second = execute(item_for(first_sync, "dev", "evt-v2"), first_sync.pipeline, first_sync.ports)
    assert second.result == "updated", second.message
    assert diffs == ["diff-early"]  # once, and not on the item's thread
    after = json.loads(stack.folder("dev").read_text())
    monkeypatch.undo()
    assert second.diff == spec.diff(before, after).to_dict()
    assert second.diff["added"] or second.diff["changed"] or second.diff["removed"]


def test_a_connector_edited_by_hand_is_merged_and_diffed_on_the_items_thread(
    stack: Stack, first_sync: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = stack.folder("dev")
    edited = json.loads(path.read_text())
    edited["info"]["description"] = "edited in the portal"
    path.write_text(json.dumps(edited))
    diffs = threads_calling(monkeypatch, spec, "diff")
    stack.serve("openapi-v2.yaml")
    second = execute(item_for(first_sync, "dev", "evt-v2"), first_sync.pipeline, first_sync.ports)
    assert second.result == "updated", second.message
    assert diffs == ["MainThread"]  # ours -> merged, which no early start could know
    assert json.loads(path.read_text())["info"]["description"] == "edited in the portal"


def test_the_version_rows_definitions_are_packed_once_while_the_connector_is_written(
    stack: Stack, first_sync: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed = threads_calling(monkeypatch, codec, "PackedPair")
    stack.serve("openapi-v2.yaml")
    second = execute(item_for(first_sync, "dev", "evt-v2"), first_sync.pipeline, first_sync.ports)
    assert second.result == "updated", second.message
    assert packed == ["pack-early"]
    monkeypatch.undo()
    record = first_sync.ports.ledger.version(API, "dev", 2, include_definitions=True)
    assert record.applied == json.loads(stack.folder("dev").read_text())
    assert record.upstream is not None
    assert record.upstream_sha256 == sha256_hex(record.upstream)
    assert record.applied_sha256 == sha256_hex(record.applied)
