"""The HTTP endpoints as plain functions: ``ApiRequest`` in, ``ApiResponse`` out.

``function_app.py`` only converts ``func.HttpRequest`` to ``ApiRequest`` and back, so every route is
testable without the Functions host and ``sync`` never imports ``azure.functions``.
Status codes: 400 bad input (names the field), 401/403 caller, 404 unknown, 413 body too large,
500 configuration error (names the key path), 503 transient (with Retry-After).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sync.auth import AuthError
from sync.errors import ConfigError, PermanentError, ServerFault, SyncError, TransientError
from sync.models import SyncRequest, TargetOutcome
from sync.runs import run_inline, submit

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# Nesting levels a body may have, counted as ``sync.spec.parse`` counts them (a scalar leaf is a
# level). The routes' schemas go 3 deep; jsonschema compares nested values recursively (about 4
# frames a level in ``uniqueItems``), so a body near the parser's own limit overflowed the stack.
MAX_BODY_DEPTH = 16
NAME = r"^[a-z0-9][a-z0-9-]{0,62}\Z"  # \Z: "$" also matches before a final newline
SYNC_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["api"],
    "properties": {
        "api": {"type": "string", "pattern": NAME},
        "targets": {
            "type": "array",
            "minItems": 1,
            "maxItems": 100,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": NAME},
        },
        "dryRun": {"type": "boolean"},
        # no whitespace, no control character (httpx refuses them at fetch time), no final "\n"
        "specUrl": {
            "type": "string",
            "maxLength": 2048,
            "pattern": r"^https?://[^\s\x00-\x1f\x7f]+\Z",
        },
        "version": {"type": "string", "maxLength": 128},
        "commit": {"type": "string", "maxLength": 128},
        "deploymentId": {"type": "string", "maxLength": 256},
    },
}


@dataclass(frozen=True)
class ApiRequest:
    method: str
    url: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    query: dict[str, str] = field(default_factory=dict)
    route: dict[str, str] = field(default_factory=dict)


@dataclass
class ApiResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def json_bytes(self) -> bytes:
        return b"" if self.body is None else json.dumps(self.body, ensure_ascii=False).encode()


class BadRequest(Exception):
    def __init__(self, message: str, *, status: int = 400, field_name: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field_name


def error(status: int, code: str, message: str, **extra: Any) -> ApiResponse:
    body = {"error": {"code": code, "message": message, **{k: v for k, v in extra.items() if v}}}
    headers = {"Retry-After": "30"} if status == 503 else {}
    return ApiResponse(status, body, headers)


def guarded(handler: Callable[[ApiRequest], ApiResponse]) -> Callable[[ApiRequest], ApiResponse]:
    """Map the error tree to HTTP once, for every route."""

    def wrapper(req: ApiRequest) -> ApiResponse:
        try:
            return handler(req)
        except AuthError as exc:  # 401 / 403 with the RFC 6750 challenge
            refused = error(exc.status, exc.code, exc.message)
            refused.headers["WWW-Authenticate"] = exc.www_authenticate
            return refused
        except BadRequest as exc:
            return error(exc.status, "BadRequest", str(exc), field=exc.field)
        except ConfigError as exc:
            log.error("configuration error: %s", exc)
            return error(500, "ConfigError", exc.message, path=exc.path)
        except TransientError as exc:
            return error(503, "Unavailable", str(exc))
        except ServerFault as exc:  # ours (storage refused the app, an unreadable row): not a 400
            log.error("server fault: %s", exc)
            return error(500, type(exc).__name__, str(exc), field=exc.where)
        except PermanentError as exc:
            return error(400, type(exc).__name__, str(exc), field=exc.where)
        except SyncError as exc:  # pragma: no cover - every subclass is handled above
            return error(500, type(exc).__name__, str(exc))

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


def read_json(req: ApiRequest, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body as a JSON object checked against ``schema``, or ``BadRequest`` naming the body or
    the field at fault. A body nested deeper than ``MAX_BODY_DEPTH`` is refused before the schema
    sees it: two equal deeply nested ``targets`` entries made the ``uniqueItems`` comparison
    raise RecursionError, which escaped as a 500 from the host; a RecursionError the validator
    still meets is a 400 too."""
    from sync.spec.parse import nesting_depth  # counted as the spec parser counts levels

    if len(req.body) > MAX_BODY_BYTES:
        raise BadRequest(
            f"body is {len(req.body)} bytes; the limit is {MAX_BODY_BYTES}", status=413
        )
    if not req.body.strip():
        raise BadRequest("body is empty; send a JSON object")
    try:
        data = json.loads(req.body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("body is not valid UTF-8") from None
    except (ValueError, RecursionError) as exc:  # also an integer past the 4,300-digit limit
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    if nesting_depth(data) > MAX_BODY_DEPTH:
        raise BadRequest(f"body is nested deeper than {MAX_BODY_DEPTH} levels")
    _refuse_unpaired_surrogates(data)
    if schema is not None:
        from jsonschema import Draft202012Validator

        try:
            problems = sorted(
                Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path)
            )
        except RecursionError:  # a backstop: the depth cap keeps bodies far from this
            raise BadRequest("body is nested too deeply") from None
        if problems:
            first = problems[0]
            where = ".".join(str(p) for p in first.absolute_path) or "(body)"
            raise BadRequest(f"{where}: {first.message}", field_name=where)
    return data


def _refuse_unpaired_surrogates(data: dict[str, Any]) -> None:
    """JSON may escape a lone surrogate (``"\\ud800"``), which has no UTF-8 form: the run row and
    the queue message holding it could not be written (a 500 after the checks had passed).
    Names the top-level member that holds one."""
    for key, value in data.items():
        try:
            json.dumps([key, value], ensure_ascii=False).encode()
        except UnicodeEncodeError:
            field = key if key.isprintable() else None  # a key holding one is not shown
            raise BadRequest(
                f"{field or 'a member name'}: contains an unpaired surrogate (\\ud800-\\udfff)",
                field_name=field,
            ) from None
        except RecursionError:  # as deep as json.loads allowed, from a deeper frame
            raise BadRequest("body is nested too deeply") from None


def sync_request_from_body(
    data: dict[str, Any], *, caller: str | None, traceparent: str | None
) -> SyncRequest:
    return SyncRequest(
        api=data["api"],
        reason="manual",
        caller=caller,
        spec_url=data.get("specUrl"),
        version=data.get("version"),
        commit=data.get("commit"),
        deployment_id=data.get("deploymentId"),
        targets=tuple(data["targets"]) if data.get("targets") else None,
        dry_run=bool(data.get("dryRun", False)),
        traceparent=traceparent,
    )


def outcome_json(outcome: TargetOutcome) -> dict[str, Any]:
    data = outcome.to_dict()
    return {k: v for k, v in data.items() if v not in (None, [], "", 0) or k == "result"}


def post_sync(req: ApiRequest, svc: Any, *, caller: str | None) -> ApiResponse:
    """Manual sync: dry runs execute inline and answer what would change; others enqueue (202)."""
    data = read_json(req, SYNC_BODY_SCHEMA)
    request = sync_request_from_body(
        data, caller=caller, traceparent=req.headers.get("traceparent")
    )
    api = svc.map.api(request.api) if request.api in svc.map.apis else None
    if api is None:
        raise BadRequest(f"unknown API {request.api!r}", status=404, field_name="api")
    if request.spec_url and "#" in request.spec_url:
        # never sent, but it would be queued as written (only a query or userinfo credential is
        # staged), and custom events refuse one too
        raise BadRequest("specUrl must not have a #fragment", field_name="specUrl")
    if request.spec_url and not api.allows_spec_url(request.spec_url):
        raise BadRequest(
            f"specUrl is not under the API's allowedSpecUrls ({', '.join(api.allowed_spec_urls) or 'none configured'})",
            field_name="specUrl",
        )
    if request.dry_run:
        result = run_inline(request, svc.map, svc.ports, svc.pipeline)
        return ApiResponse(
            200,
            {
                "runId": result.run.run_id,
                "dryRun": True,
                "ok": result.ok,
                "targets": [outcome_json(o) for o in result.outcomes],
            },
        )
    run = submit(request, svc.map, svc.ports)
    location = f"/api/runs/{run.run_id}"
    return ApiResponse(
        202,
        {"runId": run.run_id, "targets": list(run.targets), "statusUrl": location},
        {"Location": location},
    )


def get_run(req: ApiRequest, svc: Any) -> ApiResponse:
    run_id = req.route.get("id", "")
    # ASCII only: fullwidth letters, "²" and Arabic-Indic digits are alphanumeric too (the
    # ledger would refuse them, naming its own field)
    if not run_id or not (run_id.isascii() and run_id.isalnum()) or len(run_id) > 64:
        raise BadRequest("run id must be ASCII alphanumeric", field_name="id")
    run = svc.ports.ledger.get_run(run_id)
    if run is None:
        return error(404, "NotFound", f"no run {run_id!r}")
    return ApiResponse(200, run.to_dict())


def _int_param(
    req: ApiRequest, name: str, *, default: int | None, low: int, high: int
) -> int | None:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer", field_name=name) from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}", field_name=name)
    return value


def _api_and_target(req: ApiRequest, svc: Any) -> tuple[str, str | None]:
    api = req.route.get("api", "")
    if api not in svc.map.apis:
        raise BadRequest(f"unknown API {api!r}", status=404, field_name="api")
    target = req.query.get("target") or None
    if target is not None and target not in {t.name for t in svc.map.apis[api].targets}:
        raise BadRequest(f"API {api!r} has no target {target!r}", status=404, field_name="target")
    return api, target


def version_json(record: Any, *, definitions: bool = False) -> dict[str, Any]:
    data = {
        "api": record.api,
        "target": record.target,
        "version": record.version,
        "reason": record.reason,
        "outcome": record.outcome,
        "runId": record.run_id,
        "createdAt": record.created_at,
        "eventId": record.event_id,
        "eventType": record.event_type,
        "eventTime": record.event_time,
        "caller": record.caller,
        "sourceUrl": record.source_url,
        "infoVersion": record.info_version,
        "commit": record.commit,
        "summary": record.summary,
        "upstreamSha256": record.upstream_sha256,
        "appliedSha256": record.applied_sha256,
    }
    if definitions:
        data["upstream"] = record.upstream
        data["applied"] = record.applied
    return {k: v for k, v in data.items() if v is not None}


def list_versions(req: ApiRequest, svc: Any) -> ApiResponse:
    """Newest first, paged with ``before`` (the smallest version number of the previous page)."""
    api, target = _api_and_target(req, svc)
    limit = _int_param(req, "limit", default=20, low=1, high=100) or 20
    before = _int_param(req, "before", default=None, low=1, high=10**9)
    records = svc.ports.ledger.versions(api, target, limit=limit, before=before)
    body: dict[str, Any] = {"api": api, "versions": [version_json(r) for r in records]}
    if len(records) == limit and target is not None:
        body["next"] = (
            f"/api/apis/{api}/versions?target={target}&limit={limit}&before={records[-1].version}"
        )
    return ApiResponse(200, body)


def get_version(req: ApiRequest, svc: Any) -> ApiResponse:
    api, target = _api_and_target(req, svc)
    if target is None:
        raise BadRequest("target query parameter is required", field_name="target")
    raw = req.route.get("n", "")  # ASCII digits only: "²".isdigit() is true but int() refuses it
    digits = raw.lstrip("0")  # int() raises past 4,300 digits, leading zeros counted
    if (
        not (raw.isascii() and raw.isdigit())
        or len(digits) > 10
        or not 1 <= int(digits or 0) <= 10**9
    ):
        raise BadRequest("version must be an integer between 1 and 1000000000", field_name="n")
    number = int(digits)
    wanted = {part for part in (req.query.get("include") or "").split(",") if part}
    if wanted - {"definition", "diff"}:
        raise BadRequest(
            "include takes definition and/or diff (comma-separated)", field_name="include"
        )
    include = "definition" in wanted
    record = svc.ports.ledger.version(api, target, number, include_definitions=include)
    if record is None:
        return error(404, "NotFound", f"{api}/{target} has no version {number}")
    body = version_json(record, definitions=include)
    if "diff" in wanted:  # against the previous recorded version (sync.rollback)
        from sync.rollback import diff_to_previous

        body["diff"] = diff_to_previous(svc.ports.ledger, api, target, number)
    return ApiResponse(200, body)
