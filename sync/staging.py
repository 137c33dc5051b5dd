"""Staged specs: a caller's credential in a ``specUrl`` never travels in a queue message.

Why: a ``specUrl`` sent to ``POST /api/sync`` or in a custom event may carry its credential in
the query (a SAS ``sig=``, a function ``code=``: what ``redact_url`` takes out). The worker used
to download with it, so it sat in every work item's message, and in the poison queue for 7
days. Now ``runs.submit`` downloads such a spec when the run is planned, through the same port
and guarded client the worker uses (URL guard, size cap, retries, budget), keeps the bytes in
the ledger container under their sha256 (``Ledger.stage_spec``), and queues only the redacted
URL and that key. The worker reads the bytes back, checks their sha256 and goes on as with a
download that carried no validators. A blob lifecycle rule deletes staged specs 8 days after
their last write (``infra/app/storage.bicep``): a message naming one outlives its enqueueing by
7 days at most, in the poison queue.

A URL without a credential is downloaded by the worker as before (conditional GETs included).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from sync.errors import PermanentError, SpecNotStagedError, TransientError
from sync.models import (
    STAGED_SPEC,
    FetchedSpec,
    SyncRequest,
    WorkItem,
    event_identity,
    staged_key,
)
from sync.redact import carries_credential, redact_url

if TYPE_CHECKING:
    from sync.config import ApiConfig
    from sync.ports import Ledger, Ports, SpecSource

log = logging.getLogger(__name__)

# Under the ledger container; the lifecycle rule's prefix. "_": no API name starts with it, so the
# rule never meets the ledger's own "<api>/<target>/v..." blobs (an API may be named "staged").
PREFIX = "_staged/"
KEEP_DAYS = 8  # the lifecycle rule: the poison queue keeps a message 7 days
# The planning download's end, when SYNC_FETCH_BUDGET_SECONDS (120 s by default, sized for a
# worker) is longer: an HTTP caller waits for the answer, and Event Grid counts a delivery not
# answered within 30 s as failed and sends it again.
PLAN_FETCH_SECONDS = 20.0


def blob_name(key: str) -> str:
    """Where a staged spec lives in the ledger container; a key of another form is refused
    (it would name another blob)."""
    if not STAGED_SPEC.match(key):
        raise ValueError("not a staged spec key (sha256:<64 lower-case hex digits>)")
    return PREFIX + key.removeprefix("sha256:")


def download(
    specs: SpecSource,
    api: ApiConfig,
    request: SyncRequest,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    deadline: float | None = None,
) -> FetchedSpec:
    """The API's spec through the spec port, as the worker and the planner both fetch it: the
    per-kind dispatcher when the port has one (``sync.adapters.spec_sources``), else the plain
    URL. ``etag`` / ``last_modified`` make it a conditional GET, whose ``content`` is None on
    304; the planner sends none, and a ``deadline`` (PLAN_FETCH_SECONDS from now) where the
    worker has the whole fetch budget."""
    fetch_for = getattr(specs, "fetch_for", None)
    if callable(fetch_for):
        return fetch_for(api, request, etag=etag, last_modified=last_modified, deadline=deadline)
    location = request.spec_url or api.spec_url
    if location is None:
        raise PermanentError(
            f"spec source {api.spec_kind!r} has no URL to fetch", where=f"apis.{api.name}.spec"
        )
    return specs.fetch(location, etag=etag, last_modified=last_modified, deadline=deadline)


def staged(request: SyncRequest, api: ApiConfig, ports: Ports, *, run_id: str) -> SyncRequest:
    """``request`` as its work items may carry it: unchanged unless its ``spec_url`` carries a
    credential; then with the spec staged, the URL redacted and the staged key. A download
    that fails is this call's failure, before anything of the run is written:
    ``SpecNotStagedError`` (naming ``specUrl``, a 400 to an HTTP caller, an event acknowledged)
    or ``TransientError`` (a 503, an event redelivered). A run already planned under ``run_id``
    keeps the spec it staged (``_staged_before``)."""
    if not request.spec_url or not carries_credential(request.spec_url):
        return request
    shown = redact_url(request.spec_url)
    # Only an event's run id is its own again on a redelivery (``runs.run_id_for``); any other
    # run is new, and looking it up would be a wasted read
    replanned = event_identity(request) is not None
    if replanned and (kept := _staged_before(ports.ledger, run_id)) is not None:
        log.info("run %s planned before: its staged spec %s is used again", run_id, kept)
        return replace(request, spec_url=shown, staged_spec=kept)
    started = time.monotonic()
    try:
        fetched = download(ports.specs, api, request, deadline=started + PLAN_FETCH_SECONDS)
    except TransientError as exc:
        raise TransientError(
            f"the spec could not be downloaded to plan the run, nothing was queued; try again "
            f"later: {exc}",
            where="specUrl",
            retry_after=exc.retry_after,
        ) from None
    except PermanentError as exc:
        raise SpecNotStagedError(
            f"the spec could not be downloaded to plan the run, nothing was queued: {exc}",
            where="specUrl",
        ) from None
    if fetched.content is None:  # unconditional: a source answering 304 is broken
        raise SpecNotStagedError(f"{shown} answered no content to plan the run", where="specUrl")
    key = ports.ledger.stage_spec(fetched.content)
    log.info(
        "spec at %s staged as %s (%d bytes in %.0f ms)",
        shown,
        key,
        len(fetched.content),
        (time.monotonic() - started) * 1000,
    )
    return replace(request, spec_url=shown, staged_spec=key)


def _staged_before(ledger: Ledger, run_id: str) -> str | None:
    """The key an earlier delivery of this run staged, while its blob is still whole: a
    redelivered event whose first delivery wrote the run row but failed before its items were
    all queued must queue them, not download again with a SAS that may have expired since (an
    expired one used to leave the run without items or card for good). The bytes are written
    again, so the lifecycle rule's 8 days restart with the new items."""
    stored = ledger.get_run(run_id)
    key = stored.request.staged_spec if stored is not None else None
    if key is None:
        return None
    content = ledger.staged_spec(key)
    if content is None or staged_key(content) != key:
        return None  # expired or altered: download again, as a first delivery does
    ledger.stage_spec(content)
    return key


def read_staged(ledger: Ledger, item: WorkItem) -> FetchedSpec:
    """The item's staged spec as a download without validators (so always new content to
    prepare; the content hash still decides "unchanged"), its bytes checked against their key.
    A missing or altered blob is a ``PermanentError`` naming the run and the blob."""
    key = item.request.staged_spec
    assert key is not None  # the caller's branch
    name = blob_name(key)
    where = f"{item.api}/{item.target}"
    content = ledger.staged_spec(key)
    if content is None:
        raise PermanentError(
            f"run {item.run_id}: the staged spec {name} is missing from the ledger container; "
            f"staged specs are deleted {KEEP_DAYS} days after their run was planned, so it may "
            "have expired (a re-driven poison message?): send the sync or the event again",
            where=where,
        )
    if staged_key(content) != key:
        raise PermanentError(
            f"run {item.run_id}: the staged spec {name} in the ledger container does not match "
            f"its sha256 ({key}): it was changed after the run was planned; refused",
            where=where,
        )
    return FetchedSpec(url=item.request.spec_url or "", content=content)
