"""A ledger for one inline run whose run row is still being written.

Why: ``run_inline`` (the CLI, inline runs) used to write the run row and only then start the
pipeline, whose first steps are reads (state row, spec download, connector read). The run row's
round trip now overlaps those reads, and this wrapper keeps the old guarantee that nothing is
written anywhere before the run row exists: every call other than the reads listed below waits
for the run row and raises its failure instead of going ahead. A run whose row could not be
written therefore writes nothing at all, as before; it only read.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from sync.models import RunSummary, TargetOutcome, TargetState, VersionRecord
from sync.ports import Lease, Ledger

if TYPE_CHECKING:  # needed once a write is about to happen, not at every cold start
    from sync.pending_write import PendingWrite


class RunRowFirst:
    """Delegates to ``ledger``; reads of rows the run row cannot affect go straight through,
    everything else (writes, and the run row's own read) after ``run_row`` has succeeded."""

    def __init__(self, ledger: Ledger, run_row: Future[Any]) -> None:
        self._ledger = ledger
        self._run_row = run_row

    def _after_run_row(self) -> Ledger:
        self._run_row.result()  # its failure (e.g. storage down) is this call's failure
        return self._ledger

    # -- reads of target rows: straight through --------------------------------------------------
    def state(self, api: str, target: str) -> TargetState:
        return self._ledger.state(api, target)

    def seen_event(self, api: str, target: str, event_id: str) -> bool:
        return self._ledger.seen_event(api, target, event_id)

    def versions(
        self, api: str, target: str | None = None, *, limit: int = 20, before: int | None = None
    ) -> list[VersionRecord]:
        return self._ledger.versions(api, target, limit=limit, before=before)

    def version(
        self, api: str, target: str, number: int, *, include_definitions: bool = False
    ) -> VersionRecord | None:
        return self._ledger.version(api, target, number, include_definitions=include_definitions)

    def prepare_definitions(
        self, upstream: dict[str, Any], applied: dict[str, Any], shas: tuple[str, str]
    ) -> None:
        self._ledger.prepare_definitions(upstream, applied, shas)  # writes nothing (the port)

    def pending_write(self, api: str, target: str, state: TargetState) -> PendingWrite | None:
        return self._ledger.pending_write(api, target, state)  # a read (a blob's, at most)

    def staged_spec(self, key: str) -> bytes | None:
        return self._ledger.staged_spec(key)  # a blob staged when a queued run was planned

    # -- everything else: after the run row ------------------------------------------------------
    def save_state(self, api: str, target: str, state: TargetState) -> TargetState:
        return self._after_run_row().save_state(api, target, state)

    def mark_pending(
        self, api: str, target: str, state: TargetState, write: PendingWrite
    ) -> TargetState:
        return self._after_run_row().mark_pending(api, target, state, write)

    def acquire_lease(self, api: str, target: str, owner: str, seconds: float) -> Lease:
        return self._after_run_row().acquire_lease(api, target, owner, seconds)

    def release_lease(self, lease: Lease) -> None:
        self._after_run_row().release_lease(lease)

    def record_version(
        self,
        record: VersionRecord,
        state: TargetState,
        event_id: str | None,
        lease: Any = None,
        *,
        hold: Callable[[], None] | None = None,
    ) -> TargetState:
        return self._after_run_row().record_version(record, state, event_id, lease, hold=hold)

    def start_run(self, run: RunSummary) -> RunSummary | None:
        return self._after_run_row().start_run(run)

    def finish_item(
        self, run_id: str, outcome: TargetOutcome, *, last_chance: bool = False
    ) -> RunSummary | None:
        return self._after_run_row().finish_item(run_id, outcome, last_chance=last_chance)

    def get_run(self, run_id: str) -> RunSummary | None:
        return self._after_run_row().get_run(run_id)

    def mark_notified(self, run_id: str, status: str) -> None:
        self._after_run_row().mark_notified(run_id, status)

    def debounce(self, key: str, seconds: float, *, claimant: str | None = None) -> bool:
        return self._after_run_row().debounce(key, seconds, claimant=claimant)

    def stage_spec(self, content: bytes) -> str:
        return self._after_run_row().stage_spec(content)
