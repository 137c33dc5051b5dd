"""Webhook handshakes: Event Grid's validation event and the CloudEvents OPTIONS request."""

from __future__ import annotations

from typing import Any

import pytest

from sync.events import (
    MalformedEvent,
    is_cloudevents_abuse_protection,
    normalize_event,
    validation_response,
)


def validation(**data: Any) -> Any:
    return normalize_event(
        {
            "id": "v-1",
            "topic": "/subscriptions/x",
            "subject": "",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": "2018-01-25T22:12:19.4556811Z",
            "data": data,
            "dataVersion": "1",
        }
    )


def test_validation_code_is_echoed() -> None:
    assert validation_response(validation(validationCode="ABC-123")) == {
        "validationResponse": "ABC-123"
    }


def test_other_events_are_not_handshakes() -> None:
    event = normalize_event(
        {"id": "1", "subject": "s", "eventType": "Microsoft.Storage.BlobCreated", "data": {}}
    )
    assert validation_response(event) is None


@pytest.mark.parametrize("code", [None, 5, "", "a b", "<script>", "x" * 200])
def test_bad_validation_code(code: Any) -> None:
    with pytest.raises(MalformedEvent) as caught:
        validation_response(validation(validationCode=code))
    assert caught.value.field == "data.validationCode"


def test_options_handshake_echoes_origin_case_insensitively() -> None:
    headers = {"webhook-request-origin": "eventgrid.azure.net"}
    assert is_cloudevents_abuse_protection("options", headers) == {
        "WebHook-Allowed-Origin": "eventgrid.azure.net",
        "WebHook-Allowed-Rate": "*",
    }
    assert (
        is_cloudevents_abuse_protection("OPTIONS", headers, rate=120)["WebHook-Allowed-Rate"]
        == "120"
    )  # type: ignore[index]


@pytest.mark.parametrize(
    ("method", "headers"),
    [("POST", {"WebHook-Request-Origin": "eventgrid.azure.net"}), ("OPTIONS", {}), ("GET", {})],
)
def test_not_a_handshake(method: str, headers: dict[str, str]) -> None:
    assert is_cloudevents_abuse_protection(method, headers) is None


@pytest.mark.parametrize(
    "origin",
    [
        "eventgrid.azure.net\r\nSet-Cookie: a=b",
        "https://eventgrid.azure.net",
        "a,b",
        "",
        "-bad.example",
        "x" * 300,
    ],
)
def test_bad_origin_is_refused_not_reflected(origin: str) -> None:
    with pytest.raises(MalformedEvent) as caught:
        is_cloudevents_abuse_protection("OPTIONS", {"WebHook-Request-Origin": origin})
    assert caught.value.field == "WebHook-Request-Origin header"


def test_allowed_origins() -> None:
    headers = {"WebHook-Request-Origin": "EventGrid.Azure.Net"}
    assert is_cloudevents_abuse_protection(
        "OPTIONS", headers, allowed_origins=["eventgrid.azure.net"]
    )
    with pytest.raises(MalformedEvent, match="not among the allowed origins"):
        is_cloudevents_abuse_protection(
            "OPTIONS",
            {"WebHook-Request-Origin": "attacker.example"},
            allowed_origins=["eventgrid.azure.net"],
        )


def test_invalid_rate_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="rate"):
        is_cloudevents_abuse_protection("OPTIONS", {"WebHook-Request-Origin": "a.b"}, rate=0)
