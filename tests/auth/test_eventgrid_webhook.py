"""Event Grid deliveries to POST /api/sync (a custom topic pointed at the HTTP route): with
SYNC_EVENTGRID_WEBHOOK_AUTH=entra they must carry Event Grid's Entra token with its app role, as
Event Grid's Entra-protected webhook delivery sends it; the validation handshake, which plans
nothing, is still answered on the function key alone."""

from __future__ import annotations

import json

import pytest

from sync import settings as names
from sync.auth import EVENT_GRID_ROLE
from tests.pipeline.test_function_app import http, received

pytestmark = [pytest.mark.reliability, pytest.mark.azurite]
URL = "http://localhost/api/sync"
DELIVERY = json.dumps(
    [
        {
            "id": "evt-eg-1",
            "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.EventGrid/topics/ci",
            "subject": "contoso-invoicing",
            "eventType": "ConnectorSync.ApiDeployed",
            "eventTime": "2026-12-05T09:00:00Z",
            "data": {"api": "contoso-invoicing"},
            "dataVersion": "1",
        }
    ]
).encode()
HANDSHAKE = json.dumps(
    [
        {
            "id": "v1",
            "topic": "/t",
            "subject": "",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": "2026-12-05T09:00:00Z",
            "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
            "dataVersion": "2",
        }
    ]
).encode()


def deliver(body: bytes = DELIVERY, *, kind: str = "Notification", token: str | None = None):
    headers = {"aeg-event-type": kind}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return http("sync_api", "POST", URL, body, headers=headers)


@pytest.fixture
def entra(secured, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(names.EVENTGRID_WEBHOOK_AUTH, "entra")
    return secured


def test_a_delivery_with_event_grids_token_plans_the_run(entra, authority) -> None:
    resp = deliver(token=authority.token(roles=[EVENT_GRID_ROLE]))
    assert resp.status_code == 200, resp.get_body()
    assert len(json.loads(resp.get_body())["runs"]) == 1
    assert [item.target for item, _ in received(entra.service())] == ["dev", "prod"]


REFUSED = [
    ("no token", lambda a: None, 401),
    ("another tenant's token", lambda a: a.token(roles=[EVENT_GRID_ROLE], tid="other"), 401),
    ("expired", lambda a: a.token(roles=[EVENT_GRID_ROLE], exp=1_600_000_000), 401),
    ("a sync caller's role only", lambda a: a.token(), 403),
]


@pytest.mark.parametrize(("case", "token", "status"), REFUSED, ids=[c[0] for c in REFUSED])
def test_a_delivery_without_event_grids_token_plans_nothing(
    entra, authority, case, token, status
) -> None:
    resp = deliver(token=token(authority))
    assert resp.status_code == status, resp.get_body()
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    assert received(entra.service()) == []


def test_the_validation_handshake_needs_no_token(entra) -> None:
    resp = deliver(HANDSHAKE, kind="SubscriptionValidation")
    assert resp.status_code == 200
    assert json.loads(resp.get_body()) == {
        "validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    }


def test_by_default_the_function_key_alone_admits_a_delivery(secured) -> None:
    resp = deliver()
    assert resp.status_code == 200, resp.get_body()
    assert len(json.loads(resp.get_body())["runs"]) == 1


def test_an_unknown_mode_is_a_500_naming_the_setting(secured, monkeypatch) -> None:
    monkeypatch.setenv(names.EVENTGRID_WEBHOOK_AUTH, "certificate")
    resp = deliver()
    assert resp.status_code == 500
    assert names.EVENTGRID_WEBHOOK_AUTH in resp.get_body().decode()
