"""The ledger on Azure Table Storage (blob fallback for very large definitions; staged specs).

Why Table Storage: one entity-group transaction per partition is exactly the atomic unit a sync
needs (version row + state row + event marker), ETags give optimistic concurrency for leases, the
run fan-in and debouncing, and it costs nothing at this scale.

Layout (one table)::

    PartitionKey "<api>~<target>"   RowKey "state"              TargetState
                                    RowKey "lease"              owner + expiry
                                    RowKey "event~<sha256>"     one marker per processed event id
                                    RowKey "v~<9999999999-n>"   version n (inverted: newest first)
    PartitionKey "runs"             RowKey "<run id>"           the run, its outcomes (zlib chunks)
    PartitionKey "debounce"         RowKey "<sha256 of key>"    window end

Clocks: lease and debounce expiry compare this host's UTC clock with a time another host wrote;
keep leases long (minutes) compared with any plausible skew.

Large pairs (compressed above ``ledger_codec.INLINE_LIMIT``) are uploaded to a blob BEFORE the
transaction; if the transaction then fails the blob is an orphan nobody references, which is
harmless (same name is overwritten by a retry of the same version).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from sync import staging
from sync.adapters import ledger_codec as codec
from sync.adapters import run_outcomes
from sync.adapters.storage_clients import (
    StorageAccount,
    call_storage,
    default_credential,
)
from sync.errors import (
    ConfigError,
    LeaseTakenError,
    NotificationPendingError,
    PermanentError,
    SyncError,
    TransientError,
)
from sync.lru import Lru
from sync.models import (
    RUN_ID,
    Hold,
    RunSummary,
    SyncRequest,
    TargetOutcome,
    TargetState,
    VersionRecord,
    iso,
    staged_key,
    utcnow,
)
from sync.pending_write import PendingWrite

if TYPE_CHECKING:
    from azure.data.tables import TableEntity

    from sync.settings import Settings

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}\Z")
CONTAINER_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z")
MAX_VERSION = 9_999_999_999  # the row keys' arithmetic; what is stored stops at INT32_MAX
INT32_MAX = 2**31 - 1
RUNS_PARTITION = "runs"
DEBOUNCE_PARTITION = "debounce"
STATE_ROW = "state"
PENDING_PREFIX = "PendingDef"  # PendingDef00, ...: the pending write's packed definitions
LEASE_ROW = "lease"
MAX_MESSAGE_CHARS = 4_000
CAS_ATTEMPTS = 64  # optimistic-concurrency rounds on the run row (not an HTTP retry loop)
# How long a claim on a complete run's card holds, from the row's last write, before a later
# attempt of the claiming target's item may take it over: the Teams notifier's time budget (60 s)
# and a margin, so a live claimant has marked its card by then.
NOTIFY_CLAIM_SECONDS = 90.0
# Run-row properties RunSummary does not carry, kept when finish_item REPLACEs the row.
_NOT_IN_SUMMARY = ("NotifiedAt", "NotifyClaim")


def _etag(entity: TableEntity, where: str) -> str:
    """The ETag of a row as read; Table Storage sends one with every row. Every later write of
    the row is conditional on it: without one, the SDK's conditional update would raise a bare
    ValueError, and a state row would read as one that does not exist yet."""
    etag = entity.metadata.get("etag")
    if not etag:
        raise PermanentError(
            f"storage returned row {entity.get('RowKey')!r} without its ETag", where=where
        )
    return etag


class _Again(Enum):
    """finish_item's next optimistic-concurrency round (a sentinel a type checker narrows)."""

    AGAIN = "again"


_AGAIN = _Again.AGAIN

_created: set[tuple[str, str, str]] = set()  # (kind, endpoint, name) made sure of in this process
_created_lock = threading.Lock()


class ConcurrencyError(TransientError):
    """Someone else changed the row since we read it (stale ETag); re-read and try again."""


class DuplicateEventError(ConcurrencyError):
    """The event id is already recorded for this target: a redelivery raced a finished run.

    Transient on purpose: the retry calls ``seen_event`` first and skips the event.
    """


@dataclass
class TableLease:
    """A claimed lease row; ``etag`` lets ``release_lease`` delete only what is still ours.
    ``released``: the row went with the version transaction (``record_version``)."""

    api: str
    target: str
    owner: str
    expires: str
    etag: str
    released: bool = field(default=False, compare=False)


def partition_key(api: str, target: str) -> str:
    for kind, name in (("api", api), ("target", target)):
        if not isinstance(name, str) or not NAME.match(name):
            raise PermanentError(
                f"{kind} name {name!r} does not match {NAME.pattern}", where="ledger.partition_key"
            )
    return f"{api}~{target}"


def version_row_key(number: int) -> str:
    if not isinstance(number, int) or not 0 <= number <= MAX_VERSION:
        raise PermanentError(
            f"version number {number!r} is outside 0..{MAX_VERSION}", where="ledger.version"
        )
    return f"v~{MAX_VERSION - number:010d}"


def event_row_key(event_id: str) -> str:
    # Event ids are caller-chosen text; RowKey forbids / \ # ? so the id is hashed.
    return "event~" + hashlib.sha256(event_id.encode()).hexdigest()


def _check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise PermanentError(
            f"run id {run_id!r} does not match {RUN_ID.pattern}", where="ledger.run"
        )
    return run_id


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _hold_from(value: Any) -> Hold:
    """The state row's Hold JSON; keys a newer release added are ignored (a rolling upgrade
    must not stop the older instances), a missing key or a wrong type is a ValueError, and so
    is an ``until`` that ``Hold.active`` could not compare with the time now."""
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValueError(f"Hold is a JSON {type(data).__name__}, not an object")
    version, until, by = data.get("version"), data.get("until"), data.get("by")
    if type(version) is not int or not isinstance(until, str) or not isinstance(by, str):
        raise ValueError("Hold needs an integer version and text until and by")
    if _parse_time(until).tzinfo is None:
        raise ValueError(f"Hold until {until[:40]!r} has no time zone")
    return Hold(version=version, until=until, by=by)


def _whole(value: Any, name: str) -> int:
    """An integer property as the Tables SDK reads it back: an ``int`` for Edm.Int32, an
    ``EntityProperty`` for Edm.Int64 (which a hand edit may choose). Text, a double or a bool
    is a TypeError naming the property: ``int()`` would take "7" and 7.9 and hide the edit."""
    if type(value) is not int:
        from azure.data.tables import EntityProperty

        if isinstance(value, EntityProperty) and type(value.value) is int:
            return value.value
        raise TypeError(f"property {name} is {type(value).__name__}, not an integer")
    return value


def _blob_name(api: str, target: str, version: int, payload: bytes) -> str:
    """Where a version's packed definitions go when they are too big for the row."""
    return f"{api}/{target}/v{version:010d}-{hashlib.sha256(payload).hexdigest()[:16]}.zlib"


# What reading a stored row can raise when the row is not what we wrote (edited by hand, by
# another tool, or cut short): the caller names the row with ``_unreadable``'s reason.
_UNREADABLE = (
    codec.LedgerCorruptError,
    KeyError,
    TypeError,
    ValueError,
    OverflowError,
    RecursionError,
)


def _unreadable(exc: BaseException) -> str:
    """Why a version or run row does not read as one, for the error that names the row: the
    codec's own words for stored bytes, the missing property, or the exception's."""
    if isinstance(exc, codec.LedgerCorruptError):
        return exc.message
    if isinstance(exc, KeyError):
        return f"property {exc} is missing"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _azure_errors(where: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Turn what azure-core raises into the service's error tree (after the SDK's own retries)."""

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return call_storage(where, lambda: fn(*args, **kwargs))

        return wrapper

    return decorate


def _create_once(kind: str, url: str, name: str, create: Callable[[], Any]) -> None:
    """Make sure a table or container exists, once per process (the check costs a round trip)."""
    key = (kind, url, name)
    with _created_lock:
        if key not in _created:
            from azure.core.exceptions import ResourceExistsError

            with contextlib.suppress(ResourceExistsError):
                create()
            _created.add(key)


class TableLedger:
    """``sync.ports.Ledger`` on Azure Table Storage; one instance is safe to share across threads."""

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        table_endpoint: str | None = None,
        blob_endpoint: str | None = None,
        credential: Any = None,
        table_name: str,
        container: str,
        credential_factory: Callable[[], Any] | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        """``client_options`` go to the azure SDK clients (e.g. ``retry_total``, timeouts)."""
        if not connection_string and not table_endpoint:
            raise ConfigError(
                "the ledger needs a storage connection string or a table endpoint",
                path="SYNC_TABLE_ENDPOINT",
            )
        if not TABLE_NAME.match(table_name or ""):
            raise ConfigError(
                f"table name {table_name!r} does not match {TABLE_NAME.pattern}",
                path="SYNC_LEDGER_TABLE",
            )
        if not CONTAINER_NAME.match(container or ""):
            raise ConfigError(
                f"container name {container!r} does not match {CONTAINER_NAME.pattern}",
                path="SYNC_LEDGER_CONTAINER",
            )
        self._account = StorageAccount(
            connection_string=connection_string,
            credential=credential,
            credential_factory=credential_factory,
            client_options=client_options,
        )
        self._table_endpoint = table_endpoint
        self._blob_endpoint = blob_endpoint
        self.table_name = table_name
        self.container = container
        self._lock = threading.Lock()
        self._table_client: Any = None
        self._container_client: Any = None
        self._run_rows = Lru(64)  # run id -> (run row this process last wrote, its ETag, run)
        self._run_locks = Lru(64)  # run id -> the lock its finishing items take turns on

    @classmethod
    def from_settings(
        cls, settings: Settings, credential_factory: Callable[[], Any] | None = None
    ) -> TableLedger:
        """Connection string when set (Azurite, local), else endpoints + a managed identity."""
        if settings.storage_connection_string:
            return cls(
                connection_string=settings.storage_connection_string,
                table_name=settings.ledger_table,
                container=settings.ledger_container,
            )
        if not settings.table_endpoint:
            raise ConfigError(
                "set SYNC_TABLE_ENDPOINT (or SYNC_STORAGE_CONNECTION_STRING locally)",
                path="SYNC_TABLE_ENDPOINT",
            )
        return cls(
            table_endpoint=settings.table_endpoint,
            blob_endpoint=settings.blob_endpoint,
            table_name=settings.ledger_table,
            container=settings.ledger_container,
            credential_factory=credential_factory or default_credential,
        )

    # --- clients (lazy: the Azure SDK import and the table check cost cold-start time) ----------

    def _table(self) -> Any:
        if self._table_client is not None:
            return self._table_client
        with self._lock:
            if self._table_client is None:
                from azure.data.tables import TableClient

                client = self._account.client(
                    TableClient, self._table_endpoint, table_name=self.table_name
                )
                _create_once("table", client.url, self.table_name, client.create_table)
                self._table_client = client
        return self._table_client

    def _blobs(self) -> Any:
        if self._container_client is not None:
            return self._container_client
        with self._lock:
            if self._container_client is None:
                from azure.storage.blob import ContainerClient

                if not self._account.uses_connection_string and not self._blob_endpoint:
                    raise ConfigError(
                        "the ledger container (definition pairs too large for a table row, "
                        "staged specs) needs SYNC_BLOB_ENDPOINT",
                        path="SYNC_BLOB_ENDPOINT",
                    )
                client = self._account.client(
                    ContainerClient, self._blob_endpoint, container_name=self.container
                )
                _create_once("blob", client.url, self.container, client.create_container)
                self._container_client = client
        return self._container_client

    def _replace_if_unchanged(
        self, entity: dict[str, Any], etag: str, *, merge: bool = False
    ) -> Any:
        """REPLACE (or, with ``merge``, MERGE: only ``entity``'s properties) the row only while
        it still has ``etag`` (optimistic concurrency); raises azure-core's
        ResourceModifiedError when someone changed it first."""
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        return self._table().update_entity(
            entity,
            mode=UpdateMode.MERGE if merge else UpdateMode.REPLACE,
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
        )

    def _get(self, pk: str, rk: str, select: list[str] | None = None) -> TableEntity | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            if select:
                return self._table().get_entity(pk, rk, select=select)
            return self._table().get_entity(pk, rk)
        except ResourceNotFoundError:
            return None

    # --- state ------------------------------------------------------------------------------------

    @_azure_errors("ledger.state")
    def state(self, api: str, target: str) -> TargetState:
        entity = self._get(partition_key(api, target), STATE_ROW)
        return self._state_from(entity) if entity is not None else TargetState()

    @_azure_errors("ledger.save_state")
    def save_state(self, api: str, target: str, state: TargetState) -> TargetState:
        return self._save_state(api, target, state)

    def _save_state(self, api: str, target: str, state: TargetState) -> TargetState:
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        entity = self._state_entity(partition_key(api, target), state)
        where = f"ledger.save_state({api}/{target})"
        try:
            if state.etag is None:
                meta = self._table().create_entity(entity)
            else:
                meta = self._replace_if_unchanged(entity, state.etag)
        except ResourceExistsError:
            raise ConcurrencyError(
                "state row already exists but the write expected none (etag None)", where=where
            ) from None
        except ResourceModifiedError:
            raise ConcurrencyError(
                "state row changed since it was read (stale ETag)", where=where
            ) from None
        return replace(state, etag=meta["etag"])

    @_azure_errors("ledger.mark_pending")
    def mark_pending(
        self, api: str, target: str, state: TargetState, write: PendingWrite
    ) -> TargetState:
        """The marker and the write's definitions, packed as the version row will carry them
        (``codec.pack_pair`` remembers the pair, so the version row does not pack it again), in
        the state row itself: no request more than the marker alone. A pair too big to go inline
        is uploaded to a blob first, under the very name the version row's upload will use
        (the next version's number and the payload's hash: the same pair packs to the same
        bytes), so a recorded write leaves no blob of its own behind. A blob the marker never
        names (the marker's write failed) or whose write never landed is an orphan nobody
        reads, as the version rows' own are when their transaction fails."""
        pair = codec.pack_pair(
            write.upstream, write.applied, shas=(write.upstream_sha256, write.applied_sha256)
        )
        marker: dict[str, Any] = {
            "run": write.run_id,
            "sha256": pair.applied_sha256,
            "at": write.at,
            "upstream_sha256": pair.upstream_sha256,
            "upstream_len": pair.upstream_len,
            "applied_len": pair.applied_len,
            "bytes": len(pair.payload),
        }
        definitions: bytes | None = pair.payload
        if not pair.inline:
            name = _blob_name(api, target, state.version + 1, pair.payload)
            self._blobs().upload_blob(name, pair.payload, overwrite=True)
            marker["blob"], definitions = name, None
        pending = json.dumps(marker, separators=(",", ":"))
        return self._save_state(
            api, target, state.evolve(pending=pending, pending_definitions=definitions)
        )

    @_azure_errors("ledger.pending_write")
    def pending_write(self, api: str, target: str, state: TargetState) -> PendingWrite | None:
        if not state.pending:
            return None
        where = f"ledger.pending_write({api}/{target})"
        try:
            marker = json.loads(state.pending)
            if not isinstance(marker, dict):
                raise TypeError("the marker is not a JSON object")
            if "upstream_len" not in marker:  # saved without definitions (before 2026-12-06)
                return None

            def inline() -> bytes:
                if state.pending_definitions is None:
                    raise codec.LedgerCorruptError(
                        "the marker's definitions are missing", where=where
                    )
                return state.pending_definitions

            payload = self._stored_payload(
                marker.get("blob"),
                inline,
                _whole(marker["bytes"], "bytes"),
                where,
                blob_name="blob",
                what="the marker's definitions",
                holder="the marker",
            )
            upstream, applied = codec.unpack_pair(
                payload,
                upstream_len=_whole(marker["upstream_len"], "upstream_len"),
                applied_len=_whole(marker["applied_len"], "applied_len"),
                upstream_sha256=marker["upstream_sha256"],
                applied_sha256=marker["sha256"],
                where=where,
            )
            if upstream is None or applied is None:
                raise codec.LedgerCorruptError("the marker's definitions are missing", where=where)
            return PendingWrite(
                run_id=str(marker.get("run") or ""),
                at=str(marker.get("at") or ""),
                upstream=upstream,
                applied=applied,
                upstream_sha256=marker["upstream_sha256"],
                applied_sha256=marker["sha256"],
            )
        except _UNREADABLE as exc:
            why = _unreadable(exc)
        raise codec.LedgerCorruptError(
            f"the pending marker of {partition_key(api, target)} cannot be read ({why})",
            where=where,
        )

    def _state_entity(self, pk: str, state: TargetState) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": pk, "RowKey": STATE_ROW}
        for f in fields(TargetState):
            value = getattr(state, f.name)
            if f.name == "etag" or value is None:
                continue
            if f.name == "pending_definitions":
                if state.pending:  # they belong to the marker: cleared with it
                    chunks = codec.chunk_properties(value, prefix=PENDING_PREFIX)
                    entity.update(chunks, PendingDefChunks=len(chunks))
                continue
            if f.name == "hold":
                value = json.dumps({"version": value.version, "until": value.until, "by": value.by})
            elif f.name == "last_message":
                value = value[:MAX_MESSAGE_CHARS]
            elif isinstance(value, str) and len(value) > codec.MAX_STRING_CHARS:
                raise PermanentError(
                    f"state field {f.name} is {len(value)} characters, above {codec.MAX_STRING_CHARS}",
                    where=f"ledger.save_state({pk})",
                )
            entity[_pascal(f.name)] = value
        return entity

    @staticmethod
    def _state_from(entity: TableEntity) -> TargetState:
        values: dict[str, Any] = {}
        for f in fields(TargetState):
            if f.name == "etag":
                continue
            name = _pascal(f.name)
            value = entity.get(name)
            if value is None:
                continue
            try:
                if f.name == "hold":
                    value = _hold_from(value)
                elif f.name == "version":
                    value = int(value)
            except (TypeError, ValueError, OverflowError, RecursionError) as exc:
                # a row edited by hand or by another tool: the item must end with a reason that
                # names the row, not a TypeError retried until poisoned
                raise codec.LedgerCorruptError(
                    f"state row {entity['PartitionKey']}/{entity['RowKey']}: property {name} "
                    f"cannot be read ({str(exc)[:200]})",
                    where="ledger.state",
                ) from None
            values[f.name] = value
        if values.get("pending") and entity.get("PendingDefChunks") is not None:
            try:
                count = _whole(entity["PendingDefChunks"], "PendingDefChunks")
                values["pending_definitions"] = codec.join_chunks(
                    entity, count, where="ledger.state", prefix=PENDING_PREFIX
                )
            except (codec.LedgerCorruptError, TypeError) as exc:
                # read as a marker without definitions: pending_write() then says so, and the
                # write is reconciled as before this was stored (RELIABILITY.md)
                log.warning("state row %s: %s", entity.get("PartitionKey"), _unreadable(exc))
        else:
            values.pop("pending_definitions", None)
        return TargetState(**values, etag=_etag(entity, "ledger.state"))

    # --- leases -----------------------------------------------------------------------------------

    @_azure_errors("ledger.acquire_lease")
    def acquire_lease(self, api: str, target: str, owner: str, seconds: float) -> TableLease:
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        pk = partition_key(api, target)
        where = f"ledger.lease({api}/{target})"
        if not seconds > 0:
            raise PermanentError(f"lease length {seconds!r} s must be greater than 0", where=where)
        now = utcnow()
        expires = iso(now + timedelta(seconds=seconds)) or ""
        entity = {"PartitionKey": pk, "RowKey": LEASE_ROW, "Owner": owner, "Expires": expires}
        try:
            meta = self._table().create_entity(entity)
            return TableLease(api, target, owner, expires, meta["etag"])
        except ResourceExistsError:
            pass
        current = self._get(pk, LEASE_ROW)
        if current is None:  # released between our create and read: try once more
            try:
                meta = self._table().create_entity(entity)
                return TableLease(api, target, owner, expires, meta["etag"])
            except ResourceExistsError:
                current = self._get(pk, LEASE_ROW)
        if current is None:
            raise LeaseTakenError("lease row is being claimed by another worker", where=where)
        holder, until = str(current.get("Owner")), _parse_time(current.get("Expires"))
        if holder != owner and until > now:
            raise LeaseTakenError(
                f"held by {holder} until {iso(until)}",
                where=where,
                retry_after=max((until - now).total_seconds(), 0.0),
            )
        try:
            meta = self._replace_if_unchanged(entity, _etag(current, where))
        except ResourceModifiedError:
            raise LeaseTakenError(
                "another worker claimed the expired lease first", where=where
            ) from None
        if holder != owner:
            log.info("took over expired lease of %s on %s/%s", holder, api, target)
        return TableLease(api, target, owner, expires, meta["etag"])

    @_azure_errors("ledger.release_lease")
    def release_lease(self, lease: TableLease) -> None:
        """Delete the lease row only while it is still ours: under the ETag our claim got back, so
        a row another worker took over (a new ETag) or already removed is left alone, in one
        round trip."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        if lease.released:  # deleted by the version transaction already
            return
        try:
            self._table().delete_entity(
                partition_key(lease.api, lease.target),
                LEASE_ROW,
                etag=lease.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            log.warning(
                "lease on %s/%s is no longer held by %s; not releasing",
                lease.api,
                lease.target,
                lease.owner,
            )

    # --- events and versions ----------------------------------------------------------------------

    @_azure_errors("ledger.seen_event")
    def seen_event(self, api: str, target: str, event_id: str) -> bool:
        return (
            self._get(partition_key(api, target), event_row_key(event_id), select=["RowKey"])
            is not None
        )

    def prepare_definitions(
        self, upstream: dict[str, Any], applied: dict[str, Any], shas: tuple[str, str]
    ) -> None:
        """Compress the pair the version row will carry while the connector is written (zlib
        lets go of the GIL): ``record_version`` then finds it packed (``codec.pack_pair`` keeps
        a pair by the hashes it was claimed and checked under)."""
        codec.pack_pair(upstream, applied, shas=shas)

    @_azure_errors("ledger.record_version")
    def record_version(
        self,
        record: VersionRecord,
        state: TargetState,
        event_id: str | None,
        lease: TableLease | None = None,
        *,
        hold: Callable[[], None] | None = None,
    ) -> TargetState:
        """One transaction: version row, state row, event marker and, given the ``lease`` this
        item holds on the same target, the lease row's release (under its ETag): one storage
        request less per update. A lease that is no longer ours (expired and taken over, or
        gone) refuses the transaction; it is then sent again without it, so what is recorded
        does not depend on the lease, as when the release was a request of its own.

        ``hold`` (see the port) is azure-core's request hook of the transaction, which runs
        after the SDK built the multipart body (so that work is done before the hold) and once
        per ``submit_transaction``, not on azure-core's own retries. A definition pair too large
        for the row calls it before its blob is written instead, so that case is not prepared
        ahead (and no blob is written for a record never sent)."""
        from azure.core import MatchConditions
        from azure.data.tables import TableTransactionError, UpdateMode

        pk_api, pk_target = record.api, record.target
        pk = partition_key(pk_api, pk_target)
        where = f"ledger.record_version({record.api}/{record.target} v{record.version})"
        version_entity = self._version_entity(pk, record, where, hold)
        state_entity = self._state_entity(pk, state)
        ops: list[tuple[Any, ...]] = [("create", version_entity)]
        if state.etag is None:
            ops.append(("create", state_entity))
        else:
            ops.append(
                (
                    "update",
                    state_entity,
                    {
                        "mode": UpdateMode.REPLACE,
                        "etag": state.etag,
                        "match_condition": MatchConditions.IfNotModified,
                    },
                )
            )
        if event_id:
            marker = {
                "PartitionKey": pk,
                "RowKey": event_row_key(event_id),
                "EventId": event_id[: codec.MAX_STRING_CHARS],
                "Version": record.version,
                "RunId": record.run_id,
                "RecordedAt": iso(utcnow()),
            }
            ops.append(("create", marker))
        releasing = (
            lease
            if lease is not None
            and not lease.released
            and (lease.api, lease.target) == (pk_api, pk_target)
            else None
        )
        if releasing is not None:
            release = {"PartitionKey": pk, "RowKey": LEASE_ROW}
            condition = {"etag": releasing.etag, "match_condition": MatchConditions.IfNotModified}
            ops.append(("delete", release, condition))
        hooked: dict[str, Any] = {} if hold is None else {"raw_request_hook": lambda _: hold()}
        try:
            try:
                results = self._table().submit_transaction(ops, **hooked)
            except TableTransactionError as exc:
                # the lease's own refusal: its index, or 0 where a service names none (the
                # version row's create fails neither way with a 404 or 412 of its own making)
                lease_refused = exc.status_code in (404, 412) and exc.index in (0, len(ops) - 1)
                if not (releasing is not None and lease_refused):
                    raise
                log.warning(
                    "lease on %s no longer held by %s; recording without releasing it",
                    pk,
                    releasing.owner,
                )
                releasing = None
                results = self._table().submit_transaction(ops[:-1], **hooked)
        except TableTransactionError as exc:
            raise self._transaction_error(
                exc,
                where,
                lambda: bool(event_id and self.seen_event(pk_api, pk_target, event_id)),
            ) from exc
        if releasing is not None:
            releasing.released = True
        return replace(state, etag=results[1]["etag"])

    @staticmethod
    def _transaction_error(exc: Any, where: str, event_seen: Callable[[], bool]) -> SyncError:
        """Name what failed; ``index`` is the failing operation (0 version, 1 state, 2 marker)."""
        code = str(getattr(exc, "error_code", "") or "")
        index = getattr(exc, "index", None)
        if exc.status_code == 412:
            return ConcurrencyError("state row changed since it was read (stale ETag)", where=where)
        if exc.status_code == 409:
            if index == 2 or (index == 0 and event_seen()):
                return DuplicateEventError("event id already recorded for this target", where=where)
            if index == 1:
                return ConcurrencyError(
                    "state row already exists but the write expected none (etag None)", where=where
                )
            return ConcurrencyError("this version number is already recorded", where=where)
        if exc.status_code == 413 or code in ("EntityTooLarge", "RequestBodyTooLarge"):
            return PermanentError(f"version row too large for Table Storage ({code})", where=where)
        if exc.status_code and (exc.status_code >= 500 or exc.status_code in (408, 429)):
            return TransientError(
                f"transaction failed: HTTP {exc.status_code} ({code})", where=where
            )
        return PermanentError(f"transaction refused: HTTP {exc.status_code} ({code})", where=where)

    def _version_entity(
        self,
        pk: str,
        record: VersionRecord,
        where: str,
        hold: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        if record.version > INT32_MAX:  # the SDK sends a plain int as Edm.Int32
            raise PermanentError(
                f"version {record.version} is past {INT32_MAX:,}, the largest number a version "
                "row stores",
                where=where,
            )
        entity: dict[str, Any] = {
            "PartitionKey": pk,
            "RowKey": version_row_key(record.version),
            "Number": record.version,
            "Api": record.api,
            "Target": record.target,
            "Reason": record.reason,
            "Outcome": record.outcome,
            "RunId": record.run_id,
            "CreatedAt": record.created_at,
            "EventId": record.event_id,
            "EventType": record.event_type,
            "EventTime": record.event_time,
            "Caller": record.caller,
            "SourceUrl": record.source_url,
            "InfoVersion": record.info_version,
            "Commit": record.commit,
            "UpstreamSha256": record.upstream_sha256,
            "AppliedSha256": record.applied_sha256,
        }
        suffix, summary = run_outcomes.fitting_summary(record.summary or {}, where=where)
        entity["Summary" + suffix] = summary
        pair = codec.pack_pair(
            record.upstream,
            record.applied,
            shas=(record.upstream_sha256, record.applied_sha256),
        )
        entity.update(
            DefUpstreamSha256=pair.upstream_sha256,
            DefAppliedSha256=pair.applied_sha256,
            DefUpstreamLen=pair.upstream_len,
            DefAppliedLen=pair.applied_len,
            DefBytes=len(pair.payload),
        )
        if pair.inline:
            chunks = codec.chunk_properties(pair.payload)
            entity["DefChunks"] = len(chunks)
            entity.update(chunks)
        else:
            name = _blob_name(record.api, record.target, record.version, pair.payload)
            if hold is not None:
                hold()  # the blob is written only for a record that will be sent
            self._blobs().upload_blob(name, pair.payload, overwrite=True)
            log.info(
                "definitions of %s v%d (%d bytes) stored in blob",
                pk,
                record.version,
                len(pair.payload),
            )
            entity["DefChunks"] = 0
            entity["DefBlob"] = name
        return {k: v for k, v in entity.items() if v is not None}

    LIST_FIELDS = (
        "PartitionKey",
        "RowKey",
        "Number",
        "Api",
        "Target",
        "Reason",
        "Outcome",
        "RunId",
        "CreatedAt",
        "EventId",
        "EventType",
        "EventTime",
        "Caller",
        "SourceUrl",
        "InfoVersion",
        "Commit",
        "UpstreamSha256",
        "AppliedSha256",
        "Summary",
        "SummaryZ",
    )

    # the listed properties that are text when present (Api and Target must be): all but the
    # keys, the number and the JSON summary
    _VERSION_TEXT = tuple(
        name
        for name in LIST_FIELDS
        if name not in ("PartitionKey", "RowKey", "Number", "Summary", "SummaryZ")
    )

    def _record_from(self, entity: dict[str, Any], *, definitions: bool) -> VersionRecord:
        """The version row as a record; a row edited by hand or left by another tool that does
        not read as one is a ``LedgerCorruptError`` naming the row (a KeyError or ValueError
        would end the item, or the versions API call, without a reason)."""
        pk, rk = entity["PartitionKey"], entity["RowKey"]
        where = f"ledger.version({pk} {rk})"
        try:
            for name in ("Api", "Target", "Number"):
                if entity.get(name) is None:
                    raise KeyError(name)
            for name in self._VERSION_TEXT:
                value = entity.get(name)
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"property {name} is {type(value).__name__}, not text")
            number = _whole(entity["Number"], "Number")
            if not 0 <= number <= MAX_VERSION:
                raise ValueError(f"Number {number} is outside 0..{MAX_VERSION}")
            summary = codec.decode_json_property(entity, "Summary", where=where)
            if not isinstance(summary, dict | None):
                raise TypeError(f"Summary is a JSON {type(summary).__name__}, not an object")
            upstream = applied = None
            if definitions:
                upstream, applied = self._definitions(entity, where)
            return VersionRecord(
                api=entity["Api"],
                target=entity["Target"],
                version=number,
                reason=entity.get("Reason", ""),
                outcome=entity.get("Outcome", ""),
                run_id=entity.get("RunId", ""),
                created_at=entity.get("CreatedAt", ""),
                event_id=entity.get("EventId"),
                event_type=entity.get("EventType"),
                event_time=entity.get("EventTime"),
                caller=entity.get("Caller"),
                source_url=entity.get("SourceUrl"),
                info_version=entity.get("InfoVersion"),
                commit=entity.get("Commit"),
                summary=summary or {},
                upstream_sha256=entity.get("UpstreamSha256"),
                applied_sha256=entity.get("AppliedSha256"),
                upstream=upstream,
                applied=applied,
            )
        except _UNREADABLE as exc:
            why = _unreadable(exc)
        raise codec.LedgerCorruptError(f"version row {pk}/{rk} cannot be read ({why})", where=where)

    def _definitions(
        self, entity: dict[str, Any], where: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The stored pair, verified; a Def* property of the wrong type is a TypeError for
        ``_record_from`` to name the row with."""
        payload = self._stored_payload(
            entity.get("DefBlob"),
            lambda: codec.join_chunks(
                entity, _whole(entity.get("DefChunks", 0), "DefChunks"), where=where
            ),
            _whole(entity.get("DefBytes", -1), "DefBytes"),
            where,
            blob_name="property DefBlob",
            what="stored definitions",
            holder="the row",
        )
        return codec.unpack_pair(
            payload,
            upstream_len=_whole(entity.get("DefUpstreamLen", -1), "DefUpstreamLen"),
            applied_len=_whole(entity.get("DefAppliedLen", -1), "DefAppliedLen"),
            upstream_sha256=entity.get("DefUpstreamSha256"),
            applied_sha256=entity.get("DefAppliedSha256"),
            where=where,
        )

    def _stored_payload(
        self,
        blob: Any,
        inline: Callable[[], bytes],
        recorded_bytes: int,
        where: str,
        *,
        blob_name: str,
        what: str,
        holder: str,
    ) -> bytes:
        """A packed pair as a version row or a pending marker keeps it: from the blob it names
        (a big pair), else ``inline()``; its length checked against what ``holder`` records. A
        ``blob`` that is not text is a TypeError for the caller to name its row with."""
        if blob is not None and not isinstance(blob, str):
            raise TypeError(f"{blob_name} is {type(blob).__name__}, not text")
        if blob:
            from azure.core.exceptions import ResourceNotFoundError

            try:
                payload = self._blobs().download_blob(blob).readall()
            except ResourceNotFoundError:
                raise codec.LedgerCorruptError(f"blob {blob} is missing", where=where) from None
        else:
            payload = inline()
        if len(payload) != recorded_bytes:
            raise codec.LedgerCorruptError(
                f"{what} are {len(payload)} bytes compressed, {holder} records {recorded_bytes}",
                where=where,
            )
        return payload

    @_azure_errors("ledger.version")
    def version(
        self, api: str, target: str, number: int, *, include_definitions: bool = False
    ) -> VersionRecord | None:
        pk, rk = partition_key(api, target), version_row_key(number)
        entity = (
            self._get(pk, rk) if include_definitions else self._get(pk, rk, list(self.LIST_FIELDS))
        )
        return self._record_from(entity, definitions=include_definitions) if entity else None

    @_azure_errors("ledger.versions")
    def versions(
        self, api: str, target: str | None = None, *, limit: int = 20, before: int | None = None
    ) -> list[VersionRecord]:
        """Newest first, without definitions. ``before`` pages by version number.

        Without a target, each target's newest ``limit`` (below ``before``, numbers being per
        target) are merged by ``created_at``; page a single target for exact paging.
        """
        if limit <= 0:
            return []
        if target is not None:
            return self._target_versions(api, target, limit, before)
        records: list[VersionRecord] = []
        for name in self._targets_of(api):
            records.extend(self._target_versions(api, name, limit, before))
        records.sort(key=lambda r: (r.created_at, r.version), reverse=True)
        return records[:limit]

    def _target_versions(
        self, api: str, target: str, limit: int, before: int | None
    ) -> list[VersionRecord]:
        pk = partition_key(api, target)
        low = "v~" if before is None else version_row_key(before)
        # "v~:" sorts right after every "v~<digits>" key; "gt" skips version `before` itself.
        query = "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high"
        pages = self._table().query_entities(
            query,
            parameters={"pk": pk, "low": low, "high": "v~:"},
            select=list(self.LIST_FIELDS),
            results_per_page=min(limit, 1000),
        )
        out: list[VersionRecord] = []
        for entity in pages:
            out.append(self._record_from(entity, definitions=False))
            if len(out) >= limit:
                break
        return out

    def _targets_of(self, api: str) -> list[str]:
        partition_key(api, "x")  # validates the api name
        rows = self._table().query_entities(
            "PartitionKey gt @low and PartitionKey lt @high and RowKey eq @state",
            parameters={"low": f"{api}~", "high": f"{api}~~", "state": STATE_ROW},
            select=["PartitionKey"],
        )
        return sorted(row["PartitionKey"].split("~", 1)[1] for row in rows)

    # --- runs (fan-in) ----------------------------------------------------------------------------

    @_azure_errors("ledger.start_run")
    def start_run(self, run: RunSummary) -> RunSummary | None:
        """Create the run row; a second start of the same run id (redelivery) keeps the first
        and returns it as stored (one read, only then), so the planner can leave out the targets
        that finished already."""
        from azure.core.exceptions import ResourceExistsError

        entity = self._run_entity(run)
        for _ in range(2):  # a row deleted (by hand) between the create and the read: once more
            try:
                written = self._table().create_entity(entity)
            except ResourceExistsError:
                log.info("run %s already started; keeping the existing row", run.run_id)
                stored = self._get(RUNS_PARTITION, entity["RowKey"])
                if stored is None:
                    continue
                try:
                    return self._run_from(stored)
                except PermanentError as exc:  # unreadable: plan as if nothing had finished
                    log.error("run %s: the stored row cannot be read: %s", run.run_id, exc)
                    return run
            else:
                self._remember_run_row(entity, written, run)
                return None
        raise TransientError("run row deleted while it was being started", where="ledger.start_run")

    @_azure_errors("ledger.get_run")
    def get_run(self, run_id: str) -> RunSummary | None:
        entity = self._get(RUNS_PARTITION, _check_run_id(run_id))
        return self._run_from(entity) if entity is not None else None

    @_azure_errors("ledger.finish_item")
    def finish_item(
        self, run_id: str, outcome: TargetOutcome, *, last_chance: bool = False
    ) -> RunSummary | None:
        """Add the outcome under the row's ETag; only the update that completes the run returns it.

        The loop is optimistic concurrency on one row (each round re-reads), not a network retry:
        azure-core already retries transport errors underneath. The items of one run that finish
        in this process take turns (a lock per run): each starts from the row the one before it
        wrote, so a fan-out's concurrent workers neither read the row back nor refuse each other
        (20 targets, 4 at a time: ~26 reads and a few refused REPLACEs less). Other processes
        are still kept apart by the ETag.
        """
        rk = _check_run_id(run_id)
        with self._run_lock(rk):
            return self._finish_item(rk, outcome, last_chance)

    def _run_lock(self, rk: str) -> threading.Lock:
        with self._lock:
            lock = self._run_locks.get(rk)
            if lock is None:
                lock = threading.Lock()
                self._run_locks.put(rk, lock)
            return lock

    def _finish_item(
        self, rk: str, outcome: TargetOutcome, last_chance: bool = False
    ) -> RunSummary | None:
        from azure.core.exceptions import ResourceModifiedError

        where = f"ledger.finish_item({rk}, {outcome.target})"
        claim = uuid.uuid4().hex  # names this call in the write that completes the run
        known = self._run_rows.get(rk)  # the row as this process last wrote it, its ETag, decoded
        for attempt in range(CAS_ATTEMPTS):
            if known is not None:  # first round only: if anyone wrote since, the ETag says so
                entity, etag, run = known
                known, trusted = None, True
            else:
                entity = self._get(RUNS_PARTITION, rk)
                if entity is None:
                    raise PermanentError("run was never started (no run row)", where=where)
                etag, trusted = _etag(entity, where), False
                run = self._run_from(entity)
            if any(o.target == outcome.target for o in run.outcomes):
                if trusted:  # decide on the stored row: another process may have notified
                    self._run_rows.pop(rk)
                    continue
                decided = self._recorded_before(
                    rk, entity, etag, run, claim, outcome.target, last_chance
                )
                if decided is _AGAIN:
                    continue
                return decided
            if outcome.target not in run.targets:
                log.warning(
                    "run %s does not list target %s; recording it anyway", rk, outcome.target
                )
            was_complete = run.complete
            updated = replace(run, outcomes=(*run.outcomes, outcome))
            row = self._run_entity(updated)
            for kept in _NOT_IN_SUMMARY:  # REPLACE must not drop them
                if entity.get(kept):
                    row[kept] = entity[kept]
            if updated.complete and not was_complete:  # the caller sends the card
                row["NotifyClaim"] = f"{outcome.target} {claim}"
            try:
                written = self._replace_if_unchanged(row, etag)
            except ResourceModifiedError:
                if trusted:  # a remembered row that went stale is re-read at once
                    self._run_rows.pop(rk)
                else:
                    time.sleep(random.uniform(0, 0.01 * min(attempt + 1, 10)))
                continue
            self._remember_run_row(row, written, updated)
            return updated if updated.complete and not was_complete else None
        raise ConcurrencyError(f"run row kept changing over {CAS_ATTEMPTS} attempts", where=where)

    def _recorded_before(
        self,
        rk: str,
        entity: dict[str, Any],
        etag: str,
        run: RunSummary,
        claim: str,
        target: str,
        last_chance: bool,
    ) -> RunSummary | Literal[_Again.AGAIN] | None:
        """The target's outcome is in the row already: a redelivered item, or this very call
        when the answer to its REPLACE was lost (azure-core resent it and met the ETag its own
        first copy changed). The first outcome is kept, and None returned, unless the run is
        complete, no card is marked sent and the claim on the card (``NotifyClaim``: the target
        whose outcome completed the run, and a token of that call) is this target's:

        - this call's own token: its answer was lost, the card is this call's to send;
        - an earlier attempt of this target's item (the host delivers an item once at a time and
          acknowledges it only after the card, so that attempt died or failed): taken over once
          the row's last write is ``NOTIFY_CLAIM_SECONDS`` old, or at once on the
          ``last_chance`` (giving up: no later delivery would); before that
          ``NotificationPendingError`` (transient), so the queue asks again later, in case a
          duplicate message of the item is still sending it.

        Another target's claim is left to its own item, whose message stays unacknowledged
        until the card is sent. The run is returned after the claim was written again under the
        row's ETag (which restarts its clock; ``_AGAIN`` when someone wrote first). Before,
        every such call returned None, and a run whose completing answer was lost, or whose
        worker died before the card, got none."""
        from azure.core.exceptions import ResourceModifiedError

        if not run.complete or entity.get("NotifiedAt") or entity.get("Notified"):
            log.info("run %s already has an outcome for %s; keeping the first", rk, target)
            return None
        # a row completed before claims existed: the last outcome's target completed it
        holder, _, token = str(entity.get("NotifyClaim") or run.outcomes[-1].target).partition(" ")
        if holder != target:
            log.info("run %s: its card is %s's to send; %s adds nothing", rk, holder, target)
            return None
        age = _seconds_since(entity)
        if token != claim and not last_chance and (age is None or age < NOTIFY_CLAIM_SECONDS):
            shown = "at an unknown time" if age is None else f"{age:.0f} s ago"
            raise NotificationPendingError(
                f"run {rk} is complete and its card was claimed {shown} but not sent yet",
                where=f"ledger.finish_item({rk}, {target})",
                retry_after=NOTIFY_CLAIM_SECONDS - (age or 0.0),
            )
        taking = {"PartitionKey": RUNS_PARTITION, "RowKey": rk, "NotifyClaim": f"{target} {claim}"}
        try:
            self._replace_if_unchanged(taking, etag, merge=True)
        except ResourceModifiedError:
            return _AGAIN
        self._run_rows.pop(rk)
        log.warning(
            "run %s was complete without its card (%s); the card goes out now",
            rk,
            "the answer to its completing write was lost"
            if token == claim
            else f"claimed by an earlier attempt of {target}",
        )
        return run

    @_azure_errors("ledger.mark_notified")
    def mark_notified(self, run_id: str, status: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        entity = {
            "PartitionKey": RUNS_PARTITION,
            "RowKey": _check_run_id(run_id),
            "Notified": status[:MAX_MESSAGE_CHARS],
            "NotifiedAt": iso(utcnow()),
        }
        self._run_rows.pop(entity["RowKey"])  # the MERGE makes any remembered copy stale
        try:  # MERGE touches only these two properties, so no ETag race with finish_item
            self._table().update_entity(entity, mode=UpdateMode.MERGE)
        except ResourceNotFoundError:
            raise PermanentError(
                "run was never started (no run row)", where=f"ledger.mark_notified({run_id})"
            ) from None

    def _remember_run_row(self, row: dict[str, Any], written: Any, run: RunSummary) -> None:
        """Keep the run row this process just wrote with the ETag the write returned (and the
        run it encodes): the next ``finish_item`` of the run (the CLI's, or the next item a warm
        worker finishes) starts from it instead of reading and decoding the row back; a stale
        copy costs one refused REPLACE."""
        etag = written.get("etag") if isinstance(written, dict) else None
        if etag:
            self._run_rows.put(row["RowKey"], (row, etag, run))

    def _run_entity(self, run: RunSummary) -> dict[str, Any]:
        packed = run_outcomes.encode(
            run.outcomes, limit=codec.INLINE_LIMIT, where=f"ledger.run({run.run_id})"
        )
        suffix, request = codec.encode_json_property(run.request.to_dict())
        chunks = codec.chunk_properties(packed, prefix="Out")
        entity: dict[str, Any] = {
            "PartitionKey": RUNS_PARTITION,
            "RowKey": _check_run_id(run.run_id),
            "Api": run.api,
            "Request" + suffix: request,
            "Targets": json.dumps(list(run.targets)),
            "CreatedAt": run.created_at or iso(utcnow()),
            "Notified": run.notified,
            "Complete": run.complete,
            "OutChunks": len(chunks),
            "OutBytes": len(packed),
            **chunks,
        }
        return {k: v for k, v in entity.items() if v is not None}

    @staticmethod
    def _run_from(entity: dict[str, Any]) -> RunSummary:
        """The run row as a summary; a row edited by hand or left by another release that does
        not read as one is a ``LedgerCorruptError`` naming the row (a KeyError or TypeError
        would end the item, or the runs API call, without a reason)."""
        where = f"ledger.run({entity['RowKey']})"
        try:
            chunks = _whole(entity.get("OutChunks", 0), "OutChunks")  # not int(): "3" or 2.9
            packed = codec.join_chunks(entity, chunks, where=where, prefix="Out")
            outcomes = run_outcomes.decode(packed, where=where)
            targets = json.loads(entity["Targets"])
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                raise TypeError("Targets is not a JSON list of target names")
            request = codec.decode_json_property(entity, "Request", where=where)
            if not isinstance(request, dict):
                raise TypeError(f"Request is a JSON {type(request).__name__}, not an object")
            return RunSummary(
                run_id=entity["RowKey"],
                api=entity["Api"],
                request=SyncRequest.from_dict(request),
                targets=tuple(targets),
                outcomes=tuple(TargetOutcome.from_dict(o) for o in outcomes),
                created_at=entity.get("CreatedAt"),
                notified=entity.get("Notified"),
            )
        except (*_UNREADABLE, AttributeError) as exc:
            why = _unreadable(exc)
        raise codec.LedgerCorruptError(
            f"run row {RUNS_PARTITION}/{entity['RowKey']} cannot be read ({why})", where=where
        )

    # --- debounce ---------------------------------------------------------------------------------

    @_azure_errors("ledger.debounce")
    def debounce(self, key: str, seconds: float, *, claimant: str | None = None) -> bool:
        """The first caller of ``key`` within ``seconds`` wins the window (create, or replace an
        expired row under its ETag, so of racing callers exactly one wins).

        ``claimant`` (the event id) is kept on the row and wins again inside its own window: the
        row is written before the run is planned, so when planning then fails (the trigger
        raises, Event Grid redelivers) or the process dies, the redelivery must not be dropped
        as a repeat of itself; that deploy's sync would be lost. Undoing the row on failure
        would not cover a process that died. A row without a claimant, or another one's, is
        debounced as before."""
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        if not seconds > 0:
            raise PermanentError(
                f"debounce window {seconds!r} s must be greater than 0", where="ledger.debounce"
            )
        now = utcnow()
        entity: dict[str, Any] = {
            "PartitionKey": DEBOUNCE_PARTITION,
            "RowKey": hashlib.sha256(key.encode()).hexdigest(),
            "Key": key[:MAX_MESSAGE_CHARS],
            "Until": iso(now + timedelta(seconds=seconds)),
        }
        if claimant is not None:
            entity["Claimant"] = claimant[:MAX_MESSAGE_CHARS]  # event ids: 512 characters at most
        try:
            self._table().create_entity(entity)
            return True
        except ResourceExistsError:
            pass
        current = self._get(DEBOUNCE_PARTITION, entity["RowKey"])
        if current is None:
            return False  # someone is re-creating it right now
        if _parse_time(current["Until"]) > now:
            # inside the window: only its claimant's redelivery goes through (nothing written)
            return claimant is not None and current.get("Claimant") == entity["Claimant"]
        try:
            self._replace_if_unchanged(entity, _etag(current, "ledger.debounce"))
        except ResourceModifiedError:
            return False
        return True

    # --- staged specs (sync.staging) ----------------------------------------------------------

    @_azure_errors("ledger.stage_spec")
    def stage_spec(self, content: bytes) -> str:
        """A blob named by the content's sha256. Overwritten when staged again: its last write
        is what the lifecycle rule counts its 8 days from, and a later run may name it."""
        key = staged_key(content)
        self._blobs().upload_blob(staging.blob_name(key), content, overwrite=True)
        return key

    @_azure_errors("ledger.staged_spec")
    def staged_spec(self, key: str) -> bytes | None:
        from azure.core.exceptions import ResourceNotFoundError

        name = staging.blob_name(key)  # before any request: a key of another form is refused
        try:
            return bytes(self._blobs().download_blob(name).readall())
        except ResourceNotFoundError:
            return None


def _seconds_since(entity: Any) -> float | None:
    """Age of the row's last write (the service's ``Timestamp``): the write that completed the
    run or took its card's claim over, as nothing else writes a complete row before its card is
    marked sent but an outcome for a target the run did not list, which only restarts the
    clock. The service's clock, not the claimant's: a write that took long to land counts from
    when it did. None when the row carries no time."""
    stamp = (getattr(entity, "metadata", None) or {}).get("timestamp")
    if not isinstance(stamp, datetime):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return max(0.0, (utcnow() - stamp).total_seconds())
