"""The values that travel between the stages: requests, work items, outcomes, ledger records.

Plain frozen dataclasses with explicit JSON forms, because a work item crosses a Storage queue and a
version record crosses Table Storage; nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal

Result = Literal["updated", "unchanged", "held", "blocked", "failed", "dry-run"]
RESULTS: tuple[str, ...] = ("updated", "unchanged", "held", "blocked", "failed", "dry-run")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime | None) -> str | None:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z") if ts else None


def new_run_id() -> str:
    """32 random hex digits, the form of every run id (an event's is a hash: ``runs.run_id_for``).
    Not ``uuid``: importing it imports ``platform`` too, ~4.5 ms of every cold start."""
    return os.urandom(16).hex()


MAX_LEASE_REQUEUES = 3  # a work item waits out a held lease at most this often
RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}\Z")  # what a run row's key may be (the ledger's)
STAGED_SPEC = re.compile(r"^sha256:[0-9a-f]{64}\Z")  # a staged spec's key (``sync.staging``)


def staged_key(content: bytes) -> str:
    """The key a staged spec is stored and named under: its content's sha256, so staging the
    same bytes twice (a redelivered event) is the same blob, and a reader can check them."""
    return "sha256:" + hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class SyncRequest:
    """Why a sync runs, whatever asked for it (event, HTTP, timer, CLI, rollback)."""

    api: str
    reason: str  # "event" | "manual" | "drift" | "rollback" | "cli"
    event_id: str | None = None
    event_source: str | None = None  # Event Grid topic / CloudEvents source ("": not sent)
    event_type: str | None = None
    event_time: str | None = None
    subject: str | None = None
    caller: str | None = None  # oid/appid of an HTTP caller, or "cli:<user>"
    spec_url: str | None = None  # honoured only when it matches the API's allowedSpecUrls
    version: str | None = None
    commit: str | None = None
    deployment_id: str | None = None
    targets: tuple[str, ...] | None = None  # None = every target of the API
    dry_run: bool = False
    traceparent: str | None = None
    rollback_to: int | None = None  # version number to re-apply (rollback)
    hold_until: str | None = None  # rollback: ISO-8601 UTC end of the hold it sets
    # "sha256:<hex>": the spec downloaded when the run was planned, because ``spec_url`` carried
    # a credential; ``spec_url`` is then redacted and only names the source (``sync.staging``)
    staged_spec: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["targets"] = list(self.targets) if self.targets is not None else None
        return {k: v for k, v in data.items() if v is not None and v is not False}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyncRequest:
        """What ``to_dict`` wrote (a work item, a run row), its types checked: a message of the
        right shape with a wrong type (``"dry_run": "no"`` is truthy) must be refused, not
        silently turned into another request. Raises TypeError naming the field."""
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        for key, value in values.items():
            if not _REQUEST_TYPES.get(key, _is_text)(value):
                raise TypeError(f"request.{key} has the wrong type ({type(value).__name__})")
        _check_staged(values)
        if values.get("targets") is not None:
            values["targets"] = tuple(values["targets"])
        return cls(**values)


def event_identity(request: SyncRequest) -> str | None:
    """What makes an event one event: its source and its id (CloudEvents 1.0: "consumers MAY
    assume that events with identical source and id are duplicates"; Event Grid's ids are unique
    per topic). Publishers often number events alike (build numbers): by id alone, a second
    pipeline's deployment joined the first one's finished run and was dropped. The run id and
    the ledger's event marker are keyed by this; events without a source by their id, as before."""
    if not request.event_id:
        return None
    if not request.event_source:
        return request.event_id
    return f"{request.event_source}\n{request.event_id}"


def _is_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _check_staged(values: dict[str, Any]) -> None:
    """A staged spec's key is read as a blob name, so only the planner's form passes; and it
    comes with the (redacted) URL it was downloaded from, which the version records as its
    source. Raises ValueError: the message is malformed, acknowledged and dropped."""
    key = values.get("staged_spec")
    if key is None:
        return
    if not STAGED_SPEC.match(key):
        raise ValueError("request.staged_spec is not sha256:<64 lower-case hex digits>")
    if not values.get("spec_url"):
        raise ValueError("request.staged_spec comes without request.spec_url")


_REQUEST_TYPES: dict[str, Any] = {  # SyncRequest fields that are not optional text
    "api": lambda v: isinstance(v, str),
    "reason": lambda v: isinstance(v, str),
    "targets": lambda v: v is None or (isinstance(v, list) and all(isinstance(t, str) for t in v)),
    "dry_run": lambda v: isinstance(v, bool),
    "rollback_to": lambda v: v is None or (type(v) is int),
}


@dataclass(frozen=True)
class WorkItem:
    """One (API, target) pair of a run: the unit the queue carries and the worker executes."""

    run_id: str
    api: str
    target: str
    request: SyncRequest
    enqueued_at: str = field(default_factory=lambda: iso(utcnow()) or "")
    lease_requeues: int = 0  # times sent again to wait out a lease (``runs.wait_out_lease``)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "runId": self.run_id,
            "api": self.api,
            "target": self.target,
            "request": self.request.to_dict(),
            "enqueuedAt": self.enqueued_at,
        }
        if self.lease_requeues:  # only then: a first message reads as it always did
            data["leaseRequeues"] = self.lease_requeues
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkItem:
        if not isinstance(data, dict):  # valid JSON of another shape: refused like a missing key
            raise TypeError(f"a work item must be a JSON object, got {type(data).__name__}")
        requeues = data.get("leaseRequeues", 0)
        if type(requeues) is not int or requeues < 0:
            raise ValueError("leaseRequeues must be an integer >= 0")
        # a higher count (a release that allows more) reads as the most this one allows, so
        # an item is never dropped for it
        requeues = min(requeues, MAX_LEASE_REQUEUES)
        run_id = data["runId"]
        if not isinstance(run_id, str) or not RUN_ID.match(run_id):
            # refused before the item runs: the run row could never take its outcome, so the
            # connector would be written and the item retried until poisoned
            raise ValueError("runId is not a run id")
        return cls(
            run_id=run_id,
            api=str(data["api"]),
            target=str(data["target"]),
            request=SyncRequest.from_dict(dict(data["request"])),
            enqueued_at=str(data.get("enqueuedAt") or ""),
            lease_requeues=requeues,
        )


@dataclass(frozen=True)
class FetchedSpec:
    """What the spec source returned; ``content`` is None when the server said 304."""

    url: str
    content: bytes | None
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.content is None


@dataclass(frozen=True)
class CurrentConnector:
    """The target's connector as it is now (None definition: it does not exist yet)."""

    definition: dict[str, Any] | None
    properties: dict[str, Any] | None = None
    connector_id: str | None = None
    definition_sha256: str | None = None  # canonical sha256 when the target already knows it


@dataclass(frozen=True)
class Hold:
    version: int
    until: str  # ISO-8601 UTC
    by: str

    def active(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        return datetime.fromisoformat(self.until.replace("Z", "+00:00")) > now


@dataclass(frozen=True)
class TargetState:
    """The per-target state row: what was applied last and what we know of the spec source."""

    version: int = 0
    applied_sha256: str | None = None
    upstream_sha256: str | None = None
    spec_etag: str | None = None
    spec_last_modified: str | None = None
    # Where those validators came from (``pipeline.source_key``: a hash of the redacted URL): a
    # 304 from another location says nothing about this one. None on rows from before 2026-12-07.
    spec_source: str | None = None
    spec_info_version: str | None = None
    connector_id: str | None = None
    last_outcome: str | None = None
    last_message: str | None = None
    last_run_id: str | None = None
    last_synced_at: str | None = None
    last_event_time: str | None = None
    hold: Hold | None = None
    pending: str | None = None  # JSON of a write in flight (crash detection)
    # The write in flight's definitions as the ledger packed them with the marker: carried
    # through every save of the row (read, evolve, save) until the write is recorded.
    pending_definitions: bytes | None = field(default=None, repr=False)
    drift_sha256: str | None = None  # connector-side edit last reported (report once, not per run)
    etag: str | None = None  # the row's ETag, for the conditional write

    def evolve(self, **changes: Any) -> TargetState:
        return replace(self, **changes)


@dataclass(frozen=True)
class VersionRecord:
    """One applied version of one target: metadata plus the two stored definitions."""

    api: str
    target: str
    version: int
    reason: str
    outcome: str
    run_id: str
    created_at: str
    event_id: str | None = None
    event_type: str | None = None
    event_time: str | None = None
    caller: str | None = None
    source_url: str | None = None
    info_version: str | None = None
    commit: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)  # diff JSON form + counts
    upstream_sha256: str | None = None
    applied_sha256: str | None = None
    upstream: dict[str, Any] | None = None  # the normalized upstream spec (merge base)
    applied: dict[str, Any] | None = None  # the definition written to the target


@dataclass(frozen=True)
class TargetOutcome:
    """How one work item ended; the card and the run row are built from these."""

    api: str
    target: str
    result: Result
    message: str = ""
    version: int | None = None
    previous_version: int | None = None
    info_version: str | None = None
    previous_info_version: str | None = None
    target_kind: str | None = None
    environment: str | None = None
    connector_id: str | None = None
    portal_url: str | None = None
    diff: dict[str, Any] | None = None  # spec.diff JSON form
    warnings: tuple[str, ...] = ()
    losses: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    duration_ms: int = 0
    drift: bool = False  # the connector had been edited outside the service (sync.drift)
    drift_known: bool = False  # ...and an earlier run already reported that same edit (no card)

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: ``diff`` is already plain JSON; dataclasses.asdict would deep-copy
        # it for every outcome each time a run row is rewritten (O(targets^2) on a fan-out).
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("warnings", "losses", "conflicts"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetOutcome:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("warnings", "losses", "conflicts"):
            values[key] = tuple(values.get(key) or ())
        return cls(**values)


@dataclass(frozen=True)
class RunSummary:
    """A whole run (one request, all its targets), complete when every target reported."""

    run_id: str
    api: str
    request: SyncRequest
    targets: tuple[str, ...]
    outcomes: tuple[TargetOutcome, ...] = ()
    created_at: str | None = None
    notified: str | None = None  # "accepted" | "written" | "failed: ..." once notified

    @property
    def complete(self) -> bool:
        return {o.target for o in self.outcomes} >= set(self.targets)

    @property
    def failed_targets(self) -> list[str]:
        return [o.target for o in self.outcomes if o.result in ("failed", "blocked")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "api": self.api,
            "request": self.request.to_dict(),
            "targets": list(self.targets),
            "outcomes": [o.to_dict() for o in self.outcomes],
            "createdAt": self.created_at,
            "complete": self.complete,
            "failedTargets": self.failed_targets,
            "notified": self.notified,
        }
