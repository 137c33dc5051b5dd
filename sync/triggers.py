"""What each Functions trigger does, minus ``azure.functions``: the bodies ``function_app.py`` calls.

Kept apart from ``function_app.py`` so the trigger behaviour is testable with plain values and
``sync`` never imports the Functions library (the trigger objects are read by duck typing).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sync import collector, http_api
from sync.bootstrap import Service, service
from sync.errors import ConfigError, SpecNotStagedError, SyncError
from sync.http_api import ApiRequest, ApiResponse, error
from sync.models import SyncRequest, WorkItem
from sync.runs import Delivery, after_failed_delivery, as_sync_error, execute, give_up, submit

if TYPE_CHECKING:  # the routes import sync.auth where they authenticate
    from sync.auth import Caller

log = logging.getLogger(__name__)

__all__ = ["ApiRequest", "ApiResponse"]


def plan(
    event: Any, svc: Service, *, traceparent: str | None = None, caller: str | None = None
) -> list[str]:
    """Event (parsed, or anything else: a dict, an array element) -> runs. Unmatched or malformed
    events are acknowledged and logged, with no side effect; whatever is not an ``Event`` goes
    through ``normalize_event``, so a value that is not even an object is a ``MalformedEvent``
    too, never an AttributeError. The trace comes from the CloudEvents ``traceparent`` attribute
    (or the delivering request's header), else a new one starts here. ``caller``: who delivered
    the event over HTTP, recorded on the run and its versions like an HTTP caller's label.

    The debounce row names the event that claimed it: it is written before the run is planned,
    and a redelivery of that event (planning raised, or the process died) must not be dropped
    as a repeat of itself.

    A signed ``specUrl`` whose download is refused when the run is planned (``sync.staging``)
    is logged, redacted, and that API's run not planned; a transient failure raises, so Event
    Grid delivers the event again."""
    from collections.abc import Mapping
    from dataclasses import replace

    from sync import events
    from sync.logs import ensure_traceparent, install, log_context, trace_id_of

    install()
    if not isinstance(event, events.Event):
        if isinstance(event, Mapping):
            traceparent = event.get("traceparent") or traceparent
        try:
            event = events.normalize_event(event)
        except events.MalformedEvent as exc:
            log.warning("malformed event acknowledged and ignored: %s", exc)
            return []
    traceparent = ensure_traceparent(traceparent)
    with log_context(event_id=event.id, trace_id=trace_id_of(traceparent), stage="plan"):
        decision = events.plan_requests(event, svc.map)
        if decision.ignored or not decision.requests:
            log.info(
                "event %s (%s) ignored: %s", event.id, event.type, decision.ignored or "no match"
            )
            return []
        key = decision.debounce_key if decision.debounce_seconds > 0 else None  # 0: no window
        if key and not svc.ports.ledger.debounce(key, decision.debounce_seconds, claimant=event.id):
            log.info("event %s debounced (%s)", event.id, decision.debounce_key)
            return []
        runs = []
        for request in decision.requests:
            try:
                run = submit(
                    replace(request, traceparent=traceparent, caller=caller), svc.map, svc.ports
                )
            except SpecNotStagedError as exc:  # its signed spec URL refused the download
                log.warning("event %s not planned for API %s: %s", event.id, request.api, exc)
                continue  # a redelivery cannot do better: acknowledged, like malformed data
            runs.append(run.run_id)
        return runs


def on_event(host_event: Any) -> list[str]:
    """Event Grid trigger body. Configuration errors raise, so Event Grid retries and then
    dead-letters the event instead of losing it; a malformed event is acknowledged."""
    from sync import events
    from sync.logs import install

    install()
    try:
        raw = events.host_event_dict(host_event)
    except events.MalformedEvent as exc:
        log.warning("malformed event acknowledged and ignored: %s", exc)
        return []
    return plan(raw, service())


def parse_work_item(body: bytes | str) -> WorkItem | None:
    try:
        data = json.loads(body)
        return WorkItem.from_dict(data)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # nesting past the limit
        log.error("malformed work item acknowledged and dropped: %s", type(exc).__name__)
        return None


def on_work_item(body: bytes | str, *, dequeue_count: int = 1) -> None:
    from sync.adapters.sdk_imports import import_sdks, needed
    from sync.logs import install

    install()
    item = parse_work_item(body)
    if item is None:
        return
    svc = service()
    # the first item of a process: imported from the item's threads, the SDKs contend for the GIL
    import_sdks(needed(svc.settings, svc.map, (item.api,)))
    log.info(
        "work item %s/%s attempt %d",
        item.api,
        item.target,
        dequeue_count,
        extra={"run_id": item.run_id, "api": item.api, "target": item.target, "stage": "dequeue"},
    )
    try:
        execute(item, svc.pipeline, svc.ports)
    except Exception as exc:  # a defect too: its last delivery must still record the failure
        from sync.adapters.queue_storage import HOST_MAX_DEQUEUE_COUNT  # host.json (a test)

        done = after_failed_delivery(
            item,
            as_sync_error(exc, item),
            svc.ports,
            dequeue_count=dequeue_count,
            max_deliveries=HOST_MAX_DEQUEUE_COUNT,
        )
        if done.what is Delivery.REQUEUED:
            return  # sent again, hidden until the lease expires: this delivery is done
        raise  # the host retries, or after the last delivery moves it to the poison queue
    finally:
        collector.after_item()  # the first item loaded what the process keeps (no-op after)


def on_poison_item(body: bytes | str, *, dequeue_count: int = 1) -> None:
    from sync.logs import install

    install()
    item = parse_work_item(body)
    if item is None:
        return
    svc = service()
    # An outcome the run row holds already (the last delivery's, with its error, or that of an
    # attempt that finished) is kept; the message stays in the poison queue for a re-drive.
    give_up(item, svc.ports, attempts=None)


def on_drift_timer(*, past_due: bool = False) -> list[str]:
    """Re-check every API: a spec changed without an event, or a connector edited by hand."""
    from sync.logs import install

    install()
    svc = service()
    if past_due:
        log.info("drift timer is past due; running now")
    runs = []
    for api in svc.map.apis:
        try:
            runs.append(submit(SyncRequest(api=api, reason="drift"), svc.map, svc.ports).run_id)
        except SyncError as exc:
            log.error("drift check for %s not planned: %s", api, exc)
    return runs


Route = Callable[[ApiRequest, Service], ApiResponse]


def http(
    route: Route, req: ApiRequest, svc_factory: Callable[[], Service] = service
) -> ApiResponse:
    """Every HTTP route: wire the service (a broken map answers 500 naming the key path)."""
    from sync.logs import install

    install()
    try:
        svc = svc_factory()
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return error(500, "ConfigError", exc.message, path=exc.path)
    try:
        return http_api.guarded(lambda r: route(r, svc))(req)
    finally:
        collector.after_item()


def post_sync_route(req: ApiRequest, svc: Service) -> ApiResponse:
    from sync import events

    if req.method == "OPTIONS":
        headers = events.is_cloudevents_abuse_protection(req.method, req.headers)
        if headers is None:
            return error(400, "BadRequest", "OPTIONS is only for the CloudEvents webhook handshake")
        if svc.settings.eventgrid_webhook_auth == "off":  # as for Event Grid's own handshake
            return _webhook_off()
        return ApiResponse(200, None, headers)
    kind = req.headers.get("aeg-event-type")
    if kind is not None:  # Event Grid pointed at this route (custom topics)
        return _event_grid_delivery(req, svc, kind)
    from sync import auth

    caller = None
    if not auth.is_dry_run_body(req.body):  # dry runs write nothing: the function key suffices
        caller = _mutating_caller(req, svc)
    return http_api.post_sync(req, svc, caller=caller)


EVENT_GRID_KINDS = ("Notification", "SubscriptionValidation")  # the aeg-event-type values it sends


def _event_grid_delivery(req: ApiRequest, svc: Service, kind: str) -> ApiResponse:
    """An Event Grid webhook delivery, checked per ``SYNC_EVENTGRID_WEBHOOK_AUTH``.

    Only the exact header values Event Grid sends are accepted (400 otherwise), so no value of the
    caller's choosing reaches a path with weaker checks. The handshake plans nothing (it echoes a
    code), so outside ``off`` it is answered on the function key alone.
    """
    from sync import events
    from sync.settings import EVENTGRID_WEBHOOK_AUTH

    if kind not in EVENT_GRID_KINDS:
        return error(
            400,
            "BadRequest",
            f"header aeg-event-type must be exactly one of {', '.join(EVENT_GRID_KINDS)}",
            field="aeg-event-type",
        )
    mode = svc.settings.eventgrid_webhook_auth
    if mode == "off":
        return _webhook_off()
    if kind == "SubscriptionValidation":
        delivered = events.events_from_body(req.body)
        validation = events.validation_response(delivered[0]) if delivered else None
        if validation is None:
            return error(400, "BadRequest", "no subscription validation event in the body")
        return ApiResponse(200, validation)
    if mode == "key":
        caller = "eventgrid-webhook:key"  # admitted on the function key alone: no identity known
    elif mode == "entra":  # Event Grid's own token: its app role and its application id
        who = _authenticated(req, svc, event_grid=True)
        caller = (
            f"eventgrid-webhook:app:{who.appid}" if who.appid else f"eventgrid-webhook:{who.label}"
        )
    else:  # a Settings built in code skips the env check; an unknown mode must not admit anyone
        raise ConfigError(
            f"{EVENTGRID_WEBHOOK_AUTH}={mode!r} is not a known mode", path=EVENTGRID_WEBHOOK_AUTH
        )
    skipped: list[events.MalformedEvent] = []
    delivered = events.events_from_body(req.body, skipped=skipped)
    trace = req.headers.get("traceparent")
    runs = [
        run
        for ev in _first_of_each(delivered)
        for run in plan(ev, svc, traceparent=trace, caller=caller)
    ]
    answer: dict[str, Any] = {"runs": runs}
    if skipped:  # acknowledged with the rest (a 400 would lose the batch's good events too)
        answer["skipped"] = [str(exc) for exc in skipped]
    return ApiResponse(200, answer)


def _first_of_each(delivered: list[Any]) -> list[Any]:
    """The batch without repeats of an event (same source and id: CloudEvents' identity, and
    Event Grid's within a topic): planned once, a repeat would enqueue every unfinished target
    again, each a worker run that the ledger then finds done."""
    seen: set[tuple[str, str]] = set()
    first: list[Any] = []
    for event in delivered:
        identity = (event.topic, event.id)
        if identity not in seen:
            seen.add(identity)
            first.append(event)
    return first


def _webhook_off() -> ApiResponse:
    """A subscription must not validate (look healthy) when every delivery would be refused."""
    from sync.settings import EVENTGRID_WEBHOOK_AUTH

    return error(
        403,
        "Forbidden",
        f"{EVENTGRID_WEBHOOK_AUTH}=off: this route takes no Event Grid deliveries "
        "(subscribe the Event Grid trigger instead)",
    )


def _mutating_caller(req: ApiRequest, svc: Service) -> str:
    """The authenticated caller of a mutating route (a real POST /api/sync, rollback, release);
    its label goes on the run, the hold and the version record."""
    return _authenticated(req, svc).label


def _authenticated(req: ApiRequest, svc: Service, *, event_grid: bool = False) -> Caller:
    """``auth.authenticate`` against the map's cloud. ``event_grid``: an Event Grid delivery,
    which needs Event Grid's app role and its own application id instead of ``Connector.Sync``."""
    from sync import auth
    from sync.clouds import cloud_for

    cloud = cloud_for(svc.map.cloud, svc.map.endpoints)
    if not event_grid:
        return auth.authenticate(req.headers, svc.settings, cloud=cloud)
    return auth.authenticate(
        req.headers,
        svc.settings,
        cloud=cloud,
        role=auth.EVENT_GRID_ROLE,
        expected_appid=auth.event_grid_app_id(cloud),
    )


def rollback_route(req: ApiRequest, svc: Service) -> ApiResponse:
    from sync import rollback

    return rollback.post_rollback(req, svc, caller=_mutating_caller(req, svc))


def release_route(req: ApiRequest, svc: Service) -> ApiResponse:
    from sync import rollback

    return rollback.post_release(req, svc, caller=_mutating_caller(req, svc))


def health_route(req: ApiRequest, svc_factory: Callable[[], Service] = service) -> ApiResponse:
    """GET /api/health (function key); see ``sync.health`` for what is probed and why."""
    from sync.health import health_response

    return health_response(svc_factory)


def get_run_route(req: ApiRequest, svc: Service) -> ApiResponse:
    return http_api.get_run(req, svc)


def list_versions_route(req: ApiRequest, svc: Service) -> ApiResponse:
    return http_api.list_versions(req, svc)


def get_version_route(req: ApiRequest, svc: Service) -> ApiResponse:
    return http_api.get_version(req, svc)
