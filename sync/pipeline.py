"""One work item (API x target) through every stage: the heart of the worker.

fetch -> parse -> ref guard -> normalize -> overlay -> overrides -> merge -> validate -> diff ->
policy -> (dry run stops) -> pending marker -> apply -> verify -> record.

Nothing is written unless the definition really changes, so a redelivered event or an unchanged
spec costs no write to the connector or the ledger. A crash between the connector write and the
ledger write leaves a ``pending`` marker on the state row; the next run sees the connector already
holds that definition and records the missing version instead of writing again.
"""

from __future__ import annotations

import concurrent.futures
import copy
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from sync import decode_turn, drift, staging, write_progress
from sync.background import in_background, settle
from sync.config import ApiConfig, SyncMap, TargetConfig
from sync.decode_turn import Turn
from sync.errors import (
    BlockedError,
    PermanentError,
    SpecError,
    SpecNotNamedError,
    SyncError,
    TargetError,
)
from sync.logs import set_stage
from sync.lru import Lru
from sync.models import (
    CurrentConnector,
    FetchedSpec,
    Hold,
    Result,
    TargetOutcome,
    TargetState,
    VersionRecord,
    WorkItem,
    event_identity,
    iso,
    utcnow,
)
from sync.ports import Ledger, Ports, Target
from sync.redact import redact_url
from sync.spec.canonical import compact_bytes_kept, sha256_hex, sha256_hex_kept
from sync.spec.parse import load_object

if TYPE_CHECKING:
    from sync.early_record import EarlyRecord
    from sync.pending_write import PendingWrite

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Prepared:
    """The upstream side of a sync, computed once per work item."""

    upstream: dict[str, Any]
    info_version: str | None
    source_url: str | None
    etag: str | None = None
    last_modified: str | None = None
    losses: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    desired: dict[str, Any] | None = None  # rollback: the recorded applied definition, as is
    _sha: str | None = None

    @property
    def upstream_sha(self) -> str:
        if self._sha is None:
            self._sha = sha256_hex(self.upstream)
        return self._sha


@dataclass
class Early:
    """What the lease-free pre-check learned, so the stages under the lease do not redo it."""

    prepared: Prepared | None = None
    not_modified: str | None = None  # a 304 on a drift run: only the connector may have moved
    current: CurrentConnector | None = None
    reading: Future[CurrentConnector] | None = None  # the read started when the download came


# Shared by the targets of a fan-out and by later runs of a warm worker. Cached documents are
# never mutated: every stage after them builds new objects (a test checks the hashes).
_PREPARED = Lru(8)  # (api, overlay, overrides, sha of raw spec) -> upstream, losses, warnings, sha
_BASES = Lru(32)  # (api, target, version) -> recorded upstream (the merge base)
_REPORTS = Lru(64)  # (sha of the definition, limit, strict) -> ValidationReport
FETCH_SHARE_SECONDS = 600.0  # a run's download is shared this long; a later retry downloads again
_MERGES = Lru(4)  # ids of (base, ours, theirs) -> them, the merge, its conflicts and sha256
_DIFFS = Lru(16)  # (key of the connector's definition, key of the new one) -> Diff, see diff_cached


class Unchanged(Exception):
    """Raised inside the stages to stop early with nothing written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def apply_overrides(doc: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Per-target host/basePath/schemes: each environment has its own backend."""
    if not overrides:
        return doc
    out = dict(doc)
    for key in ("host", "basePath", "schemes"):
        if key in overrides:
            out[key] = overrides[key]
    return out


def prepare_upstream(
    api: ApiConfig, tcfg: TargetConfig, raw: bytes, *, source: str
) -> tuple[dict[str, Any], list[str], list[str], str]:
    """Bytes of the API's spec -> the Swagger 2.0 document this target should converge to, with
    its sha256 (canonical JSON).

    Cached by content: the targets of one fan-out (and a redelivered event) parse, convert,
    overlay and hash the same bytes once."""
    overlay_stamp = None
    if api.overlay is not None:
        stat = api.overlay.stat()
        overlay_stamp = (str(api.overlay), stat.st_mtime_ns, stat.st_size)
    key = (
        api.name,
        overlay_stamp,
        json.dumps(tcfg.overrides, sort_keys=True),
        hashlib.sha256(raw).hexdigest(),
    )

    def prepare() -> tuple[dict[str, Any], tuple[str, ...], tuple[str, ...], str]:
        from sync.spec.convert import normalize
        from sync.spec.overlay import apply_overlay
        from sync.spec.refs import check_refs

        doc = load_object(raw, source=source)
        check_refs(doc, keep=True)  # parsed just now, changed by no one: validate reuses it
        normalized = normalize(doc, owned=True)  # parsed just now, referenced nowhere else
        warnings: list[str] = []
        result = normalized.doc
        if normalized.generated_operation_ids:
            warnings.append(
                "generated operationIds: " + ", ".join(normalized.generated_operation_ids[:20])
            )
        if api.overlay is not None:
            overlay = load_object(api.overlay.read_bytes(), source=str(api.overlay))
            check_refs(overlay)
            result, overlay_warnings = apply_overlay(result, overlay)
            warnings.extend(overlay_warnings)
        result = apply_overrides(result, tcfg.overrides)
        sha = sha256_hex_kept(result)  # the ledger stores these very bytes (kept_bytes)
        return result, tuple(normalized.losses), tuple(warnings), sha

    # Single flight: a fan-out's workers get the shared download at the same moment, and each
    # used to miss the cache and prepare the same bytes itself (~5 of 20 targets, ~10 ms of CPU
    # each for 512 KB); sharing one document also lets every later cache keyed by it hit.
    upstream, losses, warnings, sha = _PREPARING.cached(_PREPARED, key, prepare)
    return upstream, list(losses), list(warnings), sha


class SingleFlight:
    """Concurrent askers for the same key share one computation: the first runs it (``lead``),
    the others wait for its result or its exception (``join`` hands them the future)."""

    def __init__(self) -> None:
        self._running: dict[Any, Future[Any]] = {}
        self._lock = threading.Lock()

    def join(self, key: Any) -> tuple[Future[Any], bool]:
        """The key's future, and whether the caller is the one to compute it."""
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                return running, False
            mine: Future[Any] = Future()
            self._running[key] = mine
            return mine, True

    def lead(self, key: Any, future: Future[Any], compute: Callable[[], T]) -> T:
        """Run ``compute`` for the waiters of ``key``; its result or exception reaches them all."""
        try:
            value = compute()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(value)
            return value
        finally:
            with self._lock:
                del self._running[key]

    def cached(self, cache: Lru, key: Any, compute: Callable[[], T]) -> T:
        """A result ``cache`` holds for ``key``, else the running computation's, else ``compute``
        run here, its result kept in ``cache`` before the waiters get it."""
        done = cache.get(key)
        if done is not None:
            return done
        running, leader = self.join(key)
        if not leader:
            return running.result()
        done = cache.get(key)  # a leader that finished between the first look and the join
        if done is not None:
            self.lead(key, running, lambda: done)
            return done

        def compute_and_keep() -> T:
            value = compute()
            cache.put(key, value)
            return value

        return self.lead(key, running, compute_and_keep)


_VALIDATING = SingleFlight()  # validations running now, so a second asker waits
_DIFFING = SingleFlight()  # diffs running now (the same for diff_cached)
_PREPARING = SingleFlight()  # specs being prepared now (the same for prepare_upstream)
_MERGING = SingleFlight()  # merges running now (the same for merge_cached)


def validate_cached(doc: dict[str, Any], sha: str, *, limit_bytes: int | None, strict: bool) -> Any:
    """The same definition (every target of a fan-out, or an early start) is validated once:
    a finished report is reused, a running validation is waited for (single flight)."""

    def validate() -> Any:
        from sync.spec.validate import validate as validate_spec

        try:  # the same bytes the target's validation and write send (kept by identity)
            encoded: bytes | None = compact_bytes_kept(doc)
        except ValueError:  # NaN/Infinity: validate names it
            encoded = None
        return validate_spec(doc, limit_bytes=limit_bytes, strict=strict, encoded=encoded)

    return _VALIDATING.cached(_REPORTS, (sha, limit_bytes, strict), validate)


def merge_cached(
    base: dict[str, Any] | None, ours: dict[str, Any] | None, theirs: dict[str, Any]
) -> tuple[dict[str, Any], list[str], str]:
    """``merge3`` and the merged document's sha256, once for the targets of a fan-out: they
    usually merge the very same three objects (the shared download's document, the shared read
    of one definition, the shared merge base), and each used to make its own merged copy, then
    hash and encode it again (~8 ms per target at 512 KB). Keyed by the objects' identities; the
    entry holds the three objects, so while it is kept (or handed to a waiter) no other object
    can take their ids: an entry found for these ids is a merge of these very objects."""

    def merge() -> tuple[Any, ...]:
        from sync.spec.merge import merge3

        merged, conflicts = merge3(base, ours, theirs, share=True)
        return base, ours, theirs, merged, tuple(conflicts), sha256_hex_kept(merged)

    entry = _MERGING.cached(_MERGES, (id(base), id(ours), id(theirs)), merge)
    return entry[3], list(entry[4]), entry[5]


def diff_cached(ours: dict[str, Any] | None, new: dict[str, Any]):
    """The targets of a fan-out usually move from the same definition to the same one: the
    first computes the diff, the others (four run at once) wait for it (single flight).

    Keyed by the sha256 of each document's compact JSON, not by the canonical hash: a diff
    depends on key order (the first 2xx response names the output fields), and two documents
    with one canonical hash may hold their keys in different orders (ours as merged, the
    platform's as it serves it back). The compact JSON of the pipeline's documents is kept
    (``compact_bytes_kept``), so the key costs a hash."""
    from sync.spec.diff import diff

    if ours is None:
        return diff(ours, new)
    try:
        keys = (_order_key(ours), _order_key(new))
    except ValueError:  # NaN/Infinity: no compact JSON to key by (validation refuses it anyway)
        return diff(ours, new)
    return _DIFFING.cached(_DIFFS, keys, lambda: diff(ours, new, keys=keys))


def _order_key(doc: dict[str, Any]) -> bytes:
    return hashlib.sha256(compact_bytes_kept(doc)).digest()


class Pipeline:
    """Runs work items against the ports; one instance per process is fine (no per-item state)."""

    def __init__(
        self, sync_map: SyncMap, ports: Ports, *, owner: str, lease_seconds: float
    ) -> None:
        self.map = sync_map
        self.ports = ports
        self.owner = owner
        self.lease_seconds = lease_seconds
        # The run's spec download, shared by its targets (``_fetch_for_run``); per pipeline, not
        # per module: a spec is only shared between items of the same service.
        self._fetched = Lru(4)  # (run, api, source, url, version, staged) -> (when, 200, start)
        self._fetching = SingleFlight()

    def with_ledger(self, ledger: Ledger) -> Pipeline:
        """This pipeline on another ledger (one run's ``RunRowFirst``), sharing its caches."""
        other = copy.copy(self)
        other.ports = replace(self.ports, ledger=ledger)
        return other

    # -- entry point ---------------------------------------------------------------------------
    def run(self, item: WorkItem) -> TargetOutcome:
        started = time.monotonic()
        base: dict[str, Any] = {
            "api": item.api,
            "target": item.target,
            "target_kind": None,
            "environment": None,
            "connector_id": None,
            "portal_url": None,
        }
        tracking_id = None
        in_map = False
        try:
            # Inside the try: an item whose API or target the map no longer has (redeployed
            # while the run's items were queued) ends as failed, once, like any permanent error.
            api = self.map.api(item.api)
            tcfg = api.target(item.target)
            in_map = True
            target = self.ports.targets(item.api, item.target)
            base.update(target_kind=target.kind, environment=target.environment)
            outcome = self._run(item, api, tcfg, target, base)
        except SyncError as exc:
            if exc.transient:
                raise
            tracking_id = getattr(exc, "tracking_id", None)  # Power Platform's request id
            result: Result = "blocked" if isinstance(exc, BlockedError) else "failed"
            outcome = TargetOutcome(**base, result=result, message=str(exc))
            if in_map and not item.request.dry_run:  # no state row for a target the map lost
                self._remember(item, outcome)
        duration = int((time.monotonic() - started) * 1000)
        log.info(
            "target finished",
            extra={
                "run_id": item.run_id,
                "api": item.api,
                "target": item.target,
                "stage": "done",
                "outcome": outcome.result,
                "duration_ms": duration,
                "tracking_id": tracking_id,
                "reason": outcome.message[:1000],
            },
        )
        return _with(outcome, duration_ms=duration)

    def _held(
        self, item: WorkItem, state: TargetState, base: dict[str, Any]
    ) -> TargetOutcome | None:
        """The ``held`` outcome (remembered on the state row) while a rollback's hold is active
        on ``state``; a rollback itself and a dry run go on. Checked on the row read before the
        lease and again on the one read under it, when that one moved: a rollback that
        completed while this item fetched its spec would otherwise be written over (and the row
        would still say "held" at a version the connector no longer has)."""
        request = item.request
        if not (state.hold and state.hold.active()) or request.reason == "rollback":
            return None
        if request.dry_run:  # a dry run shows what the sync would do, hold or not
            return None
        outcome = TargetOutcome(
            **base,
            result="held",
            version=state.version,
            message=f"held at v{state.hold.version} until {state.hold.until} by {state.hold.by}",
        )
        self._remember(item, outcome)
        return outcome

    def _reported(self, item: WorkItem) -> bool:
        """Whether the run row already holds this target's outcome (a plain redelivery)."""
        run = self.ports.ledger.get_run(item.run_id)
        return run is None or any(o.target == item.target for o in run.outcomes)

    def _remember(self, item: WorkItem, outcome: TargetOutcome) -> None:
        """Failed/blocked/held outcomes go on the state row (versions are for applied ones)."""
        ledger = self.ports.ledger
        try:
            state = ledger.state(item.api, item.target)
            ledger.save_state(
                item.api,
                item.target,
                state.evolve(
                    last_outcome=outcome.result,
                    last_message=outcome.message[:1000],
                    last_run_id=item.run_id,
                ),
            )
        except SyncError as exc:  # the outcome is still reported through the run row
            log.warning("could not record outcome on state row: %s", exc)

    def _run(
        self,
        item: WorkItem,
        api: ApiConfig,
        tcfg: TargetConfig,
        target: Target,
        base: dict[str, Any],
    ) -> TargetOutcome:
        request = item.request
        ledger = self.ports.ledger
        marker = _once_only_key(item)
        if marker and not request.dry_run:
            # A new event (the usual case) needs both rows: the state row's round trip overlaps
            # the event marker's. A state read before the marker's is checked under the lease
            # like any other (its ETag), and a redelivery reads the state again below.
            reading = in_background(
                lambda: ledger.state(item.api, item.target), name=f"state {item.target}"
            )
            try:
                seen = ledger.seen_event(item.api, item.target, marker)
            finally:
                concurrent.futures.wait([reading])  # no read outlives its item
            state = reading.result()
        else:
            seen = False
            state = ledger.state(item.api, item.target)
        if seen:
            state = ledger.state(item.api, item.target)  # read after the marker, as recorded
            if (
                state.last_run_id == item.run_id
                and state.last_outcome == "updated"
                and not self._reported(item)
            ):
                # An earlier attempt of this very item recorded the version, then failed before
                # its outcome reached the run row (e.g. storage blinked): report what it did.
                return TargetOutcome(
                    **{**base, "connector_id": state.connector_id},
                    result="updated",
                    version=state.version,
                    info_version=state.spec_info_version,
                    message=f"v{state.version} applied (recorded by an earlier attempt)",
                )
            again = "event" if request.event_id else "rollback"
            return TargetOutcome(**base, result="unchanged", message=f"{again} already processed")
        if (held := self._held(item, state, base)) is not None:
            return held
        if request.dry_run:
            return self._stages(item, api, tcfg, target, state, base)
        if stale := _superseded(request, state):  # last_event_time only grows: no lease needed
            return TargetOutcome(
                **base, result="unchanged", message=stale, version=state.version or None
            )
        # The item holds its decoding turn until it waits on the network (sync.decode_turn).
        with decode_turn.held() as turn:
            return self._checked_and_leased(item, api, tcfg, target, state, base, turn)

    def _checked_and_leased(
        self,
        item: WorkItem,
        api: ApiConfig,
        tcfg: TargetConfig,
        target: Target,
        state: TargetState,
        base: dict[str, Any],
        turn: Turn,
    ) -> TargetOutcome:
        """The lease-free pre-check, then the lease and the stages under it. ``turn`` is given
        up before this thread first waits on the network or on the connector read."""
        request = item.request
        ledger = self.ports.ledger
        early = self._precheck(item, api, tcfg, target, state, base, turn)
        if isinstance(early, TargetOutcome):  # unchanged: not even the lease was written
            return early
        reading = early.reading  # started by the pre-check as soon as new content arrived
        try:
            if early.prepared is not None:  # new content: the checks overlap the lease, as the read
                upstream = early.prepared
                # Only the platform's validation starts here: a round trip that uploads the whole
                # definition, the longest wait before the write. The local validation runs in
                # the stages, on this thread: started here in the background too, its CPU
                # competed with this thread's own requests (A/B on 2 cores: ~1.5 ms more wall).
                if hook := getattr(target, "prevalidate", None):
                    hook(upstream.upstream)
                if reading is not None and not reading.done():  # on its way, or its answer
                    # waits for this item's turn (sync.decode_turn): either way, validate now
                    self._validate_while_reading(api, target, upstream)
            # One owner per attempt, not per process: the host runs queue invocations in threads
            # of one process, and a process-wide owner would let two of them take the same lease.
            owner = f"{self.owner}:{os.urandom(4).hex()}"
            turn.give_up()  # the read decodes its answer while this thread waits for storage
            lease = ledger.acquire_lease(item.api, item.target, owner, self.lease_seconds)
            try:
                fresh = ledger.state(item.api, item.target)  # fresh, under the lease
                if stale := _superseded(request, fresh):
                    return TargetOutcome(
                        **base, result="unchanged", message=stale, version=fresh.version or None
                    )
                if fresh.etag != state.etag and (held := self._held(item, fresh, base)):
                    return held  # a rollback landed while this item fetched: it must not undo it
                if fresh.etag != state.etag:  # another worker moved the target: redo all
                    early = Early()
                elif reading is not None:  # read before the lease: valid, the state row held
                    early = Early(prepared=early.prepared, current=reading.result())
                return self._stages(item, api, tcfg, target, fresh, base, early, lease=lease)
            finally:
                ledger.release_lease(lease)
        finally:
            if reading is not None:  # no read outlives its item (the target object is shared)
                turn.give_up()
                concurrent.futures.wait([reading])

    @staticmethod
    def _validate_while_reading(api: ApiConfig, target: Target, upstream: Prepared) -> None:
        """The new upstream's local validation, run while the connector read is still on its
        way (a round trip to the platform: hundreds of ms in Azure, and this thread had nothing
        to do but wait) or, where the answer came sooner, while it waits to be decoded until
        this item gives up its turn at the lease (``sync.decode_turn``). The stages validate
        this very document, under the same key, whenever the connector holds the last upstream
        (no portal edit: the usual case) or is new, and then find the report done; after a
        portal edit they validate the merge instead and this was CPU spent in a wait. Only the
        report is kept: an error is raised by the stages, in their place, as before. A
        rollback's or a recorded document is not the upstream."""
        if upstream.desired is not None:
            return
        try:
            validate_cached(
                upstream.upstream,
                upstream.upstream_sha,
                limit_bytes=target.limit_bytes,
                strict=api.strict,
            )
        except Exception:  # the stages validate again and raise it in their place
            log.debug("early validation failed; the stages validate again", exc_info=True)

    def _precheck(
        self,
        item: WorkItem,
        api: ApiConfig,
        tcfg: TargetConfig,
        target: Target,
        state: TargetState,
        base: dict[str, Any],
        turn: Turn,
    ) -> TargetOutcome | Early:
        """Before the lease: a 304, or the same upstream content on a connector that still holds
        what we applied, ends here with nothing written (no lease row, no state row). ``turn`` is
        given up before this thread waits for the connector read."""
        if item.request.rollback_to is not None:
            return Early()
        started: list[Future[CurrentConnector]] = []

        def read_now() -> None:
            # The download brought content: whatever it holds, the connector is read next (to
            # merge new content, or to check that it still holds the same), so the read starts
            # now and overlaps parsing, normalizing and the validations' start.
            started.append(in_background(target.read, name="connector-read"))

        try:
            fetched = self._fetch(item, api, tcfg, state, base, on_content=read_now)
        except BaseException:
            turn.give_up()
            concurrent.futures.wait(started)  # no read outlives its item
            raise
        if isinstance(fetched, TargetOutcome):  # a 304: no content came, so no read started
            return fetched
        reading = started[0] if started else None
        if fetched.not_modified is not None:  # a drift run: only the connector may have moved
            current = target.read()  # on this thread, which never waits for its own turn
            ours = current.definition
            if not drift.detected(state, _definition_sha(current)):
                return TargetOutcome(
                    **{**base, "connector_id": current.connector_id or state.connector_id},
                    result="unchanged",
                    message=fetched.not_modified,
                    version=state.version,
                )
            return Early(not_modified=fetched.not_modified, current=current)
        prepared = fetched.prepared
        assert prepared is not None
        if prepared.upstream_sha != state.upstream_sha256 or state.pending:
            return Early(prepared=prepared, reading=reading)
        turn.give_up()
        current = reading.result() if reading is not None else target.read()
        ours = current.definition
        if ours is not None and _definition_sha(current) == state.applied_sha256:
            return TargetOutcome(
                **{**base, "connector_id": current.connector_id or state.connector_id},
                result="unchanged",
                message="spec content unchanged",
                version=state.version,
                info_version=prepared.info_version,
            )
        return Early(prepared=prepared, current=current)

    # -- stages --------------------------------------------------------------------------------
    def _fetch(
        self,
        item: WorkItem,
        api: ApiConfig,
        tcfg: TargetConfig,
        state: TargetState,
        base: dict[str, Any],
        *,
        on_content: Callable[[], None] | None = None,
    ) -> TargetOutcome | Early:
        """The conditional fetch, for the pre-check and the stages alike: a 304 ends a normal run
        as unchanged; a drift run goes on (``not_modified``) to check the connector itself.
        ``on_content`` is called once the download brought content, before it is prepared."""
        try:
            return Early(prepared=self._prepare(item, api, tcfg, state, on_content=on_content))
        except Unchanged as stop:
            if item.request.reason != drift.DRIFT_REASON or state.version <= 0:
                return TargetOutcome(
                    **base, result="unchanged", message=stop.message, version=state.version or None
                )
            return Early(not_modified=stop.message)

    def _prepare(
        self,
        item: WorkItem,
        api: ApiConfig,
        tcfg: TargetConfig,
        state: TargetState,
        *,
        on_content: Callable[[], None] | None = None,
    ) -> Prepared:
        request = item.request
        if request.rollback_to is not None:
            record = self._recorded(item, request.rollback_to, need="applied")
            # The desired definition IS the recorded applied one; its recorded upstream stays the
            # merge base for later syncs (the spec ETag is dropped, so the next fetch is full).
            upstream = record.upstream or record.applied
            assert upstream is not None  # need="applied": _recorded raised without it
            return Prepared(
                upstream=upstream,
                info_version=record.info_version,
                source_url=f"ledger:v{request.rollback_to}",
                desired=record.applied,
            )
        set_stage("fetch")
        # A pending marker: the connector may hold a write the recorded ETag does not describe.
        conditional = (
            state.version > 0
            and state.last_outcome in (None, "updated", "unchanged")
            and not state.pending
        )
        try:
            fetched = self._fetch_for_run(item, api, state, conditional)
        except SpecNotNamedError as exc:
            if request.reason != drift.DRIFT_REASON:
                raise
            # Only an event names the document (a blob prefix): the drift check still looks
            # for connector edits, against the spec recorded with the last version; a target
            # never synced has nothing to check until an event names a blob.
            if state.version <= 0:
                raise Unchanged(f"{exc.message}; nothing synced yet to check") from None
            raise Unchanged(
                f"{exc.message}; the connector was checked against v{state.version}'s spec"
            ) from None
        location = fetched.url
        if fetched.not_modified and state.spec_source not in (None, source_key(location)):
            # The recorded ETag / Last-Modified were another location's (a specUrl, a changed
            # map): its server compared them with a document they never described.
            fetched = self._fetch_for_run(item, api, state, False)
            location = fetched.url
        if fetched.not_modified:
            raise Unchanged("spec not modified (HTTP 304)")
        assert fetched.content is not None
        if on_content is not None:
            on_content()
        set_stage("normalize")
        shown = redact_url(location)  # a SAS ``sig=`` must reach no message, row or card
        upstream, losses, warnings, sha = prepare_upstream(api, tcfg, fetched.content, source=shown)
        return Prepared(
            upstream=upstream,
            info_version=_info_version(upstream),
            source_url=shown,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            losses=losses,
            warnings=warnings,
            _sha=sha,
        )

    def _fetch_for_run(
        self, item: WorkItem, api: ApiConfig, state: TargetState, conditional: bool
    ) -> FetchedSpec:
        """The spec as this run sees it: the first target to download it shares the answer with
        the run's other targets (single flight), so a fan-out of 20 makes one download, one APIM
        or API Center export. A target whose state already holds that ETag gets "not modified", as
        its own conditional GET would have said; a target that recorded a version after the share
        began (a later run got there first) asks for itself, so an older run never rolls it back.
        Only a 200 is shared: after a leader's 304 or error each target asks for itself."""
        source = json.dumps(api.spec, sort_keys=True)  # a refreshed map may point elsewhere
        request = item.request
        key = (
            item.run_id,
            api.name,
            source,
            request.spec_url,
            request.version,
            request.staged_spec,
        )
        remembered = self._fetched.get(key)
        shared: tuple[FetchedSpec, datetime] | None = None
        if remembered is not None and time.monotonic() - remembered[0] < FETCH_SHARE_SECONDS:
            shared = remembered[1], remembered[2]
        if shared is None:
            running, leader = self._fetching.join(key)
            if leader:
                started = utcnow()

                def fetch_and_keep() -> tuple[FetchedSpec, datetime]:
                    fetched = self._fetch_spec(item, api, state, conditional)
                    if not fetched.not_modified:
                        self._fetched.put(key, (time.monotonic(), fetched, started))
                    return fetched, started

                return self._fetching.lead(key, running, fetch_and_keep)[0]
            try:
                answer = running.result()
            except Exception:  # the leader's failure is its own: this target asks itself
                answer = None
            shared = None if answer is None or answer[0].not_modified else answer
        if shared is None or _synced_since(state, shared[1]):
            # A version recorded after the shared download began may hold newer content than it
            # (a later run of a location-less event, which ``_superseded`` does not order): the
            # target's own conditional GET says what is live, as it did before the share.
            return self._fetch_spec(item, api, state, conditional)
        shared_spec = shared[0]
        if conditional and (
            (state.spec_etag and state.spec_etag == shared_spec.etag)
            or (
                not state.spec_etag
                and state.spec_last_modified
                and state.spec_last_modified == shared_spec.last_modified
            )
        ):
            return FetchedSpec(url=shared_spec.url, content=None)  # what a conditional GET answers
        return shared_spec

    def _fetch_spec(
        self, item: WorkItem, api: ApiConfig, state: TargetState, conditional: bool
    ) -> FetchedSpec:
        """The download, or the spec staged when the run was planned (its URL had a
        credential, which no message may carry: ``sync.staging``)."""
        if item.request.staged_spec:
            return staging.read_staged(self.ports.ledger, item)
        return staging.download(
            self.ports.specs,
            api,
            item.request,
            etag=state.spec_etag if conditional else None,
            last_modified=state.spec_last_modified if conditional else None,
        )

    def _stages(
        self,
        item: WorkItem,
        api: ApiConfig,
        tcfg: TargetConfig,
        target: Target,
        state: TargetState,
        base: dict[str, Any],
        early: Early | None = None,
        *,
        lease: Any = None,
    ) -> TargetOutcome:
        request = item.request
        early = early or Early()
        prepared: Prepared | None = early.prepared
        not_modified = early.not_modified
        if prepared is None and not_modified is None:
            fetched = self._fetch(item, api, tcfg, state, base)
            if isinstance(fetched, TargetOutcome):
                return fetched
            prepared, not_modified = fetched.prepared, fetched.not_modified
        current = early.current or target.read()
        base = {**base, "connector_id": current.connector_id or state.connector_id}
        ours = current.definition
        ours_sha = _definition_sha(current)
        drifted = drift.detected(state, ours_sha)
        if prepared is None:
            if not drifted:
                assert not_modified is not None  # no content came: a 304 always says so
                return TargetOutcome(
                    **base, result="unchanged", message=not_modified, version=state.version
                )
            prepared = self._recorded_upstream(item, state)
        upstream_sha = prepared.upstream_sha
        if state.pending and not request.dry_run:
            state = self._void_unlanded_marker(item, state, ours_sha)
        if state.pending and prepared.desired is None and not request.dry_run:
            state = self._record_lost_write(item, state, ours_sha, upstream_sha)
        if (
            request.rollback_to is None
            and upstream_sha == state.upstream_sha256
            and ours_sha == state.applied_sha256
            and not state.pending
        ):
            return TargetOutcome(
                **base,
                result="unchanged",
                message="spec content unchanged",
                version=state.version,
                info_version=prepared.info_version,
            )
        mode = (
            drift.mode_for(tcfg.drift, request, deleted=ours_sha is None)
            if drifted and prepared.desired is None
            else None
        )
        if mode == "report":
            return self._report_drift(
                item, state, base, prepared, ours_sha, upstream_sha, configured=tcfg.drift
            )
        set_stage("merge")
        conflicts: list[str]
        if prepared.desired is not None:  # rollback: the recorded definition, not a merge
            merged, conflicts = prepared.desired, []
            merged_sha = upstream_sha if merged is prepared.upstream else sha256_hex(merged)
        elif mode == "overwrite" or (
            state.version > 0 and ours_sha is not None and ours_sha == state.upstream_sha256
        ):
            # Upstream wins (overwrite), or the connector holds exactly the last upstream (the
            # merge base): no connector-side edit to keep, so the merge is upstream itself and
            # neither the base nor a merge is needed (spec/test_properties proves the equality).
            merged, conflicts, merged_sha = prepared.upstream, [], upstream_sha
        else:
            merge_base = self._merge_base(item, state)
            merged, conflicts, merged_sha = merge_cached(merge_base, ours, prepared.upstream)
        set_stage("validate")
        report = validate_cached(
            merged, merged_sha, limit_bytes=target.limit_bytes, strict=api.strict
        )
        warnings = [*prepared.warnings, *report.warnings]
        errors = list(report.errors)
        size_problem = getattr(target, "size_problem", None)  # limits not in bytes (Dataverse)
        if (
            target.limit_bytes is None  # a byte limit is already checked by the validation above
            and callable(size_problem)
            and (problem := size_problem(merged))
        ):
            errors.append(problem)
        if errors:
            raise SpecError("; ".join(errors[:10]), where=f"{item.api}/{item.target}")
        ledger = self.ports.ledger
        # The pending marker carries the version row's packed definitions, so they are packed
        # now, beside the diff (zlib lets go of the GIL), not after the marker as until the
        # evening of 2026-12-06; record_version finds the pair packed (codec.pack_pair). A run
        # that ends before the write leaves a packed pair in a cache of eight, nothing else.
        packing: Future[None] | None = None
        if merged_sha != ours_sha and not request.dry_run:
            packing = in_background(
                lambda: ledger.prepare_definitions(
                    prepared.upstream, merged, (upstream_sha, merged_sha)
                ),
                name="pack-early",
            )
        set_stage("diff")
        change = diff_cached(ours, merged)
        common = {
            **base,
            "info_version": prepared.info_version,
            "previous_info_version": _info_version(ours),
            "previous_version": state.version or None,
            "diff": change.to_dict(),
            "warnings": tuple(warnings[:200]),
            "losses": tuple(prepared.losses[:200]),
            "conflicts": tuple(conflicts[:200]),
            "portal_url": target.portal_url(),
            "drift": drifted,
        }
        # A rollback and an adopted drift record a version even when the connector already holds
        # the definition (``_apply`` then writes nothing): the hold and the new sha must be recorded.
        if merged_sha == ours_sha and not (
            state.pending or prepared.desired is not None or drifted
        ):
            return TargetOutcome(**common, result="unchanged", message="connector already current")
        policy = tcfg.breaking
        if change.breaking and policy == "block" and request.rollback_to is None:
            raise BlockedError(
                "breaking changes blocked by policy: " + _breaking_summary(change.to_dict()),
                where=f"{item.api}/{item.target}",
            )
        if request.dry_run:
            return TargetOutcome(**common, result="dry-run", message="dry run: nothing written")
        set_stage("apply")
        from sync.pending_write import PendingWrite  # loaded at the first write, not at start

        write = PendingWrite(
            run_id=item.run_id,
            at=iso(utcnow()) or "",
            upstream=prepared.upstream,
            applied=merged,
            upstream_sha256=upstream_sha,
            applied_sha256=merged_sha,
        )
        version = state.version + 1

        def to_record(latest: TargetState, connector_id: str | None) -> Recording:
            record = VersionRecord(
                api=item.api,
                target=item.target,
                version=version,
                reason=drift.reason_for(request, mode, deleted=ours_sha is None)
                or _reason(request),
                outcome="updated",
                run_id=item.run_id,
                created_at=iso(utcnow()) or "",
                event_id=request.event_id,
                event_type=request.event_type,
                event_time=request.event_time,
                caller=request.caller,
                source_url=prepared.source_url,
                info_version=prepared.info_version,
                commit=request.commit,
                summary=change.to_dict(),
                upstream_sha256=upstream_sha,
                applied_sha256=merged_sha,
                upstream=prepared.upstream,
                applied=merged,
            )
            new_state = latest.evolve(
                version=version,
                applied_sha256=merged_sha,
                upstream_sha256=upstream_sha,
                spec_etag=prepared.etag,
                spec_last_modified=prepared.last_modified,
                spec_source=source_key(prepared.source_url),
                spec_info_version=prepared.info_version,
                connector_id=connector_id or latest.connector_id,
                last_outcome="updated",
                last_message="",
                last_run_id=item.run_id,
                last_synced_at=record.created_at,
                last_event_time=_later_event_time(request.event_time, latest.last_event_time),
                pending=None,
                pending_definitions=None,
                hold=_hold_after(request, latest, version),
                drift_sha256=None,
            )
            return Recording(record, new_state, _once_only_key(item), lease)

        connector_id, latest, held = self._apply(
            item, target, current, write, ours_sha, state, packing, to_record
        )
        set_stage("record")
        if held is not None and held.connector_id == connector_id:
            held.commit()  # built with this very id and marked row: now it is sent
        else:
            if held is not None:  # the write ended on another connector: record that one
                held.abandon()
            self.ports.ledger.record_version(*to_record(latest, connector_id))
        _BASES.put((item.api, item.target, version), prepared.upstream)
        message = f"v{version} applied"
        if change.breaking:
            message += " (breaking changes " + ("allowed)" if policy == "allow" else "warned)")
        if request.rollback_to is not None:
            message += f" (rollback to v{request.rollback_to}, held until {request.hold_until})"
        if mode is not None:
            message += drift.handled_note(mode, deleted=ours_sha is None)
        return TargetOutcome(
            **{**common, "connector_id": connector_id or common["connector_id"]},
            result="updated",
            version=version,
            message=message,
        )

    def _recorded(self, item: WorkItem, number: int, *, need: str) -> VersionRecord:
        """A recorded version with its stored definitions; ``need`` names the one that must be
        there (``applied`` for a rollback, ``upstream`` for a drift run's merge input)."""
        record = self.ports.ledger.version(item.api, item.target, number, include_definitions=True)
        if record is None or getattr(record, need) is None:
            raise PermanentError(
                f"version {number} is not recorded for this target",
                where=f"{item.api}/{item.target}",
            )
        return record

    def _recorded_upstream(self, item: WorkItem, state: TargetState) -> Prepared:
        """A drift run whose spec answered 304: upstream is what we recorded for the current
        version (the conditional GET proved it has not changed), so only the connector moved."""
        record = self._recorded(item, state.version, need="upstream")
        assert record.upstream is not None  # need="upstream": _recorded raised without it
        return Prepared(
            upstream=record.upstream,
            info_version=state.spec_info_version or record.info_version,
            source_url=record.source_url,
            etag=state.spec_etag,
            last_modified=state.spec_last_modified,
        )

    def _record_lost_write(
        self,
        item: WorkItem,
        state: TargetState,
        ours_sha: str | None,
        upstream_sha: str,
    ) -> TargetState:
        """A write that landed without its ledger record (the marker is set and the connector
        holds what it wrote), met by a sync of different upstream content: record it first, as
        the version it was, and merge the new spec against its upstream. Merged against the last
        recorded upstream, what the lost write brought would look like connector-side edits and
        be kept (an operation the new spec removed would stay). The same upstream needs none of
        this: that run merges to what the connector holds and records it as it stands."""
        ledger = self.ports.ledger
        where = f"{item.api}/{item.target}"
        try:
            lost = ledger.pending_write(item.api, item.target, state)
        except PermanentError as exc:  # stored wrong: merged as before markers carried them
            log.warning("pending write of %s not recovered: %s", where, exc)
            return state
        if lost is None or lost.applied_sha256 != ours_sha or lost.upstream_sha256 == upstream_sha:
            return state  # none stored, never landed or overwritten since, or this run's own
        change = diff_cached(self._last_applied(item, state), lost.applied)
        number = state.version + 1
        record = VersionRecord(
            api=item.api,
            target=item.target,
            version=number,
            reason="recovered",
            outcome="updated",
            run_id=lost.run_id or item.run_id,
            created_at=lost.at or iso(utcnow()) or "",
            info_version=_info_version(lost.upstream),
            summary=change.to_dict(),
            upstream_sha256=lost.upstream_sha256,
            applied_sha256=lost.applied_sha256,
            upstream=lost.upstream,
            applied=lost.applied,
        )
        recovered = state.evolve(
            version=number,
            applied_sha256=lost.applied_sha256,
            upstream_sha256=lost.upstream_sha256,
            # The spec's validators describe the last recorded version's spec, not the lost
            # write's: kept, a run that stops after this record (a crash, a refused marker) would
            # be answered 304 for that older spec and leave the lost write in place for good.
            spec_etag=None,
            spec_last_modified=None,
            spec_source=None,
            spec_info_version=_info_version(lost.upstream),
            last_outcome="updated",
            last_message=f"v{number} recorded after its ledger write was lost",
            last_run_id=record.run_id,
            last_synced_at=record.created_at,
            pending=None,
            pending_definitions=None,
            drift_sha256=None,
        )
        log.warning(
            "%s holds the unrecorded write of run %s; recording it as v%d before merging",
            where,
            record.run_id,
            number,
        )
        saved = ledger.record_version(record, recovered, None)  # the lease stays this item's
        _BASES.put((item.api, item.target, number), lost.upstream)
        return saved

    def _void_unlanded_marker(
        self, item: WorkItem, state: TargetState, ours_sha: str | None
    ) -> TargetState:
        """A marker whose write never landed (the platform refused it, or the worker died before
        it): the connector still holds the last recorded version. The marker is cleared, with
        the definitions it carries: kept, it made every later run of the same spec record an
        empty version, fetched the spec without ``If-None-Match`` and weighed down every read
        of the state row."""
        if ours_sha is None or ours_sha != state.applied_sha256 or _marker_sha(state) == ours_sha:
            return state
        log.info("%s/%s: the pending write never landed; marker cleared", item.api, item.target)
        return self.ports.ledger.save_state(
            item.api, item.target, state.evolve(pending=None, pending_definitions=None)
        )

    def _last_applied(self, item: WorkItem, state: TargetState) -> dict[str, Any] | None:
        """The applied definition of the last recorded version (None before the first)."""
        if state.version <= 0:
            return None
        record = self.ports.ledger.version(
            item.api, item.target, state.version, include_definitions=True
        )
        return record.applied if record is not None else None

    def _report_drift(
        self,
        item: WorkItem,
        state: TargetState,
        base: dict[str, Any],
        prepared: Prepared,
        ours_sha: str | None,
        upstream_sha: str,
        *,
        configured: str = "report",
    ) -> TargetOutcome:
        """Drift mode ``report``: the state row and the card say so; the connector is not written.
        The same edit is reported once (``drift_known`` on later runs keeps the timer quiet), but
        a new upstream not applied beside it is news again (until 2026-12-07 an unannounced
        deployment after a reported edit was never reported)."""
        seen = ours_sha or drift.DELETED  # the same deletion is news once, as the same edit is
        upstream_changed = upstream_sha != state.upstream_sha256
        if upstream_changed:  # a row reported before keeps its key while upstream stays put
            seen = f"{seen} upstream {upstream_sha}"
        known = state.drift_sha256 == seen
        message = drift.report_message(
            state, ours_sha, upstream_changed=upstream_changed, configured=configured
        )
        outcome = TargetOutcome(
            **base,
            result="unchanged",
            message=message,
            version=state.version,
            info_version=prepared.info_version,
            drift=True,
            drift_known=known,
        )
        if not known and not item.request.dry_run:
            log.warning("drift on %s/%s reported: %s", item.api, item.target, message)
            self.ports.ledger.save_state(
                item.api,
                item.target,
                state.evolve(
                    drift_sha256=seen,
                    last_outcome="unchanged",
                    last_message=message[:1000],
                    last_run_id=item.run_id,
                ),
            )
        return outcome

    def _merge_base(self, item: WorkItem, state: TargetState) -> dict[str, Any] | None:
        if state.version <= 0:
            return None
        key = (item.api, item.target, state.version)
        cached = _BASES.get(key)
        if cached is not None:  # version numbers never change meaning: no ledger read
            return cached
        record = self.ports.ledger.version(
            item.api, item.target, state.version, include_definitions=True
        )
        if record is None:
            return None
        if record.upstream is not None:
            _BASES.put(key, record.upstream)
        return record.upstream

    def _apply(
        self,
        item: WorkItem,
        target: Target,
        current: CurrentConnector,
        write: PendingWrite,
        ours_sha: str | None,
        state: TargetState,
        packing: Future[None] | None,
        to_record: Callable[[TargetState, str | None], Recording],
    ) -> tuple[str | None, TargetState, EarlyRecord | None]:
        """Pending marker (with the write's definitions), write, verify; returns the connector
        id, the state row to record on and, for a connector that exists, its version's record
        prepared during the write and sent by nothing yet (``sync.early_record``; the caller
        commits or abandons it). A connector that already holds the definition (a crash after
        a previous write) is not written again: only the missing ledger version is recorded.
        ``packing`` is the head start on the definitions the marker carries."""
        merged, merged_sha = write.applied, write.applied_sha256
        if ours_sha == merged_sha:
            log.info("connector already holds the definition; reconciling the ledger")
            return current.connector_id, state, None
        if packing is not None:
            settle(packing)
        ledger = self.ports.ledger
        marked = ledger.mark_pending(item.api, item.target, state, write)
        held: EarlyRecord[TargetState] | None = None
        if cid := current.connector_id:  # a create's id comes with its answer: recorded after it
            from sync.early_record import EarlyRecord

            recording = to_record(marked, cid)
            held = EarlyRecord(cid, lambda hold: ledger.record_version(*recording, hold=hold))
        try:
            if held is not None and not getattr(target, "reports_body_sent", False):
                held.start()  # this target cannot say when its body has left: begin now
            with write_progress.on_body_sent(held.start if held is not None else None):
                connector_id = target.write(merged, current)
            set_stage("verify")
            self._verify(target, merged, merged_sha, item)
        except BaseException:
            if held is not None:
                held.abandon()
            raise
        return connector_id, marked, held

    def _verify(
        self, target: Target, merged: dict[str, Any], expected_sha: str, item: WorkItem
    ) -> None:
        verify = getattr(target, "verify", None)
        if callable(verify):  # remote targets wait out propagation delay; raise TargetError
            verify(merged, expected_sha)
            return
        stored = target.read_back()
        if stored is None or sha256_hex(stored) != expected_sha:
            raise TargetError(
                "read-back does not match the written definition", where=f"{item.api}/{item.target}"
            )


def source_key(url: str | None) -> str | None:
    """Which location a spec's validators came from, without its credentials (a rotated SAS is
    still the same document): the first 32 hex digits of the sha256 of the redacted URL."""
    if not url:
        return None
    return hashlib.sha256(redact_url(url).encode()).hexdigest()[:32]


def _once_only_key(item: WorkItem) -> str | None:
    """What the ledger's marker (written with the version) makes happen once per target: an
    event (its source and id), or a rollback request (its run). A rollback records a version even
    when the connector holds the definition already, so a redelivered rollback item recorded a
    second one, and a late one undid a release and the deployments after it. None: no marker
    (a manual sync or a drift run repeated finds the content unchanged and writes nothing)."""
    if item.request.rollback_to is not None:
        return f"rollback\n{item.run_id}"
    return event_identity(item.request)


def _marker_sha(state: TargetState) -> str | None:
    """The sha256 of the definition the pending marker's write was to leave (None: unreadable)."""
    try:
        marker = json.loads(state.pending or "")
    except ValueError:
        return None
    sha = marker.get("sha256") if isinstance(marker, dict) else None
    return sha if isinstance(sha, str) else None


def _definition_sha(current: CurrentConnector) -> str | None:
    """The connector definition's canonical sha256: the target's when it knows it already."""
    if current.definition is None:
        return None
    return current.definition_sha256 or sha256_hex(current.definition)


def _with(outcome: TargetOutcome, **changes: Any) -> TargetOutcome:
    from dataclasses import replace

    return replace(outcome, **changes)


MAX_INFO_VERSION_CHARS = 256


def _info_version(doc: dict[str, Any] | None) -> str | None:
    """A definition's ``info.version`` as recorded and shown, cut to ``MAX_INFO_VERSION_CHARS``:
    it is free text, and one longer than a Table property holds (32K characters) made the
    ledger refuse the version after the connector had been written. Only shown, never compared."""
    info = (doc or {}).get("info")
    if isinstance(info, dict) and info.get("version") is not None:
        text = str(info["version"])
        if len(text) > MAX_INFO_VERSION_CHARS:
            text = text[: MAX_INFO_VERSION_CHARS - 1] + "…"
        return text
    return None


def _reason(request: Any) -> str:
    if request.rollback_to is not None:
        return f"rollback to v{request.rollback_to}"
    return str(request.reason)


def _hold_after(request: Any, state: TargetState, version: int) -> Hold | None:
    """A rollback holds the target (until released or expired); other syncs keep the hold."""
    hold_until = getattr(request, "hold_until", None)
    if request.rollback_to is not None and hold_until:
        return Hold(version=version, until=hold_until, by=request.caller or "unknown")
    return state.hold if state.hold and state.hold.active() else None  # expired holds go


def _breaking_summary(diff: dict[str, Any]) -> str:
    parts: list[str] = [f"removed {key}" for key in diff.get("removed", [])[:5]]
    for entry in diff.get("changed", []):
        for change in entry.get("changes", []):
            if change.get("breaking"):
                parts.append(f"{entry.get('operationId')}: {change.get('message')}")
    return "; ".join(parts[:8]) or "breaking changes"


def _event_moment(value: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    return moment.replace(tzinfo=moment.tzinfo or UTC) if moment else None


def _later_event_time(ours: str | None, recorded: str | None) -> str | None:
    """The state's event time only grows: an event that applied a version but is older than the
    one recorded (an event naming no spec is not ordered, so a late one applies) must not lower
    it, or an even older event naming a spec would pass ``_superseded`` and roll back."""
    mine, last = _event_moment(ours), _event_moment(recorded)
    if mine is None:
        return recorded
    if last is not None and last >= mine:
        return recorded
    return ours


def _synced_since(state: TargetState, moment: datetime) -> bool:
    """Whether the target recorded a version at or after ``moment`` (an unreadable time counts:
    the caller then downloads for itself, which is never wrong, only one more GET)."""
    if not state.last_synced_at:
        return False
    synced = _event_moment(state.last_synced_at.replace("Z", "+00:00"))
    return synced is None or synced >= moment


def _superseded(request: Any, state: TargetState) -> str | None:
    """Why an event is older than what the target already holds, else None.

    Only events that name a spec (a URL or a version) are ordered: Event Grid does not deliver in
    order, and applying an older deployment's spec after a newer one would roll the connector
    back. Events without a location fetch whatever is live now, so the content hash decides.
    """
    if request.reason != "event" or not (request.spec_url or request.version):
        return None
    ours, last = _event_moment(request.event_time), _event_moment(state.last_event_time)
    if ours is None or last is None or ours >= last:
        return None
    return (
        f"event {request.event_id} of {request.event_time} is older than the event already "
        f"applied ({state.last_event_time}); the newer spec stays"
    )


class Recording(NamedTuple):
    """The arguments of one ``Ledger.record_version`` call."""

    record: VersionRecord
    state: TargetState
    event_id: str | None
    lease: Any
