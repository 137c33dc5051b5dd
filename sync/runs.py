"""Runs: plan a request into work items, execute items, fan in, notify once per run.

One request (an event, an HTTP call, the drift timer, the CLI) becomes one run with one work item
per target. The planner only enqueues (Event Grid waits 30 s at most); workers execute items from
the queue; the worker whose outcome completes the run sends the single notification. The CLI and
dry runs execute the same items inline.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import partial

from sync import drift, staging
from sync.background import in_background
from sync.config import SyncMap
from sync.errors import LeaseTakenError, PermanentError, SyncError
from sync.logs import log_context, set_stage, trace_id_of, traced, work_context
from sync.models import (
    MAX_LEASE_REQUEUES,
    RunSummary,
    SyncRequest,
    TargetOutcome,
    WorkItem,
    event_identity,
    iso,
    new_run_id,
    utcnow,
)
from sync.pipeline import Pipeline
from sync.ports import Ports, WorkQueue
from sync.redact import redact_url
from sync.run_row_first import RunRowFirst

log = logging.getLogger(__name__)


def run_id_for(request: SyncRequest) -> str:
    """Deterministic for events, so a redelivered event joins its first run instead of a new one."""
    event = event_identity(request)
    if event:
        key = f"{event}\n{request.api}\n{request.spec_url or ''}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]
    return new_run_id()


def target_names(request: SyncRequest, sync_map: SyncMap) -> tuple[str, ...]:
    api = sync_map.api(request.api)
    known = tuple(t.name for t in api.targets)
    if request.targets is None:
        return known
    unknown = [t for t in request.targets if t not in known]
    if unknown:
        raise PermanentError(
            f"API {request.api!r} has no target(s) {', '.join(unknown)}; known: {', '.join(known)}",
            where="targets",
        )
    if not request.targets:
        raise PermanentError("targets must not be empty", where="targets")
    return tuple(dict.fromkeys(request.targets))


def new_run(request: SyncRequest, sync_map: SyncMap) -> tuple[SyncRequest, RunSummary]:
    """The request with a trace context, and its run (one item per target)."""
    request = traced(request)
    shown = request  # the run row and GET /api/runs show the request: no SAS ``sig=`` there
    if request.spec_url:
        shown = replace(request, spec_url=redact_url(request.spec_url))
    run = RunSummary(
        run_id=run_id_for(request),
        api=request.api,
        request=shown,
        targets=target_names(request, sync_map),
        created_at=iso(utcnow()),
    )
    return request, run


def submit(request: SyncRequest, sync_map: SyncMap, ports: Ports) -> RunSummary:
    """Record the run and enqueue one item per target (the queue does the rest).

    A ``spec_url`` with a credential is downloaded and staged first (``sync.staging``): no
    message may carry it, and a download that fails then leaves nothing written, no run row
    without its items. The run id is the original request's, so a redelivered event still
    joins its first run."""
    request, run = new_run(request, sync_map)
    targets = run.targets
    trace_id = trace_id_of(request.traceparent)
    with log_context(
        run_id=run.run_id, api=request.api, event_id=request.event_id, trace_id=trace_id
    ):
        request = staging.staged(request, sync_map.api(request.api), ports, run_id=run.run_id)
        if request.staged_spec:
            run = replace(run, request=replace(run.request, staged_spec=request.staged_spec))
        stored = ports.ledger.start_run(run)
        if stored is not None:
            targets = _unfinished(stored)
            log.info(
                "run %s planned before; %d of its %d targets enqueued again",
                run.run_id,
                len(targets),
                len(stored.targets),
            )
        enqueue(
            [
                WorkItem(run_id=run.run_id, api=request.api, target=t, request=request)
                for t in targets
            ],
            ports.queue,
        )
        log.info(
            "run planned",
            extra={
                "run_id": run.run_id,
                "api": request.api,
                "event_id": request.event_id,
                "stage": "plan",
                "targets": len(targets),
                "reason": request.reason,
                "commit": request.commit,
                "version": request.version,
                "deployment_id": request.deployment_id,
            },
        )
    return run


ENQUEUE_STREAMS = 4  # sends of one run in flight at once, after the first item's


def enqueue(items: list[WorkItem], queue: WorkQueue) -> None:
    """Send every item: the first alone, then the rest up to ``ENQUEUE_STREAMS`` round trips at a
    time. One after another, a run of 20 targets spent 20 round trips before its event was
    answered (planning 20 targets, 5 ms added to each send, 12 pairs: 265 -> 123 ms). The first
    target of the map still goes first, so its item usually leads the run's shared download.
    Every stream sends all its items unless one fails; the first failure is raised once all
    streams ended, and a redelivery of the event enqueues again every target without an outcome
    (the queue is at least once either way)."""
    if not items:
        return
    queue.send(items[0])
    rest = items[1:]
    streams = [rest[i::ENQUEUE_STREAMS] for i in range(min(ENQUEUE_STREAMS, len(rest)))]

    def send_all(stream: list[WorkItem]) -> None:
        for item in stream:
            queue.send(item)

    others = [in_background(partial(send_all, s), name="enqueue") for s in streams[1:]]
    try:
        if streams:
            send_all(streams[0])
    finally:
        concurrent.futures.wait(others)  # no send outlives the planning call
    for future in others:
        future.result()  # the calling thread's own failure was raised already


def _unfinished(stored: RunSummary) -> tuple[str, ...]:
    """What a redelivered event enqueues again: the targets of its run as first planned (the map
    may have changed since; an item for a target no longer in it ends as failed) that have no
    outcome yet, or only a failed one (a retry may heal the connector; the run row keeps the
    first outcome). A complete run whose card is not marked sent also gets the item of the
    target whose outcome came last, the usual claimant of its card, which takes the claim over
    if that worker died (``Ledger.finish_item``)."""
    settled = {o.target for o in stored.outcomes if o.result != "failed"}
    again = [t for t in stored.targets if t not in settled]
    if stored.complete and not stored.notified and stored.outcomes:
        again.append(stored.outcomes[-1].target)
    return tuple(dict.fromkeys(again))


def complete(
    item: WorkItem, outcome: TargetOutcome, ports: Ports, *, last_chance: bool = False
) -> RunSummary | None:
    """Fan in: add the outcome to the run; the call that completes it notifies (best effort).
    ``last_chance``: giving up (see ``Ledger.finish_item``)."""
    if item.request.dry_run:
        return None
    run = ports.ledger.finish_item(item.run_id, outcome, last_chance=last_chance)
    if run is None:
        return None
    if not drift.worth_a_card(run):  # the drift timer found nothing new: no card, row completes
        drift.record_quiet(run, ports.ledger)
        return run
    notify(run, ports)
    return run


def notify(run: RunSummary, ports: Ports) -> str:
    """A notification never fails or undoes a sync: every error becomes a recorded status."""
    try:
        status = ports.notifier.notify(run)
    except Exception as exc:  # the notifier contract says never raise; enforce it
        status = f"failed: {type(exc).__name__}"
        log.warning("notifier raised %s for run %s", type(exc).__name__, run.run_id)
    try:
        ports.ledger.mark_notified(run.run_id, status)
    except SyncError as exc:
        log.warning("could not record notification status for run %s: %s", run.run_id, exc)
    return status


def execute(item: WorkItem, pipeline: Pipeline, ports: Ports) -> TargetOutcome:
    """Queue-trigger body: transient errors propagate so the queue retries, then poisons."""
    with log_context(**work_context(item)):
        try:
            outcome = pipeline.run(item)
        except SyncError as exc:
            log.warning("work item failed: %s", exc, exc_info=exc, extra={"outcome": "retry"})
            raise
        set_stage("complete")
        complete(item, outcome, ports)
    return outcome


def wait_out_lease(
    item: WorkItem, exc: LeaseTakenError, ports: Ports, *, last_delivery: bool
) -> bool:
    """On the delivery the host would poison, a lease that is still held (by a worker that
    crashed or timed out, most likely: a live one holds it for seconds, and the retries so far
    spanned minutes) sends the item again, hidden until the lease expires; True when sent, and
    the caller then acknowledges this delivery. Before, the item was recorded as failed ("gave
    up") and a card sent, although the pending write would have been reconciled once the lease
    ran out (``SYNC_LEASE_SECONDS``, 600 s by default, against the host's 5 deliveries 30 s
    apart). A lease of unknown length, or an item already sent again ``MAX_LEASE_REQUEUES``
    times, is left to the host's poison handling as before."""
    from sync.adapters.queue_storage import MAX_VISIBILITY_SECONDS

    if not last_delivery or exc.retry_after is None or item.lease_requeues >= MAX_LEASE_REQUEUES:
        return False
    delay = min(math.ceil(exc.retry_after) + 1, MAX_VISIBILITY_SECONDS)
    again = replace(item, lease_requeues=item.lease_requeues + 1)
    try:
        ports.queue.send(again, visibility_timeout=delay)
    except SyncError as send_error:  # this delivery then fails as it would have
        log.warning("could not send the item again to wait out the lease: %s", send_error)
        return False
    log.warning(
        "lease still held on the last delivery; item sent again, visible in %d s (%d of %d)",
        delay,
        again.lease_requeues,
        MAX_LEASE_REQUEUES,
        extra={"run_id": item.run_id, "api": item.api, "target": item.target, "stage": "lease"},
    )
    return True


def give_up(
    item: WorkItem, ports: Ports, *, attempts: int | None = None, reason: str | None = None
) -> TargetOutcome:
    """The item failed every retry; record that and tell the humans.
    ``reason`` is the last error when the caller knows it (the last delivery of the queue trigger
    and the local loop do; the host's poison trigger does not), so the card says why instead of
    "see logs"."""
    with log_context(**work_context(item), stage="poison"):
        log.error("work item poisoned", extra={"outcome": "failed"})
        return _give_up(item, ports, attempts=attempts, reason=reason)


def _give_up(
    item: WorkItem, ports: Ports, *, attempts: int | None, reason: str | None = None
) -> TargetOutcome:
    read, run = _read_run(item, ports)
    if read and run is None:
        # A message for a run that was never started (a hand-sent or foreign message): nothing
        # can take its outcome, and the target's state describes other runs. Acknowledged.
        log.error("run %s has no run row: %s/%s not recorded", item.run_id, item.api, item.target)
        return TargetOutcome(
            api=item.api,
            target=item.target,
            result="failed",
            message=f"gave up: run {item.run_id} was never started",
        )
    recorded = next((o for o in run.outcomes if o.target == item.target), None) if run else None
    if recorded is not None:
        # An attempt finished (its answer lost, or the host gave up on it late), or the last
        # delivery recorded its failure already: "failed" over it would be wrong. The fan-in
        # still runs: a complete run whose card's claimant died gets its card here.
        log.info("%s/%s already has its outcome in run %s", item.api, item.target, item.run_id)
        try:
            complete(item, recorded, ports, last_chance=True)
        except SyncError as exc:  # a claim too young to take over, or storage failing now
            log.warning("run %s may lack its card: %s", item.run_id, exc)
        return recorded
    suffix = f" after {attempts} attempts" if attempts else ""
    outcome = TargetOutcome(
        api=item.api,
        target=item.target,
        result="failed",
        message=f"gave up{suffix}: "
        + (
            reason[:500]
            if reason
            else f"transient errors persisted (see logs for run {item.run_id})"
        ),
    )
    try:
        state = ports.ledger.state(item.api, item.target)
        ports.ledger.save_state(
            item.api,
            item.target,
            state.evolve(
                last_outcome="failed", last_message=outcome.message, last_run_id=item.run_id
            ),
        )
    except SyncError as exc:
        log.warning("could not record poison outcome on the state row: %s", exc)
    complete(item, outcome, ports)
    return outcome


def _read_run(item: WorkItem, ports: Ports) -> tuple[bool, RunSummary | None]:
    """(whether the run row could be read, the row). An unreadable row is not an absent one:
    giving up then records as before, and ``finish_item`` still keeps the first outcome."""
    try:
        return True, ports.ledger.get_run(item.run_id)
    except SyncError as exc:
        log.warning("could not read run %s before giving up: %s", item.run_id, exc)
        return False, None


def attempts_of(item: WorkItem, dequeue_count: int, deliveries_per_message: int) -> int:
    """Deliveries of this item in all: each copy sent again to wait out a lease was delivered
    ``deliveries_per_message`` times before it was."""
    return item.lease_requeues * deliveries_per_message + dequeue_count


class Delivery(Enum):
    """What a failed delivery of a work item came to (``after_failed_delivery``)."""

    REQUEUED = "requeued"  # sent again, hidden until the lease expires: acknowledge this one
    GAVE_UP = "gave up"  # the last delivery: its failure is recorded, with the error as reason
    RETRY = "retry"  # left to the queue: delivered again, or poisoned after the last delivery


@dataclass(frozen=True)
class FailedDelivery:
    what: Delivery
    outcome: TargetOutcome | None = None  # the outcome ``give_up`` recorded (GAVE_UP only)


def as_sync_error(exc: BaseException, item: WorkItem) -> SyncError:
    """``exc`` as the delivery's failure: a defect (a TypeError...) is a permanent failure named
    by its type only (its text may hold anything), so the last delivery records it as for any
    other error instead of leaving the poison trigger to call it transient."""
    if isinstance(exc, SyncError):
        return exc
    return PermanentError(
        f"unexpected {type(exc).__name__} (a defect; see the logs for run {item.run_id})",
        where=f"{item.api}/{item.target}",
    )


def after_failed_delivery(
    item: WorkItem, exc: SyncError, ports: Ports, *, dequeue_count: int, max_deliveries: int
) -> FailedDelivery:
    """The one decision on a delivery whose ``execute`` raised, for the queue trigger and the
    local worker loop alike; they differ only in how a delivery ends (the trigger raises to the
    host unless REQUEUED, the loop deletes the message unless RETRY). ``max_deliveries`` is the
    caller's: host.json's ``maxDequeueCount``, which the loop's tests lower.

    On the delivery the host would poison, a held lease may send the item again
    (``wait_out_lease``); otherwise the failure is recorded now, with the error as its reason,
    since the poison trigger that runs next cannot know it (it finds the outcome and adds
    nothing; before, its card could only say "see logs"). When recording fails in turn, that is
    logged and the item left to the queue (RETRY): the host poisons it and its poison trigger
    records it without the reason; the loop's next delivery tries again. Raising it instead
    ended the loop's ``drain`` with the rest of its batch unreported."""
    last = dequeue_count >= max_deliveries
    if isinstance(exc, LeaseTakenError) and wait_out_lease(item, exc, ports, last_delivery=last):
        return FailedDelivery(Delivery.REQUEUED)
    if not last:
        return FailedDelivery(Delivery.RETRY)
    attempts = attempts_of(item, dequeue_count, max_deliveries)
    try:
        outcome = give_up(item, ports, attempts=attempts, reason=str(exc))
    except SyncError as failed:
        log.warning("could not record the last delivery's failure: %s", failed)
        return FailedDelivery(Delivery.RETRY)
    return FailedDelivery(Delivery.GAVE_UP, outcome)


@dataclass
class InlineResult:
    run: RunSummary
    outcomes: list[TargetOutcome] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)  # targets the run row could not take

    @property
    def ok(self) -> bool:
        return not self.unrecorded and all(
            o.result not in ("failed", "blocked") for o in self.outcomes
        )


def run_inline(
    request: SyncRequest,
    sync_map: SyncMap,
    ports: Ports,
    pipeline: Pipeline,
    *,
    concurrency: int = 1,
) -> InlineResult:
    """CLI and dry runs: the same items, executed here instead of through the queue.

    A transient error that survives the adapters' own retries is reported as a failure of that
    target (there is no queue to retry it), and the other targets still run. A run row that cannot
    take a target's outcome is reported with that outcome (``unrecorded``), and the run is not ok.
    ``concurrency`` targets run at once (each is its own connector; the lease still guards each).
    """
    request, run = new_run(request, sync_map)
    run_row: Future[RunSummary | None] | None = None
    if not request.dry_run:
        # The run row's round trip overlaps the items' first reads; no write goes ahead of it.
        ledger = ports.ledger
        run_row = in_background(lambda: ledger.start_run(run), name="run-row")
        ports = replace(ports, ledger=RunRowFirst(ledger, run_row))
        pipeline = pipeline.with_ledger(ports.ledger)
    try:
        result = _run_items(request, run, ports, pipeline, concurrency)
    finally:
        if run_row is not None:  # no write outlives the call, whatever happened to the items
            concurrent.futures.wait([run_row])
    if run_row is not None:
        run_row.result()  # every item met it in finish_item; a guard, should one ever not
    return result


def _run_items(
    request: SyncRequest, run: RunSummary, ports: Ports, pipeline: Pipeline, concurrency: int
) -> InlineResult:
    targets = run.targets
    result = InlineResult(run=run)

    def one(target: str) -> tuple[TargetOutcome, RunSummary | None]:
        item = WorkItem(run_id=run.run_id, api=request.api, target=target, request=request)
        with log_context(**work_context(item)):
            try:
                outcome = pipeline.run(item)
            except SyncError as exc:
                log.warning("target failed: %s", exc, exc_info=exc, extra={"outcome": "failed"})
                outcome = TargetOutcome(
                    api=request.api, target=target, result="failed", message=str(exc)
                )
            set_stage("complete")
            try:
                return outcome, complete(item, outcome, ports)
            except SyncError as exc:
                # The sync of this target stands (its outcome says what it did); only the run row,
                # and with it the card, lack it. There is no queue to retry the fan-in, so it is
                # reported with the outcome instead of ending the call and every target's report.
                # A run row that was never written fails the whole call below, as before.
                log.warning("could not record the outcome on the run row: %s", exc)
                result.unrecorded.append(target)
                note = f"not recorded on the run row, so no card was sent: {exc}"
                message = f"{outcome.message}; {note}" if outcome.message else note
                return replace(outcome, message=message), None

    if concurrency > 1 and len(targets) > 1:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(targets))) as pool:
            done = list(pool.map(one, targets))
    else:
        done = [one(target) for target in targets]
    for outcome, finished in done:
        result.outcomes.append(outcome)
        if finished is not None:
            result.run = finished
    if request.dry_run:
        result.run = RunSummary(
            run_id=run.run_id,
            api=run.api,
            request=request,
            targets=targets,
            outcomes=tuple(result.outcomes),
            created_at=run.created_at,
        )
    return result
