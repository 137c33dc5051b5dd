"""A ledger with nothing in it that refuses writes: dry runs without any storage configured.

A dry run reads the ledger only for the merge base and the last applied hashes; with no storage at
all it behaves as a first sync. Any write attempt is a bug in the caller, so it raises.
"""

from __future__ import annotations

from typing import Any

from sync.errors import ConfigError
from sync.models import RunSummary, TargetOutcome, TargetState, VersionRecord
from sync.pending_write import PendingWrite


class EmptyLedger:
    def state(self, api: str, target: str) -> TargetState:
        return TargetState()

    def seen_event(self, api: str, target: str, event_id: str) -> bool:
        return False

    def versions(
        self, api: str, target: str | None = None, *, limit: int = 20, before: int | None = None
    ) -> list[VersionRecord]:
        return []

    def version(
        self, api: str, target: str, number: int, *, include_definitions: bool = False
    ) -> VersionRecord | None:
        return None

    def get_run(self, run_id: str) -> RunSummary | None:
        return None

    def prepare_definitions(
        self, upstream: dict[str, Any], applied: dict[str, Any], shas: tuple[str, str]
    ) -> None:
        return None

    def pending_write(self, api: str, target: str, state: TargetState) -> PendingWrite | None:
        return None

    def staged_spec(self, key: str) -> bytes | None:
        return None  # nothing was ever staged here: no planner writes to this ledger

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError(
            "this command needs ledger storage: set SYNC_STORAGE_CONNECTION_STRING or "
            "SYNC_TABLE_ENDPOINT",
            path="SYNC_TABLE_ENDPOINT",
        )

    save_state = mark_pending = acquire_lease = release_lease = record_version = _refuse
    start_run = mark_notified = debounce = stage_spec = _refuse

    def finish_item(
        self, run_id: str, outcome: TargetOutcome, *, last_chance: bool = False
    ) -> RunSummary | None:
        return self._refuse()
