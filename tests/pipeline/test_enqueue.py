"""The planner sends a run's items in parallel streams after the first (``runs.enqueue``): every
item exactly once, the map's first target first, round trips overlapping, and no send still
running when the planning call has ended."""

from __future__ import annotations

import threading

import pytest

from sync.errors import TransientError
from sync.models import SyncRequest, WorkItem
from sync.runs import ENQUEUE_STREAMS, enqueue


def items(n: int) -> list[WorkItem]:
    request = SyncRequest(api="a", reason="test")
    return [WorkItem(run_id="r", api="a", target=f"t{i:02}", request=request) for i in range(n)]


class Recording:
    """A work queue that records what it was sent, and how many sends ran at once."""

    def __init__(self, fail_on: str | None = None, hold: threading.Barrier | None = None) -> None:
        self.started: list[str] = []
        self.sent: list[str] = []
        self.running = 0
        self.most = 0
        self.fail_on = fail_on
        self.hold = hold
        self._lock = threading.Lock()

    def send(self, item: WorkItem, *, visibility_timeout: int | None = None) -> None:
        with self._lock:
            self.started.append(item.target)
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            if self.hold is not None and item.target != "t00":
                self.hold.wait()
            if item.target == self.fail_on:
                raise TransientError("queue unavailable", where="queue.send")
            with self._lock:
                self.sent.append(item.target)
        finally:
            with self._lock:
                self.running -= 1


@pytest.mark.parametrize("n", [0, 1, 3, ENQUEUE_STREAMS, 9, 20])
def test_every_item_is_sent_exactly_once(n: int) -> None:
    queue = Recording()
    enqueue(items(n), queue)
    assert sorted(queue.sent) == [i.target for i in items(n)]
    assert queue.started[:1] == [i.target for i in items(n)][:1]  # the map's first target first
    assert queue.running == 0


def test_the_sends_after_the_first_overlap() -> None:
    """Each send after the first waits until ENQUEUE_STREAMS sends are in flight: one after
    another, they could not get past the barrier (it would break after its timeout)."""
    queue = Recording(hold=threading.Barrier(ENQUEUE_STREAMS, timeout=10))
    enqueue(items(1 + 2 * ENQUEUE_STREAMS), queue)
    assert queue.most == ENQUEUE_STREAMS
    assert len(queue.sent) == 1 + 2 * ENQUEUE_STREAMS


def test_a_failed_first_send_sends_nothing_more() -> None:
    queue = Recording(fail_on="t00")
    with pytest.raises(TransientError, match="queue unavailable"):
        enqueue(items(9), queue)
    assert queue.started == ["t00"]


@pytest.mark.parametrize("failing", ["t01", "t02"])  # the calling thread's stream, another one
def test_a_failed_send_is_raised_after_every_stream_ended(failing: str) -> None:
    queue = Recording(fail_on=failing)
    with pytest.raises(TransientError, match="queue unavailable"):
        enqueue(items(9), queue)
    assert queue.running == 0  # nothing still sending once the planner has its answer
    # the other streams sent all of theirs; the failed stream stopped at its failure
    stream = (int(failing[1:]) - 1) % ENQUEUE_STREAMS
    rest = [i.target for i in items(9)][1:]
    others = [t for k, t in enumerate(rest) if k % ENQUEUE_STREAMS != stream]
    assert set(others) <= set(queue.sent)
    assert failing not in queue.sent
