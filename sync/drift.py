"""Drift: a connector edited outside the service, and what each target's ``drift`` mode does about it.

Why this exists: the portal and ``paconn`` let anyone edit a connector by hand, and the next sync
would otherwise merge or overwrite that edit without anybody noticing. The ledger knows the sha256
of the definition we last applied (``TargetState.applied_sha256``); any other definition on the
target is drift.

Modes (``drift:`` per API or target in the sync map; default ``report``):

* ``adopt``     the edit joins the merge (three-way merge with the connector as "ours"); a drift run
                records the edited definition as a new version without writing the connector.
* ``overwrite`` upstream wins: merge with ``ours=None``, which removes the edit.
* ``report``    record it on the state row and say so on the card; write nothing.

On event, manual and CLI syncs a deployment must still land, so there ``report`` behaves like
``adopt`` (the three-way merge keeps edits that do not conflict, as before) and only ``overwrite``
changes the merge; the outcome is flagged either way. The modes are applied as such on drift runs.

The drift timer runs every few hours, so its runs stay quiet unless there is news: see
``worth_a_card``.
"""

from __future__ import annotations

import logging
from typing import Any

from sync.models import RunSummary, SyncRequest, TargetState

log = logging.getLogger(__name__)

MODES = ("adopt", "overwrite", "report")
# What the state row's ``drift_sha256`` holds once a deletion was reported: a deleted connector
# has no sha, and None there means "nothing reported", so the timer posted a card every run.
DELETED = "deleted"
DRIFT_REASON = "drift"
NEWS = ("updated", "failed", "blocked")


def detected(state: TargetState, current_sha256: str | None) -> bool:
    """True when the target holds something other than what we last applied.

    A target we never wrote (version 0) cannot drift, and a ``pending`` write is a crash we
    reconcile, not a human edit. A deleted connector (``current_sha256`` None) is drift too.
    """
    if state.version <= 0 or not state.applied_sha256 or state.pending:
        return False
    return current_sha256 != state.applied_sha256


def mode_for(configured: str, request: SyncRequest, *, deleted: bool = False) -> str:
    """The handling for this run: the configured mode on drift runs; on other syncs ``overwrite``
    stays and the rest merge (adopt), so a deployment is never held up by a report-only setting.
    A drift run that would adopt a deletion reports it instead: there is no edit to keep, and
    creating the connector again is not adopting what someone did (a deployment or a manual
    sync does create it again)."""
    if configured not in MODES:
        configured = "report"
    if request.reason == DRIFT_REASON:
        return "report" if deleted and configured == "adopt" else configured
    return "overwrite" if configured == "overwrite" else "adopt"


def report_message(
    state: TargetState,
    current_sha256: str | None,
    *,
    upstream_changed: bool,
    configured: str = "report",
) -> str:
    """The state row's and the card's words for a reported (not handled) drift."""
    what = (
        "the connector was deleted outside the service"
        if current_sha256 is None
        else f"the connector was edited outside the service (sha256 {current_sha256[:12]}, "
        f"v{state.version} recorded {(state.applied_sha256 or '')[:12]})"
    )
    pending = "; the upstream spec changed too and was not applied" if upstream_changed else ""
    if configured == "adopt":  # only a deletion is reported in adopt mode (``mode_for``)
        return (
            f"{what}{pending}; drift mode 'adopt' does not create it again on a drift run: the "
            "next deployment or a manual sync does (or set drift to overwrite)"
        )
    return (
        f"{what}{pending}; drift mode 'report' writes nothing: set drift to adopt or overwrite, "
        "run a manual sync (keeps the edits), or roll back"
    )


def handled_note(mode: str, *, deleted: bool = False) -> str:
    """Suffix for the outcome message of a sync that found drift and wrote anyway."""
    if deleted:  # nothing was kept or overwritten: it was gone
        return "; the connector had been deleted outside the service and was created again"
    if mode == "overwrite":
        return "; connector edits made outside the service were overwritten"
    return "; connector edits made outside the service were kept (adopted)"


def reason_for(request: SyncRequest, mode: str | None, *, deleted: bool = False) -> str | None:
    """Version-record reason for a drift run that handled an edit; None keeps the request's own."""
    if request.reason != DRIFT_REASON or mode is None:
        return None
    if deleted:
        return "drift: created the deleted connector again"
    return (
        "drift: adopted connector edits" if mode == "adopt" else "drift: overwrote connector edits"
    )


def worth_a_card(run: RunSummary) -> bool:
    """Every run notifies, except a drift run with no news.

    News is a write, a failure or block, or a drift seen for the first time. A drift run that found
    nothing (or only a hold, or a drift already reported) completes its run row quietly, because the
    timer would otherwise post the same card every few hours.
    """
    if run.request.reason != DRIFT_REASON:
        return True
    return any(o.result in NEWS or (o.drift and not o.drift_known) for o in run.outcomes)


def record_quiet(run: RunSummary, ledger: Any) -> None:
    """Mark the run as deliberately not notified, so an operator reading it knows why."""
    from sync.errors import SyncError

    try:
        ledger.mark_notified(run.run_id, "skipped: drift run found nothing new")
    except SyncError as exc:
        log.warning("could not record the skipped notification for run %s: %s", run.run_id, exc)
