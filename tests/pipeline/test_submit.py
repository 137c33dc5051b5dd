"""Planning a fan-out enqueues its items several at once, in the run's log context; a failed
send is raised only after every other item was sent (Event Grid redelivers, the run plans again)."""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

import pytest

from sync.errors import TransientError
from sync.logs import current_context, log_context
from sync.models import SyncRequest
from sync.runs import SEND_CONCURRENCY, submit
from tests.pipeline.conftest import Stack, sync_map

NAMES = [f"t{i:02d}" for i in range(12)]


class Queue:
    """The real Azurite queue, watched: which thread sent what, in which log context."""

    def __init__(self, inner: Any, *, fail: str | None = None) -> None:
        self._inner, self._fail = inner, fail
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._together = threading.Barrier(2, timeout=10)  # the first two sends meet: concurrent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def send(self, item: Any, **kwargs: Any) -> None:
        with self._lock:
            self.sent.append((item.target, threading.current_thread().name, current_context()))
            first_two = len(self.sent) <= 2
        if first_two:
            self._together.wait()  # breaks (and the test fails) if sends ran one at a time
        if item.target == self._fail:
            raise TransientError("queue unavailable", where="test")
        self._inner.send(item, **kwargs)


def service(stack: Stack, queue_fail: str | None = None) -> tuple[Any, Queue]:
    doc = sync_map(stack.server)
    doc["apis"]["contoso-invoicing"]["targets"] = [
        {"name": n, "folder": f"connectors/{n}"} for n in NAMES
    ]
    stack.map_path.write_text(json.dumps(doc))
    svc = stack.service()
    queue = Queue(svc.ports.queue, fail=queue_fail)
    return dataclasses.replace(svc, ports=dataclasses.replace(svc.ports, queue=queue)), queue


def queued(svc: Any) -> list[str]:
    return sorted(item.target for item, _ in svc.ports.queue.receive(max_messages=32))


def test_a_fan_out_is_enqueued_concurrently_in_the_runs_log_context(stack: Stack) -> None:
    svc, queue = service(stack)
    request = SyncRequest(api="contoso-invoicing", reason="event", event_id="evt-submit")
    with log_context(caller="test"):
        run = submit(request, svc.map, svc.ports)
    assert sorted(t for t, _, _ in queue.sent) == NAMES
    assert len({thread for _, thread, _ in queue.sent}) <= SEND_CONCURRENCY
    assert all(ctx["run_id"] == run.run_id and ctx["caller"] == "test" for *_, ctx in queue.sent)
    assert queued(svc) == NAMES


def test_a_failed_send_is_raised_after_every_other_item_was_sent(stack: Stack) -> None:
    svc, queue = service(stack, queue_fail="t03")
    request = SyncRequest(api="contoso-invoicing", reason="event", event_id="evt-submit-fails")
    with pytest.raises(TransientError, match="queue unavailable"):
        submit(request, svc.map, svc.ports)
    assert sorted(t for t, _, _ in queue.sent) == NAMES
    assert queued(svc) == [n for n in NAMES if n != "t03"]
