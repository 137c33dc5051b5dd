"""Event Grid deliveries to POST /api/sync (a custom topic pointed at the HTTP route): with
SYNC_EVENTGRID_WEBHOOK_AUTH=entra they must carry Event Grid's Entra token with its app role and
Event Grid's own application id, as Event Grid's Entra-protected webhook delivery sends it; the
validation handshake, which plans nothing, is still answered on the function key alone; "off"
refuses them; only the exact aeg-event-type values Event Grid sends are accepted."""

from __future__ import annotations

import json

import pytest

from sync import settings as names
from sync.auth import EVENT_GRID_APP_IDS, EVENT_GRID_ROLE
from tests.auth.authority import CALLER_APP, CLIENT_ID, TENANT, Authority
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


EVENT_GRID_APP = EVENT_GRID_APP_IDS["public"]
EVENT_GRID_SP = "0e0e0e0e-4444-4000-8000-0000000000e9"  # its service principal in our tenant


def deliver(body: bytes = DELIVERY, *, kind: str = "Notification", token: str | None = None):
    headers = {"aeg-event-type": kind}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return http("sync_api", "POST", URL, body, headers=headers)


def event_grid_token(authority: Authority, **overrides) -> str:
    """What Event Grid sends (v2 shape): its own app id in azp, the Event Grid role."""
    claims = {"roles": [EVENT_GRID_ROLE], "azp": EVENT_GRID_APP, "oid": EVENT_GRID_SP}
    return authority.token(**{**claims, **overrides})


def event_grid_v1_token(authority: Authority, **overrides) -> str:
    """The v1 shape (an app registration's default): appid instead of azp, sts.windows.net issuer."""
    v1 = {
        "iss": f"https://sts.windows.net/{TENANT}/",
        "aud": CLIENT_ID,
        "azp": None,
        "appid": EVENT_GRID_APP,
        "ver": "1.0",
    }
    return event_grid_token(authority, **{**v1, **overrides})


def run_caller(run_id: str) -> str | None:
    status = http("run_status", "GET", f"http://localhost/api/runs/{run_id}", route={"id": run_id})
    assert status.status_code == 200, status.get_body()
    return json.loads(status.get_body())["request"].get("caller")


@pytest.fixture
def entra(secured, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(names.EVENTGRID_WEBHOOK_AUTH, "entra")
    return secured


@pytest.fixture
def off(secured, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(names.EVENTGRID_WEBHOOK_AUTH, "off")
    return secured


@pytest.mark.parametrize("shape", [event_grid_token, event_grid_v1_token], ids=["v2", "v1"])
def test_a_delivery_with_event_grids_token_plans_the_run_and_records_event_grid(
    entra, authority, shape
) -> None:
    resp = deliver(token=shape(authority))
    assert resp.status_code == 200, resp.get_body()
    [run_id] = json.loads(resp.get_body())["runs"]
    label = f"eventgrid-webhook:app:{EVENT_GRID_APP}"
    messages = received(entra.service())
    assert [item.target for item, _ in messages] == ["dev", "prod"]
    assert {item.request.caller for item, _ in messages} == {label}
    assert run_caller(run_id) == label


REFUSED = [
    ("no token", lambda a: None, 401),
    ("another tenant's token", lambda a: event_grid_token(a, tid="other"), 401),
    ("expired", lambda a: event_grid_token(a, exp=1_600_000_000), 401),
    ("wrong audience", lambda a: event_grid_token(a, aud="api://another-webhook"), 401),
    ("wrong issuer", lambda a: event_grid_token(a, iss=f"https://evil.example/{TENANT}/v2.0"), 401),
    ("v1 wrong issuer", lambda a: event_grid_v1_token(a, iss="https://sts.windows.net/x/"), 401),
    ("a sync caller's role only", lambda a: event_grid_token(a, roles=["Connector.Sync"]), 403),
    # the role is also held by whoever creates the subscription: their own token must not pass
    ("the role, another app (v2 azp)", lambda a: event_grid_token(a, azp=CALLER_APP), 403),
    (
        "the role, a user via another app (v1 appid)",
        lambda a: event_grid_v1_token(a, appid=CALLER_APP, idtyp="user", upn="eve@contoso.example"),
        403,
    ),
]


@pytest.mark.parametrize(("case", "token", "status"), REFUSED, ids=[c[0] for c in REFUSED])
def test_a_delivery_without_event_grids_token_plans_nothing(
    entra, authority, case, token, status
) -> None:
    presented = token(authority)
    resp = deliver(token=presented)
    assert resp.status_code == status, resp.get_body()
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    if presented:
        assert presented not in resp.get_body().decode()
        assert presented.split(".")[1] not in resp.headers["WWW-Authenticate"]
    assert received(entra.service()) == []


def test_another_apps_token_is_refused_naming_the_app_id_check(entra, authority) -> None:
    resp = deliver(token=event_grid_token(authority, azp=CALLER_APP))
    assert resp.status_code == 403
    message = json.loads(resp.get_body())["error"]["message"]
    assert "appid/azp" in message
    assert EVENT_GRID_APP in message
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]


def test_event_grids_token_does_not_grant_the_sync_role_on_the_normal_path(
    entra, authority
) -> None:
    body = json.dumps({"api": "contoso-invoicing", "targets": ["dev"]}).encode()
    headers = {"Authorization": f"Bearer {event_grid_token(authority)}"}
    resp = http("sync_api", "POST", URL, body, headers=headers)
    assert resp.status_code == 403, resp.get_body()
    assert "Connector.Sync" in json.loads(resp.get_body())["error"]["message"]
    assert received(entra.service()) == []


ODD_KINDS = [
    "notification",
    "NOTIFICATION",
    "X",
    "Notification ",
    " Notification",
    "",
    "subscriptionvalidation",
]


@pytest.mark.parametrize("mode", ["key", "entra"])
@pytest.mark.parametrize("kind", ODD_KINDS, ids=repr)
def test_only_the_exact_event_grid_header_values_are_accepted(
    secured, authority, monkeypatch, mode, kind
) -> None:
    """A value Event Grid never sends is refused before anything else, whichever token comes
    with it: no header value of the sender's choosing picks a path with weaker checks."""
    monkeypatch.setenv(names.EVENTGRID_WEBHOOK_AUTH, mode)
    for token in (None, event_grid_token(authority), authority.token()):
        resp = deliver(kind=kind, token=token)
        assert resp.status_code == 400, resp.get_body()
        error = json.loads(resp.get_body())["error"]
        assert error["field"] == "aeg-event-type"
        assert "Notification, SubscriptionValidation" in error["message"]
    assert received(secured.service()) == []


@pytest.mark.parametrize("mode", ["key", "entra"])
def test_a_handshake_header_on_real_events_plans_nothing(secured, monkeypatch, mode) -> None:
    monkeypatch.setenv(names.EVENTGRID_WEBHOOK_AUTH, mode)
    resp = deliver(DELIVERY, kind="SubscriptionValidation")
    assert resp.status_code == 400, resp.get_body()
    assert "no subscription validation event" in resp.get_body().decode()
    both = json.dumps(json.loads(HANDSHAKE) + json.loads(DELIVERY)).encode()
    resp = deliver(both, kind="SubscriptionValidation")
    assert resp.status_code == 200, resp.get_body()
    assert "runs" not in json.loads(resp.get_body())
    assert received(secured.service()) == []


def test_the_validation_handshake_needs_no_token(entra) -> None:
    resp = deliver(HANDSHAKE, kind="SubscriptionValidation")
    assert resp.status_code == 200
    assert json.loads(resp.get_body()) == {
        "validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    }


def test_by_default_the_function_key_alone_admits_a_delivery_and_says_so(secured) -> None:
    resp = deliver()
    assert resp.status_code == 200, resp.get_body()
    [run_id] = json.loads(resp.get_body())["runs"]
    messages = received(secured.service())
    assert {item.request.caller for item, _ in messages} == {"eventgrid-webhook:key"}
    assert run_caller(run_id) == "eventgrid-webhook:key"


def test_a_malformed_event_in_a_batch_is_skipped_and_the_others_planned(secured) -> None:
    """Event Grid does not deliver a batch answered 400 again: refusing the whole batch for one
    bad event lost the good ones with it (found by review)."""
    [good] = json.loads(DELIVERY)
    bad = {**good, "id": 5}
    resp = deliver(json.dumps([bad, good]).encode())
    assert resp.status_code == 200, resp.get_body()
    answer = json.loads(resp.get_body())
    assert len(answer["runs"]) == 1
    [why] = answer["skipped"]
    assert "events[0]" in why and "id" in why
    assert len(received(secured.service())) == 2  # the good event's two targets


def test_a_batch_of_only_malformed_events_is_refused(secured) -> None:
    [good] = json.loads(DELIVERY)
    resp = deliver(json.dumps([{**good, "id": 5}]).encode())
    assert resp.status_code == 400, resp.get_body()
    assert received(secured.service()) == []


def test_off_refuses_deliveries_and_the_handshake(off, authority) -> None:
    for body, kind in ((DELIVERY, "Notification"), (HANDSHAKE, "SubscriptionValidation")):
        resp = deliver(body, kind=kind, token=event_grid_token(authority))
        assert resp.status_code == 403, resp.get_body()
        assert f"{names.EVENTGRID_WEBHOOK_AUTH}=off" in resp.get_body().decode()
    assert received(off.service()) == []
    # the CloudEvents handshake too: a subscription must not validate only to be refused
    options = http("sync_api", "OPTIONS", URL, b"", headers={"WebHook-Request-Origin": "e.net"})
    assert options.status_code == 403, options.get_body()
    assert f"{names.EVENTGRID_WEBHOOK_AUTH}=off" in options.get_body().decode()


def test_off_leaves_the_normal_path_alone(off, authority) -> None:
    body = json.dumps({"api": "contoso-invoicing", "targets": ["dev"]}).encode()
    headers = {"Authorization": f"Bearer {authority.token()}"}
    resp = http("sync_api", "POST", URL, body, headers=headers)
    assert resp.status_code == 202, resp.get_body()


@pytest.mark.parametrize("value", ["certificate", "Entra", "KEY", "Off"])
def test_an_unknown_mode_is_a_500_naming_the_setting(secured, monkeypatch, value) -> None:
    """Exact lower case, as Bicep's @allowed: a value the deployment refuses is refused here."""
    monkeypatch.setenv(names.EVENTGRID_WEBHOOK_AUTH, value)
    resp = deliver()
    assert resp.status_code == 500
    text = resp.get_body().decode()
    assert names.EVENTGRID_WEBHOOK_AUTH in text
    assert value in text
    assert received(secured.service()) == []


def test_an_event_repeated_in_one_batch_is_planned_once(secured) -> None:
    """Three copies of one event (same topic and id) in a delivery queued each target three
    times (found by review); the same id from another topic is another event."""
    [event] = json.loads(DELIVERY)
    other = {**event, "topic": event["topic"] + "-other"}
    resp = deliver(json.dumps([event, event, event]).encode())
    assert resp.status_code == 200, resp.get_body()
    assert len(json.loads(resp.get_body())["runs"]) == 1
    assert sorted(item.target for item, _ in received(secured.service())) == ["dev", "prod"]

    resp = deliver(json.dumps([event, other]).encode())
    runs = json.loads(resp.get_body())["runs"]
    assert len(set(runs)) == 2  # the repeat joins its run; the other topic's event is its own
