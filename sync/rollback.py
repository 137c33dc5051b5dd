"""Rollback with a hold, release, and the per-version diff of the history API.

Why a hold: a rollback re-applies a recorded definition, but the API it wraps is still deployed at
the newer version, so the next deployment event would silently undo the rollback. The rollback
therefore sets a hold ``{version, until, by}`` on each target's state row; while it is active the
pipeline records normal syncs as ``held`` (and the card says so) until someone releases it or it
expires.

A rollback goes through the same pipeline as any sync (validate, diff, apply, verify, record as a
new version with reason ``rollback to vN``, notify): the pipeline reads the recorded *applied*
definition and writes it as is; the recorded *upstream* of that version stays the merge base for
later syncs. HTTP rollbacks are queued like other mutating requests (202 + run id); the CLI runs
them inline.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sync.errors import PermanentError
from sync.models import SyncRequest, iso, utcnow

log = logging.getLogger(__name__)

DEFAULT_HOLD_HOURS = 24
MAX_HOLD_HOURS = 720  # 30 days: a hold is a pause for a fix, not a way to freeze a connector
NAME = r"^[a-z0-9][a-z0-9-]{0,62}\Z"  # \Z: "$" also matches before a final newline
TARGETS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "maxItems": 100,
    "uniqueItems": True,
    "items": {"type": "string", "pattern": NAME},
}
ROLLBACK_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["version"],
    "properties": {
        "version": {"type": "integer", "minimum": 1, "maximum": 10**9},
        "targets": TARGETS_SCHEMA,
        "holdHours": {"type": "integer", "minimum": 1, "maximum": MAX_HOLD_HOURS},
    },
}
RELEASE_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"targets": TARGETS_SCHEMA},
}


class VersionNotFound(PermanentError):
    """The version to roll back to is not recorded for a target (HTTP 404, CLI exit 1)."""


@dataclass(frozen=True)
class Released:
    """What a release found on one target's state row."""

    target: str
    hold: dict[str, Any] | None  # the hold it cleared (version, until, by, active), None if none

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "released": self.hold is not None, "hold": self.hold}


# --- requests ------------------------------------------------------------------------------------


def rollback_request(
    api: str,
    version: int,
    *,
    caller: str | None,
    targets: tuple[str, ...] | None = None,
    hold_hours: int = DEFAULT_HOLD_HOURS,
    traceparent: str | None = None,
) -> SyncRequest:
    """The request the pipeline runs; the hold's end is fixed now, when the human asked."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise PermanentError(
            f"version must be a positive integer, got {version!r}", where="version"
        )
    if not 1 <= hold_hours <= MAX_HOLD_HOURS:
        raise PermanentError(
            f"hold hours must be between 1 and {MAX_HOLD_HOURS}, got {hold_hours}",
            where="holdHours",
        )
    until = iso(utcnow() + timedelta(hours=hold_hours))
    return SyncRequest(
        api=api,
        reason="rollback",
        caller=caller,
        targets=targets,
        rollback_to=version,
        hold_until=until,
        traceparent=traceparent,
    )


def check_recorded(request: SyncRequest, sync_map: Any, ledger: Any) -> tuple[str, ...]:
    """Every selected target must have the version recorded; else ``VersionNotFound`` naming them.

    Checked before anything is queued so a typo answers 404 at once instead of a failed run later.
    """
    from sync.runs import target_names

    assert request.rollback_to is not None
    targets = target_names(request, sync_map)
    missing: list[str] = []
    for target in targets:
        if ledger.version(request.api, target, request.rollback_to) is None:
            latest = ledger.versions(request.api, target, limit=1)
            missing.append(
                f"{target} (latest: v{latest[0].version})" if latest else f"{target} (none)"
            )
    if missing:
        raise VersionNotFound(
            f"version {request.rollback_to} is not recorded for {request.api}: {', '.join(missing)}",
            where="version",
        )
    return targets


def release(
    api: str, targets: tuple[str, ...] | None, sync_map: Any, ledger: Any, *, by: str | None
) -> list[Released]:
    """Clear the hold on each target's state row (all targets of the API by default).

    The state row is written under its ETag; a sync finishing at the same moment makes it stale,
    so the read-modify-write is retried a few times rather than failing the human's request.
    """
    from sync.runs import target_names

    names = target_names(SyncRequest(api=api, reason="release", targets=targets), sync_map)
    out: list[Released] = []
    for target in names:
        out.append(_release_one(api, target, ledger, by=by or "unknown"))
    return out


def _release_one(api: str, target: str, ledger: Any, *, by: str, attempts: int = 4) -> Released:
    from sync.errors import TransientError

    for attempt in range(attempts):
        state = ledger.state(api, target)
        if state.hold is None:
            return Released(target=target, hold=None)
        hold = {
            "version": state.hold.version,
            "until": state.hold.until,
            "by": state.hold.by,
            "active": state.hold.active(),
        }
        try:
            ledger.save_state(
                api,
                target,
                state.evolve(
                    hold=None, last_message=f"hold on v{hold['version']} released by {by}"
                ),
            )
        except TransientError:  # a concurrent write made our ETag stale: read again
            if attempt == attempts - 1:
                raise
            continue
        log.info("hold on %s/%s (v%s) released by %s", api, target, hold["version"], by)
        return Released(target=target, hold=hold)
    raise AssertionError("unreachable")  # pragma: no cover


# --- HTTP ---------------------------------------------------------------------------------------


def _known_api(req: Any, svc: Any) -> str:
    from sync.http_api import BadRequest

    api = req.route.get("api", "")
    if api not in svc.map.apis:
        raise BadRequest(f"unknown API {api!r}", status=404, field_name="api")
    return api


def post_rollback(req: Any, svc: Any, *, caller: str | None) -> Any:
    """``POST /api/apis/{api}/rollback``: 404 for an unknown API or version, else queued (202)."""
    from sync.http_api import ApiResponse, error, read_json
    from sync.runs import submit

    api = _known_api(req, svc)
    data = read_json(req, ROLLBACK_BODY_SCHEMA)
    request = rollback_request(
        api,
        data["version"],
        caller=caller,
        targets=tuple(data["targets"]) if data.get("targets") else None,
        hold_hours=data.get("holdHours", DEFAULT_HOLD_HOURS),
        traceparent=req.headers.get("traceparent"),
    )
    try:
        check_recorded(request, svc.map, svc.ports.ledger)
    except VersionNotFound as exc:
        return error(404, "NotFound", exc.message, field="version")
    run = submit(request, svc.map, svc.ports)
    location = f"/api/runs/{run.run_id}"
    body = {
        "runId": run.run_id,
        "targets": list(run.targets),
        "version": request.rollback_to,
        "holdUntil": request.hold_until,
        "statusUrl": location,
    }
    return ApiResponse(202, body, {"Location": location})


def post_release(req: Any, svc: Any, *, caller: str | None) -> Any:
    """``POST /api/apis/{api}/release``: clears holds now (no queue: it only writes state rows)."""
    from sync.http_api import ApiResponse, read_json

    api = _known_api(req, svc)
    data = read_json(req, RELEASE_BODY_SCHEMA) if req.body.strip() else {}
    targets = tuple(data["targets"]) if data.get("targets") else None
    released = release(api, targets, svc.map, svc.ports.ledger, by=caller)
    return ApiResponse(200, {"api": api, "targets": [r.to_dict() for r in released]})


# --- history detail ------------------------------------------------------------------------------


def diff_to_previous(ledger: Any, api: str, target: str, number: int) -> dict[str, Any]:
    """The applied definition of version ``number`` against version ``number - 1`` (or against
    nothing for v1). The stored summary is against whatever the connector held, which differs
    when the connector had been edited by hand; this one is between two recorded versions."""
    from sync.spec.diff import diff

    this = ledger.version(api, target, number, include_definitions=True)
    if this is None:
        raise VersionNotFound(f"{api}/{target} has no version {number}", where="n")
    before = (
        ledger.version(api, target, number - 1, include_definitions=True) if number > 1 else None
    )
    change = diff(before.applied if before else None, this.applied or {})
    return {"against": before.version if before else None, **change.to_dict()}


# --- CLI -----------------------------------------------------------------------------------------


def _cli_caller() -> str:
    return f"cli:{os.environ.get('USER', 'unknown')}"


def cmd_rollback(args: argparse.Namespace) -> int:
    from sync.cli import _outcome_line, _service
    from sync.runs import run_inline

    svc = _service(args)
    svc.map.api(args.api)
    request = rollback_request(
        args.api,
        args.version,
        caller=_cli_caller(),
        targets=tuple(args.target) if args.target else None,
        hold_hours=args.hold_hours,
    )
    check_recorded(request, svc.map, svc.ports.ledger)
    result = run_inline(request, svc.map, svc.ports, svc.pipeline)
    # the hold is set with the version a rollback records: a target that failed holds nothing
    held = [o.target for o in result.outcomes if o.result == "updated"]
    if args.json:
        report = {
            "api": args.api,
            "runId": result.run.run_id,
            "ok": result.ok,
            "holdUntil": request.hold_until if held else None,
            "held": held,
            "targets": [o.to_dict() for o in result.outcomes],
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"{args.api}: rollback to v{args.version}, run {result.run.run_id}")
        for outcome in result.outcomes:
            print(_outcome_line(outcome))
        if held:
            print(
                f"{', '.join(held)} held until {request.hold_until} "
                f"(release: python -m sync release --api {args.api})"
            )
    return 0 if result.ok else 1


def cmd_release(args: argparse.Namespace) -> int:
    from sync.cli import _service

    svc = _service(args)
    svc.map.api(args.api)
    released = release(
        args.api,
        tuple(args.target) if args.target else None,
        svc.map,
        svc.ports.ledger,
        by=_cli_caller(),
    )
    if args.json:
        print(json.dumps([r.to_dict() for r in released], indent=2, ensure_ascii=False))
    else:
        for r in released:
            text = (
                f"released hold on v{r.hold['version']} (until {r.hold['until']}, by {r.hold['by']})"
                if r.hold
                else "no hold"
            )
            print(f"  {r.target:<20} {text}")
    return 0


def _hours(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of hours") from None
    if not 1 <= value <= MAX_HOLD_HOURS:
        raise argparse.ArgumentTypeError(f"hold hours must be between 1 and {MAX_HOLD_HOURS}")
    return value


def _version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("version numbers start at 1")
    return value


def register(sub: Any) -> None:
    """``python -m sync rollback`` and ``release`` (picked up by ``sync.cli.build_parser``)."""
    roll = sub.add_parser("rollback", help="re-apply a recorded version and hold the target(s)")
    roll.add_argument("--config", help="sync map file (default: $SYNC_CONFIG)")
    roll.add_argument("--api", required=True)
    roll.add_argument("--version", required=True, type=_version, help="version number to restore")
    roll.add_argument("--target", action="append", help="only this target (repeatable)")
    roll.add_argument(
        "--hold-hours",
        type=_hours,
        default=DEFAULT_HOLD_HOURS,
        help=f"hold length, 1..{MAX_HOLD_HOURS} (default {DEFAULT_HOLD_HOURS})",
    )
    roll.add_argument("--json", action="store_true")
    roll.set_defaults(func=cmd_rollback)

    rel = sub.add_parser("release", help="clear the hold a rollback set, so syncs apply again")
    rel.add_argument("--config")
    rel.add_argument("--api", required=True)
    rel.add_argument("--target", action="append", help="only this target (repeatable)")
    rel.add_argument("--json", action="store_true")
    rel.set_defaults(func=cmd_release)


__all__ = [
    "DEFAULT_HOLD_HOURS",
    "MAX_HOLD_HOURS",
    "Released",
    "VersionNotFound",
    "check_recorded",
    "diff_to_previous",
    "post_release",
    "post_rollback",
    "register",
    "release",
    "rollback_request",
]
