"""The connector is read while the lease is taken (new content only): a failed read is reported by
the item as if read under the lease, and no read outlives its item."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from sync.errors import LeaseTakenError, TargetError
from sync.logs import current_context
from sync.models import RunSummary, SyncRequest, WorkItem
from sync.runs import execute, run_id_for
from tests.pipeline.conftest import Stack

API = "contoso-invoicing"


class ReadWrapper:
    """A folder target whose read is slow or fails; everything else is the real target."""

    def __init__(self, inner: Any, *, delay: float = 0.0, error: str | None = None) -> None:
        self._inner, self._delay, self._error = inner, delay, error
        self.reads: list[str] = []
        self.contexts: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read(self) -> Any:
        self.reads.append(threading.current_thread().name)
        self.contexts.append(current_context())
        time.sleep(self._delay)
        if self._error:
            raise TargetError(self._error, where="test")
        result = self._inner.read()
        self.reads.append("done")
        return result


def wrapped(stack: Stack, **behaviour: Any) -> tuple[Any, dict[str, ReadWrapper]]:
    """A service whose targets are wrapped (one wrapper per target name, kept for asserts)."""
    stack.serve("openapi-v1.yaml")
    real = stack.service().ports.targets
    wrappers: dict[str, ReadWrapper] = {}

    def targets(api: str, name: str) -> ReadWrapper:
        return wrappers.setdefault(name, ReadWrapper(real(api, name), **behaviour))

    return stack.service(targets=targets), wrappers


def item_for(svc: Any, target: str, event_id: str) -> WorkItem:
    request = SyncRequest(api=API, reason="event", event_id=event_id, targets=(target,))
    item = WorkItem(run_id=run_id_for(request), api=API, target=target, request=request)
    svc.ports.ledger.start_run(
        RunSummary(run_id=item.run_id, api=API, request=request, targets=(target,))
    )
    return item


def test_a_failed_early_read_is_the_items_failure_and_the_lease_is_released(stack: Stack) -> None:
    svc, wrappers = wrapped(stack, error="connector is gone")
    outcome = execute(item_for(svc, "dev", "evt-read-fails"), svc.pipeline, svc.ports)
    assert outcome.result == "failed"
    assert "connector is gone" in outcome.message
    assert wrappers["dev"].reads == ["connector-read"]  # read in the background, before the lease
    lease = svc.ports.ledger.acquire_lease(API, "dev", "someone-else", 60)  # it was released
    svc.ports.ledger.release_lease(lease)


def test_no_early_read_outlives_an_item_whose_lease_is_taken(stack: Stack) -> None:
    svc, wrappers = wrapped(stack, delay=0.3)
    held = svc.ports.ledger.acquire_lease(API, "dev", "another-worker", 60)
    try:
        with pytest.raises(LeaseTakenError, match="another-worker"):
            execute(item_for(svc, "dev", "evt-lease-taken"), svc.pipeline, svc.ports)
        assert wrappers["dev"].reads == ["connector-read", "done"]  # finished before the raise
    finally:
        svc.ports.ledger.release_lease(held)


def test_an_update_reads_the_connector_once(stack: Stack) -> None:
    svc, wrappers = wrapped(stack)
    outcome = execute(item_for(svc, "dev", "evt-once"), svc.pipeline, svc.ports)
    assert outcome.result == "updated", outcome.message
    assert wrappers["dev"].reads == ["connector-read", "done"]
    assert stack.folder("dev").exists()
    [seen] = wrappers["dev"].contexts  # the background read logs with the item's fields
    assert seen["api"] == API and seen["target"] == "dev" and seen["run_id"]
