"""A local stand-in for the queue trigger: receive, execute, delete, or leave for a retry.

In Azure the Functions host polls the queue; locally (no host can be installed here) the CLI
drains the same queue with the same ``execute`` call, so the demo and the tests go through the
real queue on Azurite instead of calling the pipeline directly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sync.adapters.queue_storage import HOST_MAX_DEQUEUE_COUNT
from sync.errors import SyncError
from sync.models import TargetOutcome, WorkItem
from sync.runs import Delivery, after_failed_delivery, as_sync_error, execute, give_up

log = logging.getLogger(__name__)

# A delivery whose ``execute`` raised: the item, the error, and what became of the delivery.
OnFailure = Callable[[WorkItem, SyncError, Delivery], None]
Failure = tuple[WorkItem, SyncError, Delivery]


def drain(
    svc: Any,
    *,
    max_items: int = 100,
    wait_seconds: float = 2.0,
    visibility_timeout: int = 60,
    concurrency: int = 1,
    on_failure: OnFailure | None = None,
) -> list[TargetOutcome]:
    """Process items until the queue stays empty for ``wait_seconds`` or ``max_items`` ran.

    ``concurrency`` items of a batch run at once, as the host runs ``batchSize`` invocations in
    parallel (the per-target lease keeps two of them off one connector).

    Returns the outcomes recorded. A delivery that failed before the last one records none (it
    is left to a retry), so a caller that must know about it (the ``worker`` command's exit
    code) passes ``on_failure``: called on this thread, once per delivery whose ``execute``
    raised, whatever became of it (left for a retry, sent again, or its failure recorded)."""
    queue = svc.ports.queue
    outcomes: list[TargetOutcome] = []
    idle_since = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=concurrency) if concurrency > 1 else None
    try:
        while len(outcomes) < max_items:
            poisoned: list[WorkItem] = []
            try:
                batch = queue.receive(
                    max_messages=min(16, max_items - len(outcomes)),
                    visibility_timeout=visibility_timeout,
                    max_dequeue_count=HOST_MAX_DEQUEUE_COUNT,
                    poisoned=poisoned,
                )
            except SyncError as exc:  # the outcomes already recorded still reach the caller
                raise DrainInterrupted(outcomes, exc) from exc
            outcomes.extend(_poisoned(svc, poisoned))
            if not batch:
                if time.monotonic() - idle_since >= wait_seconds:
                    break
                time.sleep(0.1)
                continue
            idle_since = time.monotonic()
            if pool is None:
                results = [_one(svc, item, handle) for item, handle in batch]
            else:
                results = list(pool.map(lambda pair: _one(svc, *pair), batch))
            for outcome, failure in results:
                if failure is not None and on_failure is not None:
                    on_failure(*failure)
                if outcome is not None:
                    outcomes.append(outcome)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return outcomes


def _poisoned(svc: Any, items: list[WorkItem]) -> list[TargetOutcome]:
    """What the poison queue's trigger does under the host (``triggers.on_poison_item``), for
    the items ``receive`` moved there: record each as failed unless its run row holds an outcome
    already, so the run completes and its card is sent. Without it a last delivery whose own
    record failed (left for a retry) was moved to poison on the next receive, and the run never
    completed locally."""
    outcomes = []
    for item in items:
        try:
            outcomes.append(give_up(item, svc.ports, attempts=None))
        except SyncError as exc:  # it stays in the poison queue for a re-drive
            log.warning("could not record poisoned item %s/%s: %s", item.api, item.target, exc)
    return outcomes


def _one(svc: Any, item: Any, handle: Any) -> tuple[TargetOutcome | None, Failure | None]:
    """One queue message: delete it when done; on an error decide as ``triggers.on_work_item``
    does under the host (``runs.after_failed_delivery``), then delete the message (requeued, or
    the failure recorded) or leave it (visible again after the timeout, like a host retry). A
    permanent error used to escape ``drain`` and end the loop, the other items of its batch
    unreported, and the item was poisoned unrecorded. Returns the outcome recorded (if any) and,
    for a delivery that failed, what ``drain`` reports to its ``on_failure``."""
    queue = svc.ports.queue
    try:
        outcome = execute(item, svc.pipeline, svc.ports)
    except Exception as raised:  # a defect too: the rest of the batch still gets reported
        if not isinstance(raised, SyncError):
            log.exception("work item %s/%s raised a defect", item.api, item.target)
        exc = as_sync_error(raised, item)
        dequeues = int(getattr(handle, "dequeue_count", 1) or 1)
        log.warning(
            "work item %s/%s failed %s (attempt %d): %s",
            item.api,
            item.target,
            "transiently" if exc.transient else "permanently",
            dequeues,
            exc,
        )
        done = after_failed_delivery(
            item, exc, svc.ports, dequeue_count=dequeues, max_deliveries=HOST_MAX_DEQUEUE_COUNT
        )
        if done.what is not Delivery.RETRY:
            _delete(queue, item, handle)
        return done.outcome, (item, exc, done.what)
    _delete(queue, item, handle)
    return outcome, None


def _delete(queue: Any, item: Any, handle: Any) -> None:
    """Delete a message whose work is done. A delete that fails leaves the message to come back
    after its visibility timeout, which an item survives (it is idempotent); it used to escape
    ``drain`` and take the outcomes already recorded with it."""
    try:
        queue.delete(handle)
    except SyncError as exc:
        log.warning(
            "work item %s/%s is done but its message was not deleted (it will be delivered "
            "again): %s",
            item.api,
            item.target,
            exc,
        )


class DrainInterrupted(Exception):
    """The queue failed between batches: ``outcomes`` were recorded before ``error``."""

    def __init__(self, outcomes: list[TargetOutcome], error: SyncError) -> None:
        super().__init__(str(error))
        self.outcomes = outcomes
        self.error = error
