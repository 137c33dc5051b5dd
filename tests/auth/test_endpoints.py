"""Access control through the Functions surface (real ``func.HttpRequest``s, Azurite, a local
authority): who may enqueue a sync, and that a refused request leaves nothing behind."""

from __future__ import annotations

import base64
import json

import azure.functions as func
import pytest

from sync import settings as names
from tests.auth.authority import CALLER_APP, CALLER_OID, OTHER_TENANT, TENANT
from tests.pipeline.test_function_app import call, http, received

pytestmark = [pytest.mark.reliability, pytest.mark.azurite]
URL = "http://localhost/api/sync"
BODY = json.dumps({"api": "contoso-invoicing", "targets": ["dev"]}).encode()


def post(body: bytes = BODY, headers: dict | None = None, params: dict | None = None):
    return http("sync_api", "POST", URL, body, headers=headers, params=params)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_with_the_role_enqueues_and_the_caller_reaches_run_version_and_card(
    secured, authority
):
    secured.serve("openapi-v1.yaml")
    resp = post(headers=bearer(authority.token()))
    assert resp.status_code == 202, resp.get_body()
    run_id = json.loads(resp.get_body())["runId"]
    label = f"oid:{CALLER_OID}"

    status = http("run_status", "GET", f"http://localhost/api/runs/{run_id}", route={"id": run_id})
    assert json.loads(status.get_body())["request"]["caller"] == label

    svc = secured.service()
    messages = received(svc)
    assert [item.request.caller for item, _ in messages] == [label]
    for item, handle in messages:
        call("work_item", func.QueueMessage(id="m", body=json.dumps(item.to_dict()).encode()))
        svc.ports.queue.delete(handle)
    [record] = svc.ports.ledger.versions("contoso-invoicing", "dev")
    assert record.caller == label
    versions = http(
        "api_versions",
        "GET",
        "http://localhost/x",
        route={"api": "contoso-invoicing"},
        params={"target": "dev"},
    )  # reads need no token
    assert versions.status_code == 200
    assert json.loads(versions.get_body())["versions"][0]["caller"] == label
    [card] = secured.cards()
    assert label in json.dumps(card)


def test_an_app_token_without_oid_is_recorded_by_app_id(secured, authority):
    resp = post(headers=bearer(authority.token(oid=None)))
    assert resp.status_code == 202
    [(item, _)] = received(secured.service())
    assert item.request.caller == f"app:{CALLER_APP}"


REFUSED = [
    ("no header", lambda a: {}, 401),
    ("basic", lambda a: {"Authorization": "Basic dXNlcjpwYXNz"}, 401),
    ("bearer alone", lambda a: {"Authorization": "Bearer"}, 401),
    ("garbage", lambda a: {"Authorization": "Bearer %%%garbage%%%"}, 401),
    ("wrong audience", lambda a: bearer(a.token(aud="api://other")), 401),
    ("wrong issuer", lambda a: bearer(a.token(iss=f"https://evil.example/{TENANT}/v2.0")), 401),
    (
        "other tenant",
        lambda a: bearer(a.token(tid=OTHER_TENANT, iss=f"https://sts.windows.net/{OTHER_TENANT}/")),
        401,
    ),
    ("expired", lambda a: bearer(a.token(exp=1_600_000_000, iat=1_599_990_000)), 401),
    ("not yet valid", lambda a: bearer(a.token(nbf=4_000_000_000)), 401),
    ("other key", lambda a: bearer(a.token(signer="intruder")), 401),
    ("unknown kid", lambda a: bearer(a.token(kid="key-z")), 401),
    ("missing role", lambda a: bearer(a.token(roles=["Connector.Read"])), 403),
]


@pytest.mark.parametrize(("case", "headers", "status"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_callers_get_401_or_403_and_nothing_is_enqueued(
    secured, authority, case, headers, status
):
    resp = post(headers=headers(authority))
    assert resp.status_code == status, resp.get_body()
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    error = json.loads(resp.get_body())["error"]
    assert error["code"] == ("Forbidden" if status == 403 else "Unauthorized")
    assert received(secured.service()) == []
    assert not secured.folder("dev").exists()


def test_alg_none_and_hs256_are_refused_through_the_app(secured, authority):
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = b64(json.dumps(authority.claims()).encode())
    for alg in ("none", "HS256"):
        head = b64(json.dumps({"alg": alg, "kid": "key-a"}).encode())
        resp = post(headers=bearer(f"{head}.{claims}.{b64(b'sig')}"))
        assert resp.status_code == 401
        assert "RS256 only" in json.loads(resp.get_body())["error"]["message"]
    assert received(secured.service()) == []


def test_a_token_in_the_query_string_is_ignored(secured, authority):
    token = authority.token()
    resp = post(params={"access_token": token, "code": token, "token": token})
    assert resp.status_code == 401
    assert "error=" not in resp.headers["WWW-Authenticate"]  # as if no credentials were sent
    assert received(secured.service()) == []


def test_a_bad_body_without_a_token_learns_nothing_about_the_map(secured):
    resp = post(b'{"api": "no-such-api"}')
    assert resp.status_code == 401  # not 404: the token check comes first


def test_an_unreachable_jwks_endpoint_is_503_not_401(secured, authority):
    authority.jwks_down = True
    resp = post(headers=bearer(authority.token()))
    assert resp.status_code == 503, resp.get_body()
    assert resp.headers["Retry-After"]
    assert received(secured.service()) == []


def test_a_dry_run_needs_no_token(secured):
    secured.serve("openapi-v1.yaml")
    body = json.dumps({"api": "contoso-invoicing", "dryRun": True}).encode()
    resp = post(body)
    assert resp.status_code == 200, resp.get_body()
    assert {t["result"] for t in json.loads(resp.get_body())["targets"]} == {"dry-run"}
    assert received(secured.service()) == []
    assert not secured.folder("dev").exists()


@pytest.mark.parametrize("missing", [names.AUTH_TENANT_ID, names.AUTH_AUDIENCE])
def test_unconfigured_auth_answers_500_naming_the_setting(secured, authority, monkeypatch, missing):
    monkeypatch.delenv(missing)
    resp = post(headers=bearer(authority.token()))
    assert resp.status_code == 500
    error = json.loads(resp.get_body())["error"]
    assert error["code"] == "ConfigError"
    assert error["path"] == missing
    assert missing in error["message"]
    assert received(secured.service()) == []


def test_the_local_switch_admits_unauthenticated_writes_and_labels_them(secured, monkeypatch):
    monkeypatch.setenv(names.AUTH_DISABLED, "1")
    resp = post()
    assert resp.status_code == 202
    [(item, _)] = received(secured.service())
    assert item.request.caller == "local:auth-disabled"
