"""The small interfaces the pipeline talks to; one adapter per external system implements each.

The pipeline knows nothing of httpx, azure-* or the file system: adapters are built in
``sync.bootstrap`` (the one composition root) and passed in as a ``Ports`` bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sync.models import (
    CurrentConnector,
    FetchedSpec,
    RunSummary,
    SyncRequest,
    TargetOutcome,
    TargetState,
    VersionRecord,
    WorkItem,
)

if TYPE_CHECKING:  # needed once a write is about to happen, not at every cold start
    from sync.pending_write import PendingWrite


class SecretStore(Protocol):
    def get(self, name: str) -> str:
        """Return the secret's value; raise ``SecretError`` naming vault and secret."""
        ...


class WritableSecretStore(SecretStore, Protocol):
    """A store the service may write back to (the delegated credential rotates its refresh token)."""

    def set(self, name: str, value: str) -> None: ...


class TokenProvider(Protocol):
    """An access token for one scope, cached until near expiry (azure-identity underneath)."""

    def token(self, scope: str) -> str: ...


class SpecSource(Protocol):
    def fetch(
        self,
        location: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        deadline: float | None = None,
    ) -> FetchedSpec:
        """Download a spec (conditional GET); ``FetchedSpec.content`` is None on 304.
        ``deadline``: a ``time.monotonic()`` instant the download, retries included, must end
        by when that is sooner than SYNC_FETCH_BUDGET_SECONDS (a run being planned)."""
        ...


class ApiSpecSource(SpecSource, Protocol):
    """A spec source that picks the API's configured kind (url, apimExport, apiCenterExport, blob);
    the pipeline prefers ``fetch_for`` when the port has it (``sync.adapters.spec_sources``)."""

    def fetch_for(
        self,
        api: Any,  # sync.config.ApiConfig
        request: SyncRequest,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        deadline: float | None = None,
    ) -> FetchedSpec:
        """``FetchedSpec.url`` is what the ledger records as the source (never a SAS link);
        ``deadline`` as for ``fetch``."""
        ...


class Target(Protocol):
    """One connector in one store (folder, Dataverse, PowerApps API)."""

    kind: str
    name: str
    limit_bytes: int | None  # output size limit on the compact UTF-8 JSON, None = unlimited
    environment: str | None
    connector_label: str | None

    def read(self) -> CurrentConnector: ...

    def write(self, definition: dict[str, Any], current: CurrentConnector) -> str | None:
        """Write the definition, keeping what belongs to the connector; return its id."""
        ...

    def read_back(self) -> dict[str, Any] | None:
        """The stored definition as the platform serves it now (for verification)."""
        ...

    def portal_url(self) -> str | None: ...


class Lease(Protocol):
    api: str
    target: str
    owner: str


class Ledger(Protocol):
    def state(self, api: str, target: str) -> TargetState: ...

    def save_state(self, api: str, target: str, state: TargetState) -> TargetState:
        """Write the state row under its ETag (``state.etag``; None = must not exist)."""
        ...

    def mark_pending(
        self, api: str, target: str, state: TargetState, write: PendingWrite
    ) -> TargetState:
        """``save_state`` with the pending marker of ``write`` and its definitions, before the
        connector is written: what a lost ``record_version`` needs to be recorded later."""
        ...

    def pending_write(self, api: str, target: str, state: TargetState) -> PendingWrite | None:
        """The write ``state``'s marker saved, definitions included (None: no marker, or one
        saved without them); ``LedgerCorruptError`` when they do not match their hashes."""
        ...

    def acquire_lease(self, api: str, target: str, owner: str, seconds: float) -> Lease:
        """Claim the target; raise ``LeaseTakenError`` while another owner holds it."""
        ...

    def release_lease(self, lease: Lease) -> None: ...

    def seen_event(self, api: str, target: str, event_id: str) -> bool: ...

    def record_version(
        self,
        record: VersionRecord,
        state: TargetState,
        event_id: str | None,
        lease: Any = None,
        *,
        hold: Callable[[], None] | None = None,
    ) -> TargetState:
        """Version row + state row + event marker in one transaction; return the new state.
        Given the item's ``lease`` (from ``acquire_lease``), the ledger may release it in the
        same transaction; ``release_lease`` on it afterwards is then a no-op. ``hold`` is called
        once the transaction is prepared and before anything is sent (and before each further
        transaction the call submits): it may block, and what it raises ends the call with
        nothing written (``sync.early_record``)."""
        ...

    def prepare_definitions(
        self, upstream: dict[str, Any], applied: dict[str, Any], shas: tuple[str, str]
    ) -> None:
        """Work ahead for a ``record_version`` of these documents (``shas``: their sha256 as
        the caller knows them), run in the background while the connector is written; it
        writes nothing, and ``record_version`` is correct without it."""
        ...

    def versions(
        self, api: str, target: str | None = None, *, limit: int = 20, before: int | None = None
    ) -> list[VersionRecord]:
        """Newest first, without the stored definitions."""
        ...

    def version(
        self, api: str, target: str, number: int, *, include_definitions: bool = False
    ) -> VersionRecord | None: ...

    def start_run(self, run: RunSummary) -> RunSummary | None:
        """Record a new run; None when this call created its row, else the run as stored (a
        redelivered event's: the first row is kept)."""
        ...

    def finish_item(
        self, run_id: str, outcome: TargetOutcome, *, last_chance: bool = False
    ) -> RunSummary | None:
        """Add one target's outcome (ETag-guarded); return the run once it is complete and this
        call completed it (exactly one caller gets it), else None. A target already recorded
        gets the run back only when the run's card was claimed but never sent and the claim
        may be taken over (``NotificationPendingError`` while it may still be in flight);
        ``last_chance`` (giving up) takes over a claim of this target's own earlier attempt at
        once, as no later delivery will come."""
        ...

    def get_run(self, run_id: str) -> RunSummary | None: ...

    def mark_notified(self, run_id: str, status: str) -> None: ...

    def debounce(self, key: str, seconds: float, *, claimant: str | None = None) -> bool:
        """True for the first caller of ``key`` within ``seconds`` (ETag-claimed), else False;
        also True for a later call by the same ``claimant`` (an event id) inside that window, so
        a redelivery of the event that claimed it is not dropped as a repeat of itself."""
        ...

    def stage_spec(self, content: bytes) -> str:
        """Keep a spec downloaded when its run was planned; return its key (``models.staged_key``:
        the same bytes, the same key). Written again when staged again, so it lives as long
        after the last run that names it (``sync.staging``)."""
        ...

    def staged_spec(self, key: str) -> bytes | None:
        """The bytes staged under ``key``, unchecked; None when there are none (expired)."""
        ...


class WorkQueue(Protocol):
    def send(self, item: WorkItem, *, visibility_timeout: int | None = None) -> None:
        """Enqueue ``item``; ``visibility_timeout`` (seconds) keeps it hidden that long first."""
        ...


class Notifier(Protocol):
    def notify(self, run: RunSummary) -> str:
        """Deliver one message for the run; return "accepted", "written" or "failed: <why>"."""
        ...


TargetFactory = Callable[[str, str], Target]  # (api, target name) -> Target


@dataclass
class Ports:
    """Everything the pipeline needs from the outside world."""

    specs: SpecSource
    ledger: Ledger
    queue: WorkQueue
    notifier: Notifier
    secrets: SecretStore
    targets: TargetFactory
