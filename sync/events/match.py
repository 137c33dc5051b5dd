"""Which APIs an event concerns: the sync map's ``on:`` triggers decide, nothing else.

Every event ends in a ``Decision``: requests to plan, or a reason it was ignored that names the
event type and topic, so "why did nothing sync?" is answered by one log line. Resource ids are
compared without case (Azure resource ids are case-insensitive and events differ in casing, e.g.
``resourcegroups``); blob names are compared with case, as Storage does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sync.config import ApiConfig, SyncMap
from sync.events.custom import API_DEPLOYED, parse_api_deployed
from sync.events.handshake import SUBSCRIPTION_VALIDATION
from sync.events.model import Event, MalformedEvent
from sync.models import SyncRequest
from sync.redact import redact_url

log = logging.getLogger(__name__)

SLOT_SWAP_COMPLETED = "Microsoft.Web.SlotSwapCompleted"
APP_UPDATED = "Microsoft.Web.AppUpdated"
APIM_DEPLOY_TYPES = (
    "Microsoft.ApiManagement.APICreated",
    "Microsoft.ApiManagement.APIUpdated",
    "Microsoft.ApiManagement.APIReleaseCreated",
)
API_CENTER_TYPES = (
    "Microsoft.ApiCenter.ApiDefinitionAdded",
    "Microsoft.ApiCenter.ApiDefinitionUpdated",
)
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
BLOB_COMPLETING_OPS = ("PutBlob", "PutBlockList", "FlushWithClose")

# Types we know and deliberately ignore, with the reason an operator will read.
KNOWN_IGNORED: dict[str, str] = {
    "Microsoft.Web.SlotSwapStarted": "a slot swap started; the sync waits for SlotSwapCompleted",
    "Microsoft.Web.SlotSwapWithPreviewStarted": "a swap with preview started; nothing is live yet",
    "Microsoft.Web.SlotSwapWithPreviewCancelled": "a swap with preview was cancelled",
    "Microsoft.Web.SlotSwapFailed": "the slot swap failed; the live API did not change",
    "Microsoft.ApiManagement.APIReleaseUpdated": "an API release's notes changed, not the API",
    "Microsoft.ApiManagement.APIReleaseDeleted": "an API release was deleted",
    "Microsoft.ApiManagement.APIDeleted": "the API was deleted; connectors are not removed",
    "Microsoft.ApiManagement.GatewayAPIAdded": "an API was added to a gateway, its definition did not change",
    "Microsoft.ApiManagement.GatewayAPIRemoved": "an API was removed from a gateway",
    "Microsoft.ApiManagement.ProductCreated": "a product is not an API",
    "Microsoft.ApiManagement.ProductUpdated": "a product is not an API",
    "Microsoft.ApiCenter.ApiDefinitionDeleted": "the definition was deleted; connectors are not removed",
    "Microsoft.Storage.BlobDeleted": "a blob was deleted; connectors keep their last definition",
    SUBSCRIPTION_VALIDATION: "subscription validation handshake: answer it with validation_response()",
    "Microsoft.EventGrid.SubscriptionDeletedEvent": "the event subscription was deleted",
}

_ARM = r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers"
_SITE = re.compile(
    rf"^(?P<site>{_ARM}/Microsoft\.Web/sites/[^/]+)(?:/slots/(?P<slot>[^/]+))?/?\Z", re.I
)
_SUBJECT_SLOT = re.compile(r"/slots/(?P<slot>[^/]+)/?\Z", re.I)
_APIM_SERVICE = re.compile(rf"^{_ARM}/Microsoft\.ApiManagement/service/[^/]+/?\Z", re.I)
_APIM_SUBJECT = re.compile(r"^/apis/(?P<api>[^/;]+)(?:;rev=(?P<rev>[^/;]+))?(?P<rest>/.*)?\Z", re.I)
_APIM_RELEASE = re.compile(r"^/releases/[^/]+/?\Z", re.I)
_API_CENTER_DEFINITION = re.compile(
    rf"^(?P<service>{_ARM}/Microsoft\.ApiCenter/services/[^/]+)/workspaces/(?P<workspace>[^/]+)"
    r"/apis/(?P<api>[^/]+)/versions/(?P<version>[^/]+)/definitions/(?P<definition>[^/]+)/?\Z",
    re.I,
)
_STORAGE_ACCOUNT = re.compile(rf"^{_ARM}/Microsoft\.Storage/storageAccounts/[^/]+/?\Z", re.I)
_BLOB_SUBJECT = re.compile(
    r"^/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<blob>.+)\Z"
)
PRODUCTION = "production"


@dataclass(frozen=True)
class Decision:
    """What the planner does with one event.

    ``ignored`` is set when ``requests`` is empty; ``skipped`` lists per-API refusals when an event
    matched several APIs and only some were planned. ``debounce_key``/``debounce_seconds`` ask the
    planner to drop repeats of the same key within the window (the planner applies it with the
    ledger; only used where repeats carry no new content, e.g. restarts).
    """

    requests: list[SyncRequest] = field(default_factory=list)
    ignored: str | None = None
    debounce_key: str | None = None
    debounce_seconds: int = 0
    skipped: tuple[str, ...] = ()


def _same_id(a: str, b: str) -> bool:
    return a.rstrip("/").casefold() == b.rstrip("/").casefold()


def _describe(event: Event) -> str:
    return f"{event.type} from topic {event.topic or '(none)'!r}"


def _ignore(event: Event, reason: str) -> Decision:
    return Decision(ignored=f"{_describe(event)} subject {event.subject!r}: {reason}")


def _not_configured(event: Event, kind: str) -> Decision:
    return _ignore(event, f"no API lists a matching '{kind}:' trigger under 'on'")


def _request(api: ApiConfig, event: Event, **extra: Any) -> SyncRequest:
    return SyncRequest(
        api=api.name,
        reason="event",
        event_id=event.id,
        event_source=event.topic or None,
        event_type=event.type,
        event_time=event.time,
        subject=event.subject or None,
        **extra,
    )


def _triggers(sync_map: SyncMap, kind: str) -> Iterable[tuple[ApiConfig, Any]]:
    for api in sync_map.apis.values():
        for trigger in api.on:
            if kind in trigger:
                yield api, trigger[kind]


def _matching_apis(sync_map: SyncMap, kind: str, accepts: Callable[[Any], bool]) -> list[ApiConfig]:
    """APIs with at least one ``kind`` trigger accepting the event, each once, in map order."""
    found: dict[str, ApiConfig] = {}
    for api, trigger in _triggers(sync_map, kind):
        if api.name not in found and accepts(trigger):
            found[api.name] = api
    return list(found.values())


def _custom(event: Event, sync_map: SyncMap) -> Decision:
    try:
        deployed = parse_api_deployed(event)
    except MalformedEvent as exc:
        log.warning("event %s: malformed %s data: %s", event.id, API_DEPLOYED, exc.message)
        return _ignore(event, f"malformed data: {exc.message}")
    apis = _matching_apis(sync_map, "custom", lambda name: name == deployed.api)
    if not apis:
        if deployed.api in sync_map.apis:
            return _ignore(
                event,
                f"API {deployed.api!r} exists but does not list 'custom: {deployed.api}' under 'on'",
            )
        return _ignore(event, f"no API lists 'custom: {deployed.api}' under 'on'")
    requests: list[SyncRequest] = []
    skipped: list[str] = []
    for api in apis:
        if deployed.spec_url is not None and not api.allows_spec_url(deployed.spec_url):
            # honouring the event without its URL would sync a different spec than the
            # pipeline announced, so this API sits this event out, loudly
            reason = (
                f"API {api.name!r}: spec URL {redact_url(deployed.spec_url)} is not under its "
                "allowedSpecUrls; event not used for this API"
            )
            log.warning("event %s: %s", event.id, reason)
            skipped.append(reason)
            continue
        requests.append(
            _request(
                api,
                event,
                spec_url=deployed.spec_url,
                version=deployed.version,
                commit=deployed.commit,
                deployment_id=deployed.deployment_id,
            )
        )
    if not requests:
        return Decision(ignored=f"{_describe(event)}: {'; '.join(skipped)}", skipped=tuple(skipped))
    return Decision(requests=requests, skipped=tuple(skipped))


def _event_site(event: Event) -> tuple[str, str] | None:
    """(site id, slot) from the topic (the site) and, for slot events, the subject."""
    topic = _SITE.match(event.topic)
    if not topic:
        return None
    slot = topic.group("slot")
    if slot is None:
        in_subject = _SUBJECT_SLOT.search(event.subject)
        slot = in_subject.group("slot") if in_subject else None
    return topic.group("site"), (slot or PRODUCTION).casefold()


def _trigger_site(value: str) -> tuple[str, str] | None:
    match = _SITE.match(value)
    if not match:
        return None
    return match.group("site"), (match.group("slot") or PRODUCTION).casefold()


def _app_service(event: Event, sync_map: SyncMap, *, restart: bool) -> Decision:
    located = _event_site(event)
    if located is None:
        return _ignore(event, "the topic is not an App Service site resource id")
    site, slot = located
    slots = {slot}
    if not restart:
        # a swap changes what both slots serve; the data names them
        named = {
            str(event.data[k]).casefold()
            for k in ("sourceSlot", "targetSlot")
            if isinstance(event.data.get(k), str) and event.data[k]
        }
        slots = named or slots

    def accepts(trigger: str) -> bool:
        parsed = _trigger_site(trigger)
        return bool(parsed and _same_id(parsed[0], site) and parsed[1] in slots)

    apis = _matching_apis(sync_map, "appService", accepts)
    if not apis:
        return _not_configured(event, "appService")
    requests = [_request(api, event) for api in apis]
    if not restart:
        return Decision(requests=requests)
    key = "site:" + site.casefold() + ("" if slot == PRODUCTION else f"/slots/{slot}")
    return Decision(
        requests=requests,
        debounce_key=key,
        debounce_seconds=max(api.debounce_seconds for api in apis),
    )


def _app_updated(event: Event, sync_map: SyncMap) -> Decision:
    detail = event.data.get("appEventTypeDetail")
    action = detail.get("action") if isinstance(detail, dict) else None
    if not isinstance(action, str) or action.casefold() != "restarted":
        return _ignore(
            event,
            f"AppUpdated action {action!r} is not a deployment signal (only 'Restarted' is)",
        )
    return _app_service(event, sync_map, restart=True)


def _apim(event: Event, sync_map: SyncMap) -> Decision:
    if not _APIM_SERVICE.match(event.topic):
        return _ignore(event, "the topic is not an API Management service resource id")
    subject = _APIM_SUBJECT.match(event.subject)
    rest = subject.group("rest") if subject else None
    is_release = event.is_type("Microsoft.ApiManagement.APIReleaseCreated")
    if not subject or (rest is not None and not (is_release and _APIM_RELEASE.match(rest))):
        return _ignore(event, "the subject does not name an API (/apis/<api>[;rev=<n>])")
    name = subject.group("api")
    # ";rev=<n>" does not say whether <n> is the current revision (APIM also names the current
    # one that way); the export always reads the current revision, so an edit to another one
    # becomes an "unchanged" run instead of a missed deployment.
    apis = _matching_apis(
        sync_map,
        "apim",
        lambda t: _same_id(t["service"], event.topic) and t["api"].casefold() == name.casefold(),
    )
    if not apis:
        return _not_configured(event, "apim")
    return Decision(requests=[_request(api, event) for api in apis])


def _api_center(event: Event, sync_map: SyncMap) -> Decision:
    subject = _API_CENTER_DEFINITION.match(event.subject)
    if not subject:
        return _ignore(event, "the subject is not an API Center definition resource id")
    if not _from_api_center(event.topic, event.subject):
        return _ignore(
            event,
            f"the source {event.topic!r} is not the API Center the subject names (anyone who can "
            "publish to another topic could send this subject)",
        )

    def accepts(trigger: dict[str, Any]) -> bool:
        return (
            _same_id(trigger["service"], subject.group("service"))
            and (
                "api" not in trigger or trigger["api"].casefold() == subject.group("api").casefold()
            )
            and (
                "definition" not in trigger
                or trigger["definition"].casefold() == subject.group("definition").casefold()
            )
        )

    apis = _matching_apis(sync_map, "apiCenter", accepts)
    if not apis:
        return _not_configured(event, "apiCenter")
    return Decision(requests=[_request(api, event) for api in apis])


def _from_api_center(topic: str | None, subject: str) -> bool:
    """API Center publishes from its services' resource id (``…/Microsoft.ApiCenter/services``
    in the stored samples, which stop before the service's name), a prefix of the subject."""
    source = (topic or "").rstrip("/").casefold()
    return "/providers/microsoft.apicenter/services" in source and subject.casefold().startswith(
        source + "/"
    )


def _blob(event: Event, sync_map: SyncMap) -> Decision:
    operation = event.data.get("api")
    if operation not in BLOB_COMPLETING_OPS:
        return _ignore(
            event,
            f"blob operation {operation!r} does not complete a blob "
            f"(acted on: {', '.join(BLOB_COMPLETING_OPS)})",
        )
    length = event.data.get("contentLength")
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        return _ignore(event, f"blob contentLength {length!r} is not a positive size")
    if not _STORAGE_ACCOUNT.match(event.topic):
        return _ignore(event, "the topic is not a storage account resource id")
    subject = _BLOB_SUBJECT.match(event.subject)
    if not subject:
        return _ignore(
            event, "the subject is not /blobServices/default/containers/<c>/blobs/<name>"
        )
    container, blob = subject.group("container"), subject.group("blob")

    def accepts(trigger: dict[str, Any]) -> bool:
        return (
            _same_id(trigger["account"], event.topic)
            and trigger["container"].casefold() == container.casefold()
            and blob.startswith(trigger.get("prefix", ""))
        )

    apis = _matching_apis(sync_map, "blob", accepts)
    if not apis:
        return _not_configured(event, "blob")
    return Decision(requests=[_request(api, event) for api in apis])


def plan_requests(event: Event, sync_map: SyncMap) -> Decision:
    """Requests for the APIs whose ``on:`` triggers match, or the reason nothing matched.

    Never raises for event content: a custom ApiDeployed event with invalid data is ignored with a
    reason naming the field (``malformed data: data.api: ...``) and a warning, since redelivering
    the same event cannot fix it; ``parse_api_deployed`` raises if a caller wants the error.
    """
    if event.is_type(API_DEPLOYED):
        decision = _custom(event, sync_map)
    elif event.is_type(SLOT_SWAP_COMPLETED):
        decision = _app_service(event, sync_map, restart=False)
    elif event.is_type(APP_UPDATED):
        decision = _app_updated(event, sync_map)
    elif any(event.is_type(t) for t in APIM_DEPLOY_TYPES):
        decision = _apim(event, sync_map)
    elif any(event.is_type(t) for t in API_CENTER_TYPES):
        decision = _api_center(event, sync_map)
    elif event.is_type(BLOB_CREATED):
        decision = _blob(event, sync_map)
    else:
        known = next((r for t, r in KNOWN_IGNORED.items() if event.is_type(t)), None)
        decision = _ignore(event, known or "not an event type that means an API was deployed")
    if decision.ignored:
        log.info("event %s ignored: %s", event.id, decision.ignored)
    else:
        log.info(
            "event %s (%s) planned for %s",
            event.id,
            event.type,
            ", ".join(r.api for r in decision.requests),
        )
    return decision
