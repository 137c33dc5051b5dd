"""Every published sample in ../shared/corpus/events, through both doors the planner has.

The table pins the outcome per file (and per event of a batch); a new sample without a row fails,
so nothing in the corpus goes untested.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

from sync.config import SyncMap
from sync.events import (
    MalformedEvent,
    events_from_body,
    from_host_event,
    normalize_event,
    plan_requests,
    validation_response,
)
from tests.conftest import corpus_dir

APIM = ("apim-myapi", "apim-myapi-mirror")


def plan(*apis: str) -> tuple[str, Any]:
    return ("plan", apis)


def ignored(reason: str) -> tuple[str, Any]:
    return ("ignored", reason)


def malformed(field: str) -> tuple[str, Any]:
    return ("malformed", field)


# file -> expected outcome of each event in it (one entry per event of the body)
EXPECTED: dict[str, list[tuple[str, Any]]] = {
    "ce-apicenter-api-definition-added.json": [plan("apicenter-def")],
    "ce-apicenter-api-definition-updated.json": [plan("apicenter-def")],
    "ce-apim-api-created.json": [plan(*APIM)],
    "ce-apim-api-release-created.json": [plan("apim-release")],
    "ce-apim-api-release-updated.json": [ignored("release's notes changed")],
    "ce-apim-api-updated-docs-variant.json": [plan(*APIM)],  # Type/Time, numeric specversion
    "ce-apim-api-updated.json": [plan(*APIM)],
    "ce-apim-gateway-api-added.json": [ignored("added to a gateway")],  # specVersion casing
    "ce-apim-product-created-docs-variant.json": [ignored("a product is not an API")],
    "ce-resources-resource-write-success.json": [ignored("not an event type that means")],
    "ce-storage-blob-created.json": [plan("blob-spec")],
    "ce-web-app-updated-changed-app-settings.json": [ignored("action 'Stopped'")],
    "ce-web-app-updated-docs.json": [ignored("action 'Stopped'")],
    "ce-web-slot-swap-started.json": [ignored("waits for SlotSwapCompleted")],
    "eg-apicenter-api-definition-added.json": [plan("apicenter-def")],
    "eg-apicenter-api-definition-updated.json": [plan("apicenter-def")],
    "eg-apim-api-updated.json": [plan(*APIM)],
    "eg-apim-product-created.json": [ignored("a product is not an API")],
    "eg-batch-mixed-sdk.json": [
        plan("blob-spec"),
        ignored("a blob was deleted"),
        ignored("a blob was deleted"),
        ignored("not an event type that means"),
    ],
    "eg-resources-resource-delete-success.json": [ignored("not an event type that means")],
    "eg-resources-resource-write-success-sdk.json": [ignored("not an event type that means")],
    "eg-resources-resource-write-success.json": [ignored("not an event type that means")],
    "eg-storage-blob-created-adls-gen2.json": [ignored("'CreateFile' does not complete a blob")],
    "eg-storage-blob-created-sdk.json": [plan("blob-spec")],
    "eg-storage-blob-created.json": [plan("blob-spec")],
    "eg-storage-blob-deleted-extra-property-sdk.json": [ignored("a blob was deleted")],
    "eg-subscription-validation.json": [ignored("subscription validation handshake")],
    "eg-web-app-updated.json": [ignored("action 'Stopped'")],  # dataVersion "1'", metaDataVersion
    "eg-web-slot-swap-started.json": [ignored("waits for SlotSwapCompleted")],
    "eg-web-slot-swap-with-preview-started.json": [ignored("swap with preview started")],
}

# Where the Functions host reads a sample differently: it detects CloudEvents by the exact key
# "specversion", so a "specVersion" sample becomes an EventGridEvent without an event type.
HOST_EXPECTED: dict[str, list[tuple[str, Any]]] = {
    "ce-apim-gateway-api-added.json": [malformed("eventType")],
}


def _corpus() -> Path:
    return corpus_dir("events")


def _check(event_outcome: tuple[str, Any], get_event: Any, sync_map: SyncMap) -> None:
    kind, expected = event_outcome
    if kind == "malformed":
        with pytest.raises(MalformedEvent) as caught:
            get_event()
        assert caught.value.field == expected
        assert expected in str(caught.value)
        return
    event = get_event()
    decision = plan_requests(event, sync_map)
    if kind == "plan":
        assert decision.ignored is None
        assert tuple(r.api for r in decision.requests) == expected
        for request in decision.requests:
            assert request.reason == "event"
            assert request.event_id == event.id
            assert request.event_type == event.type
            assert request.event_time == event.time
            assert request.subject == event.subject
    else:
        assert decision.requests == []
        assert decision.ignored is not None
        assert expected in decision.ignored
        assert event.type in decision.ignored  # the reason names type and topic
        assert repr(event.topic) in decision.ignored


def _raw_events(path: Path) -> list[dict[str, Any]]:
    parsed = json.loads(path.read_bytes())
    return parsed if isinstance(parsed, list) else [parsed]


def test_every_sample_has_a_pinned_outcome() -> None:
    files = sorted(p.name for p in _corpus().glob("*.json"))
    assert files == sorted(EXPECTED)
    for name in files:
        assert len(_raw_events(_corpus() / name)) == len(EXPECTED[name]), name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_via_http_body(name: str, sync_map: SyncMap) -> None:
    """The webhook door: the published bytes as an HTTP delivery body."""
    events = events_from_body((_corpus() / name).read_bytes())
    assert len(events) == len(EXPECTED[name])
    expected_schema = "cloudevents" if name.startswith("ce-") else "eventgrid"
    for event, outcome in zip(events, EXPECTED[name], strict=True):
        assert event.schema == expected_schema
        assert event.time is not None
        assert event.time.endswith("Z")
        _check(outcome, lambda e=event: e, sync_map)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_via_dict(name: str, sync_map: SyncMap) -> None:
    """Each event dict on its own (as a CloudEvents structured-mode body would arrive)."""
    for raw, outcome in zip(_raw_events(_corpus() / name), EXPECTED[name], strict=True):
        _check(outcome, lambda r=raw: normalize_event(r), sync_map)


def _host_decode(raw: dict[str, Any]) -> Any:
    """What the Functions host does with one event of a delivery (azure-functions' own code)."""
    datum = meta.Datum(json.dumps(raw), "json")
    return EventGridEventInConverter.decode(datum, trigger_metadata={})


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_via_functions_host(name: str, sync_map: SyncMap) -> None:
    """The trigger door: azure.functions builds EventGridEvent / CloudEvent, we read those."""
    outcomes = HOST_EXPECTED.get(name, EXPECTED[name])
    for raw, outcome in zip(_raw_events(_corpus() / name), outcomes, strict=True):
        host_event = _host_decode(raw)
        expected_cls = func.CloudEvent if "specversion" in raw else func.EventGridEvent
        assert isinstance(host_event, expected_cls)
        _check(outcome, lambda h=host_event: from_host_event(h), sync_map)


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - set(HOST_EXPECTED)))
def test_both_doors_agree(name: str) -> None:
    body_events = events_from_body((_corpus() / name).read_bytes())
    host_events = [from_host_event(_host_decode(raw)) for raw in _raw_events(_corpus() / name)]
    assert host_events == body_events


def test_quirky_samples_keep_their_meaning() -> None:
    docs_variant = events_from_body(
        (_corpus() / "ce-apim-api-updated-docs-variant.json").read_bytes()
    )[0]
    assert docs_variant.type == "Microsoft.ApiManagement.APIUpdated"  # from "Type"
    assert docs_variant.time == "2021-07-12T23:13:44.904832Z"  # from "Time", 7 digits cut to 6
    gateway = events_from_body((_corpus() / "ce-apim-gateway-api-added.json").read_bytes())[0]
    assert gateway.schema == "cloudevents"  # from "specVersion"
    app = events_from_body((_corpus() / "eg-web-app-updated.json").read_bytes())[0]
    assert app.data["appEventTypeDetail"] == {"action": "Stopped"}  # dataVersion "1'" ignored


def test_subscription_validation_sample_answers_the_handshake() -> None:
    event = events_from_body((_corpus() / "eg-subscription-validation.json").read_bytes())[0]
    assert validation_response(event) == {
        "validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    }


def test_mixed_batch_keeps_duplicate_deliveries_for_the_ledger_to_dedupe() -> None:
    events = events_from_body((_corpus() / "eg-batch-mixed-sdk.json").read_bytes())
    assert [e.id for e in events][1] == [e.id for e in events][2]


def _derived(name: str, **changes: Any) -> dict[str, Any]:
    raw = _raw_events(_corpus() / name)[0]
    data = dict(raw["data"])
    data.update(changes.pop("data", {}))
    raw.update(changes, data=data)
    return raw


@pytest.mark.parametrize(
    ("name", "type_key"),
    [("eg-web-slot-swap-started.json", "eventType"), ("ce-web-slot-swap-started.json", "type")],
)
def test_slot_swap_completed_shares_the_started_shape(
    name: str, type_key: str, sync_map: SyncMap
) -> None:
    """No SlotSwapCompleted sample is published; upstream says it has the Started payload."""
    raw = _derived(name, **{type_key: "Microsoft.Web.SlotSwapCompleted"})
    decision = plan_requests(normalize_event(raw), sync_map)
    # staging -> production swap: the production API and the staging-slot API both changed
    expected = ["web-app", "web-app-staging"] if "<rg>" in raw.get("topic", "") else ["web-app"]
    assert [r.api for r in decision.requests] == expected
    assert decision.debounce_key is None


@pytest.mark.parametrize(
    ("name", "type_key"),
    [("eg-web-app-updated.json", "eventType"), ("ce-web-app-updated-docs.json", "type")],
)
def test_restarted_app_is_planned_and_debounced(
    name: str, type_key: str, sync_map: SyncMap
) -> None:
    raw = _derived(name, data={"appEventTypeDetail": {"action": "Restarted"}})
    decision = plan_requests(normalize_event(raw), sync_map)
    assert [r.api for r in decision.requests] == ["web-app"]
    assert decision.debounce_key == (
        "site:/subscriptions/<id>/resourcegroups/<group>/providers/microsoft.web/sites/<site-name>"
    )
    assert decision.debounce_seconds == 300


def test_adls_file_flushed_with_content_is_planned(sync_map: SyncMap) -> None:
    raw = _derived(
        "eg-storage-blob-created-adls-gen2.json",
        data={"api": "FlushWithClose", "contentLength": 12},
    )
    assert [r.api for r in plan_requests(normalize_event(raw), sync_map).requests] == ["blob-spec"]
