"""A local stand-in for the queue trigger: receive, execute, delete, or leave for a retry.

In Azure the Functions host polls the queue; locally (no host can be installed here) the CLI
drains the same queue with the same ``execute`` call, so the demo and the tests go through the
real queue on Azurite instead of calling the pipeline directly.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sync.adapters.queue_storage import HOST_MAX_DEQUEUE_COUNT
from sync.errors import SyncError
from sync.models import TargetOutcome
from sync.runs import Delivery, after_failed_delivery, execute

log = logging.getLogger(__name__)


def drain(
    svc: Any,
    *,
    max_items: int = 100,
    wait_seconds: float = 2.0,
    visibility_timeout: int = 60,
    concurrency: int = 1,
) -> list[TargetOutcome]:
    """Process items until the queue stays empty for ``wait_seconds`` or ``max_items`` ran.

    ``concurrency`` items of a batch run at once, as the host runs ``batchSize`` invocations in
    parallel (the per-target lease keeps two of them off one connector)."""
    queue = svc.ports.queue
    outcomes: list[TargetOutcome] = []
    idle_since = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=concurrency) if concurrency > 1 else None
    try:
        while len(outcomes) < max_items:
            batch = queue.receive(
                max_messages=min(16, max_items - len(outcomes)),
                visibility_timeout=visibility_timeout,
            )
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
            outcomes.extend(o for o in results if o is not None)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return outcomes


def _one(svc: Any, item: Any, handle: Any) -> TargetOutcome | None:
    """One queue message: delete it when done; on an error decide as ``triggers.on_work_item``
    does under the host (``runs.after_failed_delivery``), then delete the message (requeued, or
    the failure recorded) or leave it (visible again after the timeout, like a host retry). A
    permanent error used to escape ``drain`` and end the loop, the other items of its batch
    unreported, and the item was poisoned unrecorded."""
    queue = svc.ports.queue
    try:
        outcome = execute(item, svc.pipeline, svc.ports)
    except SyncError as exc:
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
            queue.delete(handle)
        return done.outcome
    queue.delete(handle)
    return outcome
