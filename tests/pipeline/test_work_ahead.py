"""Work an update does beside other work: the version row's definitions are compressed while the
item's thread computes the diff, and carried by the pending marker (tests/pipeline/
test_lost_ledger_write.py) and then by the version row. That only moves the work: it is done once
per update, and what is recorded is the same."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

import sync.adapters.ledger_codec as codec
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
    """A service whose dev connector holds v1 of the spec, with a pack cache no other test filled."""
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


def test_the_version_rows_definitions_are_packed_once_beside_the_diff(
    stack: Stack, first_sync: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The diff is held until the head start has packed (or 10 s have passed): on a loaded
    machine the worker may otherwise start only after the diff, which is allowed (the marker
    then waits for it) but proves nothing about the overlap."""
    import sync.pipeline as pipeline

    packed = threads_calling(monkeypatch, codec, "PackedPair")
    real_diff = pipeline.diff_cached
    packed_during_diff: list[bool] = []

    def diff_once_packed(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + 10
        while not packed and time.monotonic() < deadline:
            time.sleep(0.002)
        packed_during_diff.append(bool(packed))
        return real_diff(*args, **kwargs)

    monkeypatch.setattr(pipeline, "diff_cached", diff_once_packed)
    stack.serve("openapi-v2.yaml")
    second = execute(item_for(first_sync, "dev", "evt-v2"), first_sync.pipeline, first_sync.ports)
    assert second.result == "updated", second.message
    assert packed_during_diff == [True]
    assert packed == ["pack-early"]  # once, by the head start: the marker and the row reuse it
    monkeypatch.undo()
    record = first_sync.ports.ledger.version(API, "dev", 2, include_definitions=True)
    assert record.applied == json.loads(stack.folder("dev").read_text())
    assert record.upstream is not None
    assert record.upstream_sha256 == sha256_hex(record.upstream)
    assert record.applied_sha256 == sha256_hex(record.applied)


def test_the_packing_is_handed_off_before_the_diff_and_done_before_the_marker(
    stack: Stack, first_sync: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker carries the packed definitions, so the packing starts before the diff (the
    item thread's last engine work) and the marker waits for it. The hand-off is recorded on the
    item's own thread, so the order does not depend on when the worker runs it."""
    import sync.pipeline as pipeline
    from sync.adapters.ledger_tables import TableLedger

    order: list[str] = []
    real_mark, real_background = TableLedger.mark_pending, pipeline.in_background
    real_diff = pipeline.diff_cached

    def mark_pending(self: Any, *args: Any, **kwargs: Any) -> Any:
        order.append("pending marked")
        return real_mark(self, *args, **kwargs)

    def in_background(fn: Any, *, name: str) -> Any:
        def packing() -> Any:
            result = fn()
            order.append("packed")  # before its future completes, so before settle() returns
            return result

        order.append(f"handed off {name}")
        return real_background(packing if name == "pack-early" else fn, name=name)

    def diff(*args: Any, **kwargs: Any) -> Any:
        order.append("diff")
        return real_diff(*args, **kwargs)

    monkeypatch.setattr(TableLedger, "mark_pending", mark_pending)
    monkeypatch.setattr(pipeline, "in_background", in_background)
    monkeypatch.setattr(pipeline, "diff_cached", diff)
    stack.serve("openapi-v2.yaml")
    second = execute(item_for(first_sync, "dev", "evt-v2"), first_sync.pipeline, first_sync.ports)
    assert second.result == "updated", second.message
    assert order.count("handed off pack-early") == 1
    assert order.index("handed off pack-early") < order.index("diff")
    # a head start no worker began is cancelled and the marker packs itself (the next test)
    if "packed" in order:
        assert order.index("packed") < order.index("pending marked")


def test_a_head_start_still_queued_is_cancelled_and_the_caller_packs_itself(
    stack: Stack, first_sync: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head start no worker has begun by the time the version is recorded (a busy pool) is
    not waited for: the item packs on its own thread, once, and records the same row."""
    from concurrent.futures import Future

    import sync.pipeline as pipeline

    queued: list[Future[Any]] = []
    real_background = pipeline.in_background

    def never_started(fn: Any, *, name: str) -> Future[Any]:
        if name != "pack-early":
            return real_background(fn, name=name)
        queued.append(Future())  # a task no worker has picked up
        return queued[-1]

    packed = threads_calling(monkeypatch, codec, "PackedPair")
    monkeypatch.setattr(pipeline, "in_background", never_started)
    stack.serve("openapi-v2.yaml")
    second = execute(item_for(first_sync, "dev", "evt-v2"), first_sync.pipeline, first_sync.ports)
    assert second.result == "updated", second.message
    assert [future.cancelled() for future in queued] == [True]
    assert packed == [threading.current_thread().name]
    monkeypatch.undo()
    record = first_sync.ports.ledger.version(API, "dev", 2, include_definitions=True)
    assert record.applied == json.loads(stack.folder("dev").read_text())


def test_settle_waits_for_a_running_head_start_and_cancels_a_queued_one() -> None:
    from concurrent.futures import Future

    from sync.background import in_background, settle

    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def slow() -> None:
        started.set()
        release.wait(5)
        done.append("packed")

    running = in_background(slow, name="probe")
    assert started.wait(5)
    threading.Timer(0.05, release.set).start()
    settle(running)
    assert done == ["packed"]  # returned only after the running task finished

    queued: Future[None] = Future()
    settle(queued)
    assert queued.cancelled()

    failing = in_background(lambda: 1 / 0, name="probe")
    failing.exception(timeout=5)
    settle(failing)  # a failed head start is the caller's to redo, not an error here
