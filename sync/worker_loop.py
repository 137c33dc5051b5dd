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
from sync.errors import LeaseTakenError, SyncError
from sync.models import TargetOutcome
from sync.runs import attempts_of, execute, give_up, wait_out_lease

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
    """One queue message: delete it when done; on an error leave it for a retry, and record
    the failure on the last delivery, as ``triggers.on_work_item`` does under the host (which
    retries whatever an invocation raises). A permanent error used to escape ``drain`` and end
    the loop, the other items of its batch unreported, and the item was poisoned unrecorded."""
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
        last = dequeues >= HOST_MAX_DEQUEUE_COUNT  # the host would poison it now
        if isinstance(exc, LeaseTakenError) and wait_out_lease(
            item, exc, svc.ports, last_delivery=last
        ):
            queue.delete(handle)  # sent again, hidden until the lease expires
            return None
        if last:
            attempts = attempts_of(item, dequeues, HOST_MAX_DEQUEUE_COUNT)
            outcome = give_up(item, svc.ports, attempts=attempts, reason=str(exc))
            queue.delete(handle)
            return outcome
        return None  # left on the queue: visible again after the timeout, like the host
    queue.delete(handle)
    return outcome
