"""Hostile input: specs built to hurt the parser or reach elsewhere, fuzzed HTTP bodies on
POST /api/sync through the real Functions objects, events from sources the map does not name,
and the two webhook handshakes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync import settings as names
from sync.triggers import plan
from sync.worker_loop import drain
from tests.pipeline.test_function_app import functions
from tests.reliability.conftest import Fleet, event, version_shas
from tests.support.spec_server import SpecServer

pytestmark = [pytest.mark.reliability, pytest.mark.azurite]


@pytest.fixture
def canary() -> Iterator[SpecServer]:
    """Another address a hostile spec tries to make us fetch; it must see no request at all."""
    with SpecServer() as server:
        server.set_spec("/secret.json", b'{"type": "string"}')
        yield server


def _bomb() -> bytes:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    lines.append("swagger: '2.0'")
    return ("\n".join(lines) + "\n").encode()


def _nested(depth: int) -> bytes:
    inner = b'{"swagger":"2.0","info":{"title":"x","version":"1"},"paths":{},"x-deep":'
    return inner + b"[" * depth + b"]" * depth + b"}"


def _doc(extra_schema: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "swagger": "2.0",
            "info": {"title": "Hostile", "version": "1"},
            "host": "h.example",
            "paths": {
                "/x": {
                    "get": {
                        "operationId": "X",
                        "responses": {"200": {"description": "ok", "schema": extra_schema}},
                    }
                }
            },
            "definitions": {
                "A": {"type": "object", "properties": {"b": {"$ref": "#/definitions/B"}}},
                "B": {"type": "object", "properties": {"a": {"$ref": "#/definitions/A"}}},
            },
        }
    ).encode()


HOSTILE = {
    "yaml-bomb": (_bomb, "application/yaml", ("YAML aliases",)),
    "deep-json": (lambda: _nested(100_000), "application/json", ("nested deeper than",)),
    "invalid-utf8": (
        lambda: b'{"swagger":"2.0","info":{"title":"\xff\xfe\xc3","version":"1"}}',
        "application/json",
        ("not valid UTF-8",),
    ),
}


def _fail_names(fleet: Fleet, body: bytes, content_type: str) -> list[Any]:
    api = fleet.apis[0]
    fleet.server.set_spec(fleet.live_path(api), body, content_type)
    svc = fleet.service()
    plan(event(api), svc)
    outcomes = drain(svc, wait_seconds=0.3)
    assert {o.target for o in outcomes} == {"a", "b"}
    for target in ("a", "b"):
        assert not fleet.folder(api, target).exists()
        assert version_shas(svc, api, target) == []
    return outcomes


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_spec_fails_naming_the_problem_and_writes_nothing(fleet: Fleet, kind: str):
    make, content_type, words = HOSTILE[kind]
    outcomes = _fail_names(fleet, make(), content_type)
    for outcome in outcomes:
        assert outcome.result == "failed", outcome
        assert any(w in outcome.message for w in words), outcome.message
        assert "Traceback" not in outcome.message
    assert {r.route for r in fleet.server.requests} == {fleet.live_path(fleet.apis[0])}


def test_external_refs_are_refused_and_never_fetched(fleet: Fleet, canary: SpecServer):
    body = _doc({"$ref": canary.url("/secret.json")})
    outcomes = _fail_names(fleet, body, "application/json")
    for outcome in outcomes:
        assert outcome.result == "failed"
        assert "$ref" in outcome.message and canary.url("/secret.json") in outcome.message
    assert canary.count() == 0  # zero requests to any other address
    assert {r.route for r in fleet.server.requests} == {fleet.live_path(fleet.apis[0])}


def test_a_ref_cycle_does_not_hang_or_crash(fleet: Fleet, canary: SpecServer):
    body = _doc({"$ref": "#/definitions/A"})
    api = fleet.apis[0]
    fleet.server.set_spec(fleet.live_path(api), body)
    svc = fleet.service()
    plan(event(api), svc)
    outcomes = drain(svc, wait_seconds=0.3)
    # a cycle through object properties is legal Swagger (a recursive type): applied, no hang
    assert {o.result for o in outcomes} == {"updated"}, outcomes
    written = fleet.connector(api, "a")
    assert written["definitions"]["A"]["properties"]["b"] == {"$ref": "#/definitions/B"}
    assert canary.count() == 0


def test_oversized_spec_is_cut_off_at_the_cap(azurite: Any, tmp_path):
    from tests.reliability.conftest import make_fleet

    fleet = make_fleet(azurite, tmp_path, 1, fetch_max_bytes=200_000)
    try:
        api = fleet.apis[0]
        fleet.server.oversized(fleet.live_path(api), 2_000_000, declare_length=False)
        svc = fleet.service()
        plan(event(api), svc)
        outcomes = drain(svc, wait_seconds=0.3)
        assert {o.result for o in outcomes} == {"failed"}, outcomes
        for outcome in outcomes:
            assert "200,000" in outcome.message or "200000" in outcome.message, outcome.message
        assert not fleet.folder(api, "a").exists()
    finally:
        fleet.server.stop()


# --- events the map does not name ---------------------------------------------------------------

ARM = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers"
FOREIGN = [
    event("not-in-the-map"),
    {
        "id": "e1",
        "topic": f"{ARM}/Microsoft.Web/sites/someone-else",
        "subject": "",
        "eventType": "Microsoft.Web.AppUpdated",
        "eventTime": "2026-11-28T10:00:00Z",
        "data": {"appEventTypeDetail": {"action": "Restarted"}},
        "dataVersion": "1",
    },
    {
        "id": "e2",
        "topic": f"{ARM}/Microsoft.Storage/storageAccounts/strangers",
        "subject": "/blobServices/default/containers/specs/blobs/api-00/openapi.json",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2026-11-28T10:00:00Z",
        "data": {"api": "PutBlob", "url": "https://strangers.blob.core.windows.net/specs/x.json"},
        "dataVersion": "1",
    },
    {
        "id": "e3",
        "topic": f"{ARM}/Microsoft.ApiManagement/service/other-apim",
        "subject": "/apis/api-00;rev=1",
        "eventType": "Microsoft.ApiManagement.APIUpdated",
        "eventTime": "2026-11-28T10:00:00Z",
        "data": {"resourceUri": f"{ARM}/Microsoft.ApiManagement/service/other-apim/apis/api-00"},
        "dataVersion": "1",
    },
    {
        "id": "e4",
        "topic": "/somewhere",
        "subject": "x",
        "eventType": "Contoso.Unknown",
        "eventTime": "2026-11-28T10:00:00Z",
        "data": {},
        "dataVersion": "1",
    },
]


@pytest.mark.parametrize("foreign", FOREIGN, ids=lambda e: e.get("type") or e.get("eventType"))
def test_events_from_sources_absent_from_the_map_plan_nothing(fleet: Fleet, foreign):
    svc = fleet.service()
    assert plan(foreign, svc) == []
    assert svc.ports.queue.receive(max_messages=32, visibility_timeout=1) == []


# --- POST /api/sync through the real Functions objects ---------------------------------------------


@pytest.fixture
def app_env(fleet: Fleet, monkeypatch) -> Fleet:
    s = fleet.settings
    monkeypatch.setenv(names.SYNC_CONFIG, s.config_path)
    monkeypatch.setenv(names.STORAGE_CONNECTION_STRING, s.storage_connection_string)
    monkeypatch.setenv(names.LEDGER_TABLE, s.ledger_table)
    monkeypatch.setenv(names.LEDGER_CONTAINER, s.ledger_container)
    monkeypatch.setenv(names.WORK_QUEUE, s.work_queue)
    monkeypatch.setenv(names.ALLOW_PRIVATE_HOSTS, "127.0.0.1")
    monkeypatch.setenv(names.AUTH_DISABLED, "1")  # auth is tested in tests/auth
    monkeypatch.setenv(names.FETCH_BUDGET_SECONDS, "1")
    for api in fleet.apis:
        fleet.publish(api, 1)  # dry runs fetch for real
    fleet.queue = fleet.service().ports.queue  # type: ignore[attr-defined]
    return fleet


def post(body: bytes, method: str = "POST", headers: dict[str, str] | None = None):
    req = func.HttpRequest(
        method=method,
        url="http://localhost/api/sync",
        body=body,
        route_params={},
        params={},
        headers=headers or {},
    )
    return functions()["sync_api"].get_user_function()(req)


def _queued(fleet: Fleet) -> int:
    queue = fleet.queue  # type: ignore[attr-defined]
    taken = queue.receive(max_messages=32, visibility_timeout=30)
    for _, handle in taken:
        queue.delete(handle)
    return len(taken)


_BODIES = st.one_of(
    st.binary(max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["api", "targets", "dryRun", "specUrl", "version", "x", "reason"])
                | st.text(max_size=8),
                inner,
                max_size=6,
            )
        ),
        max_leaves=15,
    ).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"api": st.sampled_from(["api-00", "api-01", "nope", "", "API-00"])},
        optional={
            "targets": st.lists(st.sampled_from(["a", "b", "c", ""]), max_size=3),
            "dryRun": st.sampled_from([True, False, "yes", 1]),
            "specUrl": st.sampled_from(["http://127.0.0.1:1/x", "file:///etc/passwd", 3]),
            "extra": st.text(max_size=5),
        },
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_BODIES)
def test_fuzzed_bodies_never_500_never_leak_a_traceback_and_enqueue_only_when_accepted(
    app_env: Fleet, body: bytes
):
    resp = post(body, headers={"content-type": "application/json"})
    text = resp.get_body().decode()
    assert resp.status_code != 500, text
    assert "Traceback" not in text and 'File "' not in text
    answer = json.loads(text) if text else {}
    queued = _queued(app_env)
    if resp.status_code >= 400:
        assert queued == 0, (resp.status_code, text)
        assert isinstance(answer, dict) and answer.get("error"), text
    else:
        assert resp.status_code in (200, 202), text


def test_subscription_validation_handshake_is_answered(app_env: Fleet):
    body = json.dumps(
        [
            {
                "id": "v1",
                "topic": "/t",
                "subject": "",
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "eventTime": "2026-11-28T10:00:00Z",
                "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
                "dataVersion": "2",
            }
        ]
    ).encode()
    resp = post(body, headers={"aeg-event-type": "SubscriptionValidation"})
    assert resp.status_code == 200
    assert json.loads(resp.get_body()) == {
        "validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    }
    assert _queued(app_env) == 0


def test_cloudevents_abuse_protection_options_is_answered(app_env: Fleet):
    resp = post(b"", "OPTIONS", {"webhook-request-origin": "eventgrid.azure.net"})
    assert resp.status_code == 200
    assert resp.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"


@pytest.mark.parametrize(
    ("method", "headers", "body"),
    [
        ("OPTIONS", {}, b""),  # OPTIONS that is not the handshake
        ("OPTIONS", {"webhook-request-origin": "evil.example\r\nSet-Cookie: x=1"}, b""),
        ("OPTIONS", {"webhook-request-origin": "https://a.example/path"}, b""),
        ("POST", {"aeg-event-type": "SubscriptionValidation"}, b"[]"),
        ("POST", {"aeg-event-type": "SubscriptionValidation"}, b"not json"),
        (
            "POST",
            {"aeg-event-type": "SubscriptionValidation"},
            json.dumps(
                [
                    {
                        "id": "v",
                        "topic": "/t",
                        "subject": "",
                        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                        "eventTime": "2026-11-28T10:00:00Z",
                        "data": {"validationCode": "<script>"},
                        "dataVersion": "2",
                    }
                ]
            ).encode(),
        ),
    ],
)
def test_malformed_handshakes_get_400(app_env: Fleet, method, headers, body):
    resp = post(body, method, headers)
    assert resp.status_code == 400, resp.get_body()
    assert "WebHook-Allowed-Origin" not in resp.headers
    assert b"Set-Cookie" not in resp.get_body()
    assert _queued(app_env) == 0


def test_the_fuzz_oracle_sees_an_accepted_body_enqueue_and_a_refused_one_not(app_env: Fleet):
    """The fuzz test's two branches, pinned: without this a route that refused everything (or
    enqueued nothing) would pass it."""
    accepted = post(b'{"api": "api-00"}', headers={"content-type": "application/json"})
    assert accepted.status_code == 202, accepted.get_body()
    assert _queued(app_env) == 2
    refused = post(b'{"api": "api-00", "targets": ["zz"]}')
    assert refused.status_code in (400, 404) and _queued(app_env) == 0
