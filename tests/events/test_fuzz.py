"""Whatever bytes arrive, events_from_body returns events or raises MalformedEvent, and
plan_requests answers every event it returns with requests or a reason, never an exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.config import SyncMap
from sync.events import MalformedEvent, events_from_body, plan_requests

pytestmark = pytest.mark.reliability

_KEYS = st.sampled_from(
    [
        "id",
        "topic",
        "subject",
        "eventType",
        "eventTime",
        "data",
        "specversion",
        "source",
        "type",
        "time",
        "Type",
        "specVersion",
        "data_base64",
        "dataVersion",
        "x",
    ]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_KEYS | st.text(max_size=5), inner, max_size=6)
    ),
    max_leaves=20,
)
_EVENTISH = st.dictionaries(_KEYS, _JSON, max_size=10)
_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _run(payload: bytes, sync_map: SyncMap) -> None:
    try:
        events = events_from_body(payload)
    except MalformedEvent:
        return
    for event in events:
        decision = plan_requests(event, sync_map)  # never raises for event content
        assert bool(decision.requests) != bool(decision.ignored)


@_SETTINGS
@given(payload=st.binary(max_size=300))
def test_random_bytes(payload: bytes, sync_map: SyncMap) -> None:
    _run(payload, sync_map)


@_SETTINGS
@given(value=_JSON | st.lists(_EVENTISH, max_size=4) | _EVENTISH)
def test_random_json(value: Any, sync_map: SyncMap) -> None:
    _run(json.dumps(value).encode(), sync_map)


_TYPES = st.sampled_from(
    [
        "ConnectorSync.ApiDeployed",
        "Microsoft.Web.AppUpdated",
        "Microsoft.Web.SlotSwapCompleted",
        "Microsoft.ApiManagement.APIUpdated",
        "Microsoft.ApiManagement.APIReleaseCreated",
        "Microsoft.ApiCenter.ApiDefinitionAdded",
        "Microsoft.Storage.BlobCreated",
        "Microsoft.EventGrid.SubscriptionValidationEvent",
    ]
)
_DATA_KEYS = st.sampled_from(
    [
        "api",
        "specUrl",
        "version",
        "commit",
        "deploymentId",
        "appEventTypeDetail",
        "sourceSlot",
        "targetSlot",
        "contentLength",
        "validationCode",
    ]
)


@_SETTINGS
@given(
    event_type=_TYPES,
    topic=st.text(max_size=40)
    | st.sampled_from(
        [
            "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Web/sites/<site-name>",
            "/subscriptions/{subscription-id}/resourceGroups/{your-rg}/providers/Microsoft.ApiManagement/service/{your-APIM-instance}",
        ]
    ),
    subject=st.text(max_size=40)
    | st.sampled_from(["/apis/myapi;rev=2", "/Microsoft.Web/sites/x/slots/y"]),
    data=st.dictionaries(_DATA_KEYS, _JSON, max_size=6),
    cloud=st.booleans(),
)
def test_near_valid_events(
    event_type: str, topic: str, subject: str, data: dict[str, Any], cloud: bool, sync_map: SyncMap
) -> None:
    """Valid envelopes with hostile contents reach the matchers and their data checks."""
    if cloud:
        raw = {
            "specversion": "1.0",
            "id": "f",
            "source": topic or "s",
            "type": event_type,
            "subject": subject,
            "data": data,
        }
    else:
        raw = {"id": "f", "topic": topic, "subject": subject, "eventType": event_type, "data": data}
    _run(json.dumps([raw]).encode(), sync_map)
