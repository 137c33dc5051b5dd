"""Reading events: every bad input is a MalformedEvent naming the field, never another error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import azure.functions as func
import pytest

from sync.errors import PermanentError
from sync.events import (
    MAX_BODY_BYTES,
    MAX_EVENTS,
    MalformedEvent,
    cloud_event_dict,
    event_grid_dict,
    events_from_body,
    from_host_event,
    host_event_dict,
    normalize_event,
)


def eg(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "e-1",
        "topic": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Web/sites/app",
        "subject": "/Microsoft.Web/sites/app",
        "eventType": "Microsoft.Web.SlotSwapCompleted",
        "eventTime": "2024-05-01T10:00:00Z",
        "data": {"sourceSlot": "staging", "targetSlot": "production"},
        "dataVersion": "1",
        "metadataVersion": "1",
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


def ce(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "c-1",
        "source": "/pipelines/contoso",
        "type": "ConnectorSync.ApiDeployed",
        "time": "2024-05-01T10:00:00.123Z",
        "data": {"api": "contoso-invoicing"},
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_malformed_event_is_permanent() -> None:
    assert issubclass(MalformedEvent, PermanentError)


def test_event_grid_fields() -> None:
    event = normalize_event(eg())
    assert (event.id, event.type, event.schema) == (
        "e-1",
        "Microsoft.Web.SlotSwapCompleted",
        "eventgrid",
    )
    assert event.topic.endswith("/sites/app")
    assert event.time == "2024-05-01T10:00:00.000000Z"


def test_cloud_event_fields() -> None:
    event = normalize_event(ce(subject=...))
    assert event.schema == "cloudevents"
    assert event.topic == "/pipelines/contoso"
    assert event.subject == ""
    assert event.time == "2024-05-01T10:00:00.123000Z"


def test_a_time_ahead_of_the_clock_counts_as_the_arrival_time() -> None:
    """Events naming a spec are ordered by time; one dated 9999 would make every later one look
    older for good (found by review), so a time over five minutes ahead counts as arrival."""
    before = datetime.now(UTC)
    moment = datetime.fromisoformat(normalize_event(ce(time="9999-01-01T00:00:00Z")).time)
    assert before <= moment <= datetime.now(UTC)
    soon = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    assert normalize_event(ce(time=soon)).time.startswith(soon[:19])  # a little skew is kept


def test_times_are_utc_and_fixed_width() -> None:
    assert normalize_event(eg(eventTime="2024-05-01T12:00:00+02:00")).time == (
        "2024-05-01T10:00:00.000000Z"
    )
    assert (
        normalize_event(eg(eventTime="2024-05-01T10:00:00")).time == "2024-05-01T10:00:00.000000Z"
    )
    assert normalize_event(eg(eventTime=...)).time is None


@pytest.mark.parametrize(
    "raw",
    [
        ce(time="2024-05-01t10:00:00.123z"),
        ce(time="2024-05-01T10:00:00.123z"),
        ce(time="2024-05-01t10:00:00.123Z"),
        eg(eventTime="2024-05-01t10:00:00.123z"),
        eg(eventTime="2024-05-01T10:00:00.123z"),
    ],
)
def test_lower_case_t_and_z_are_read(raw: dict[str, Any]) -> None:
    """RFC 3339, which CloudEvents `time` and Event Grid `eventTime` follow, allows "t" and "z";
    Python 3.11's fromisoformat refuses "z", and the event was dropped as malformed."""
    assert normalize_event(raw).time == "2024-05-01T10:00:00.123000Z"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (eg(id=...), "id"),
        (eg(id=""), "id"),
        (eg(id=7), "id"),
        (eg(id="x" * 600), "id"),
        (eg(id="a\nb"), "id"),
        (eg(eventType=None), "eventType"),
        (eg(eventType=["Microsoft.Web.AppUpdated"]), "eventType"),
        (eg(eventType=""), "eventType"),
        (eg(subject=...), "subject"),
        (eg(subject=5), "subject"),
        (eg(topic={"a": 1}), "topic"),
        (eg(data=[1, 2]), "data"),
        (eg(data="text"), "data"),
        (eg(data=3), "data"),
        (eg(eventTime="yesterday"), "eventTime"),
        (eg(eventTime="2024-05-01"), "eventTime"),
        (eg(eventTime=1714557600), "eventTime"),
        (eg(eventTime="2024-13-01T00:00:00Z"), "eventTime"),
        (eg(eventTime="9999-12-31T23:30:00-01:00"), "eventTime"),  # no UTC form: overflow
        (ce(time="0001-01-01T00:00:00+01:00"), "time"),
        (eg(id="\ud800"), "id"),  # a lone surrogate has no UTF-8 form (the run id hashes it)
        (ce(subject="a\udfffb"), "subject"),
        (ce(id=...), "id"),
        (ce(type=...), "type"),
        (ce(type=1), "type"),
        (ce(source=...), "source"),
        (ce(source=""), "source"),
        (ce(specversion="0.3"), "specversion"),
        (ce(specversion=True), "specversion"),
        (ce(specversion=None), "specversion"),
        (ce(time="soon"), "time"),
        (ce(data=["a"]), "data"),
        (ce(data=..., data_base64="eyJhIjoxfQ=="), "data_base64"),
        (ce(specversion=...), "specversion"),  # has source + type: a CloudEvent without version
        ({"id": "x", "subject": "s", "data": {}}, "eventType"),  # neither schema
        (ce(Type="Other.Type"), "type"),  # two spellings, two values: ambiguous
    ],
)
def test_malformed_event_names_the_field(raw: Any, field: str) -> None:
    with pytest.raises(MalformedEvent) as caught:
        normalize_event(raw)
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


@pytest.mark.parametrize("raw", [None, [], "event", 3, b"{}"])
def test_non_object_event(raw: Any) -> None:
    with pytest.raises(MalformedEvent) as caught:
        normalize_event(raw)
    assert caught.value.field == "event"


def test_same_value_in_two_spellings_is_fine() -> None:
    assert normalize_event(ce(Type="ConnectorSync.ApiDeployed")).type == "ConnectorSync.ApiDeployed"


def test_error_names_the_event_of_a_batch() -> None:
    with pytest.raises(MalformedEvent) as caught:
        events_from_body(body([eg(), eg(id=...)]))
    assert caught.value.where == "events[1]"
    assert str(caught.value) == "events[1]: id: is missing"


def test_bad_value_is_shortened_in_the_message() -> None:
    with pytest.raises(MalformedEvent) as caught:
        normalize_event(eg(eventType=["x" * 500]))
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "is empty"),
        (b"   \n", "is empty"),
        (b"{not json", "is not JSON"),
        (b"\xff\xfe[]", "is not UTF-8"),
        (b'"just a string"', "must be a JSON object or array"),
        (b"42", "must be a JSON object or array"),
        (b"null", "must be a JSON object or array"),
        (b"[]", "empty array"),
        (b'[{"id": "a", "id": "b"}]', "duplicate key"),
        (b'[{"id": NaN}]', "NaN is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'[{"id": ' + b"9" * 5000 + b"}]", "is not usable JSON"),  # past the digit limit
    ],
)
def test_bad_bodies(payload: bytes, message: str) -> None:
    with pytest.raises(MalformedEvent) as caught:
        events_from_body(payload)
    assert caught.value.field == "body"
    assert message in str(caught.value)


def test_oversized_body_is_refused_before_parsing() -> None:
    payload = b"[" + b" " * MAX_BODY_BYTES + b"]"
    with pytest.raises(MalformedEvent, match="limit is"):
        events_from_body(payload)


def test_huge_array_is_refused() -> None:
    payload = b"[" + b",".join([b"{}"] * (MAX_EVENTS + 1)) + b"]"
    assert len(payload) < MAX_BODY_BYTES
    with pytest.raises(MalformedEvent, match="5,001 events"):
        events_from_body(payload)


def test_bom_is_tolerated() -> None:
    assert events_from_body(b"\xef\xbb\xbf" + body([eg()]))[0].id == "e-1"


def test_single_cloud_event_and_cloud_event_batch() -> None:
    assert [e.id for e in events_from_body(body(ce()))] == ["c-1"]
    assert [e.id for e in events_from_body(body([ce(), ce(id="c-2")]))] == ["c-1", "c-2"]


def test_mixed_schemas_in_one_batch_are_refused() -> None:
    with pytest.raises(MalformedEvent, match="mixes") as caught:
        events_from_body(body([eg(), ce()]))
    assert caught.value.where == "events[1]"


def test_non_bytes_body() -> None:
    with pytest.raises(MalformedEvent, match="must be bytes"):
        events_from_body("[]")  # type: ignore[arg-type]


# --- the Functions host's objects, built with azure.functions itself ------------------------


def test_real_event_grid_event_object() -> None:
    host = func.EventGridEvent(
        id="e-9",
        data={"api": "PutBlob", "contentLength": 5},
        topic="/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/a",
        subject="/blobServices/default/containers/c/blobs/spec.json",
        event_type="Microsoft.Storage.BlobCreated",
        event_time=datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        data_version="1",
    )
    event = from_host_event(host)
    assert event.schema == "eventgrid"
    assert event.time == "2024-05-01T10:00:00.000000Z"
    assert event.data == {"api": "PutBlob", "contentLength": 5}
    assert host_event_dict(host)["eventType"] == "Microsoft.Storage.BlobCreated"


def test_real_cloud_event_object_with_extensions() -> None:
    host = func.CloudEvent(
        id="c-9",
        source="/pipelines/contoso",
        type="ConnectorSync.ApiDeployed",
        specversion="1.0",
        data={"api": "contoso-invoicing", "commit": "abc123"},
        time=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        subject="deploy/42",
        datacontenttype="application/json",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    event = from_host_event(host)
    assert (event.schema, event.subject, event.topic) == (
        "cloudevents",
        "deploy/42",
        "/pipelines/contoso",
    )
    assert event.data["commit"] == "abc123"


def test_host_event_without_id_is_malformed() -> None:
    host = func.EventGridEvent(
        id=None,  # type: ignore[arg-type]
        data={},
        topic="t",
        subject="s",
        event_type="X",
        event_time=None,
        data_version="1",
    )
    with pytest.raises(MalformedEvent, match="id: is missing"):
        from_host_event(host)


def test_host_event_of_unknown_kind() -> None:
    with pytest.raises(MalformedEvent) as caught:
        host_event_dict(object())
    assert caught.value.field == "event"


def test_dict_helpers_produce_the_schema_shapes() -> None:
    assert (
        normalize_event(
            event_grid_dict(
                id="1",
                topic="t",
                subject="s",
                event_type="X.Y",
                event_time=None,
                data=None,
                data_version="",
            )
        ).data
        == {}
    )
    assert (
        normalize_event(
            cloud_event_dict(
                id="1",
                source="src",
                type=None,
                specversion=1.0,
                time=None,
                subject=None,
                data={},
                extension_attrs={"Type": "X.Y", "Time": "2024-01-01T00:00:00Z"},
            )
        ).type
        == "X.Y"
    )
