"""``sync.auth.authenticate`` against a local authority: every way a token can be wrong."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from sync import auth
from sync.clouds import CLOUDS
from sync.errors import ConfigError, TransientError
from sync.settings import AUTH_AUDIENCE, AUTH_DISABLED, AUTH_TENANT_ID, Settings
from tests.auth.authority import (
    CALLER_APP,
    CALLER_OID,
    CLIENT_ID,
    OTHER_TENANT,
    TENANT,
    Authority,
    rsa_key,
)

pytestmark = pytest.mark.reliability
PUBLIC = CLOUDS["public"]
NOW = int(time.time())


def check(token: str | None, settings: Settings, keys: auth.SigningKeys | None = None, **headers):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return auth.authenticate(headers, settings, cloud=PUBLIC, keys=keys or auth.SigningKeys())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict, claims: dict, signature: bytes = b"") -> str:
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(signature)


def test_a_valid_v2_app_token_names_its_caller(authority, settings):
    caller = check(authority.token(), settings)
    assert caller.oid == CALLER_OID
    assert caller.appid == CALLER_APP
    assert "Connector.Sync" in caller.roles
    assert caller.label == f"oid:{CALLER_OID}"


def test_a_v1_token_for_the_client_id_is_accepted(authority, settings):
    token = authority.token(
        iss=f"https://sts.windows.net/{TENANT}/",
        aud=CLIENT_ID,
        azp=None,
        appid=CALLER_APP,
        ver="1.0",
    )
    assert check(token, settings).appid == CALLER_APP


def test_a_token_without_oid_is_labelled_by_its_app_id(authority, settings):
    assert check(authority.token(oid=None), settings).label == f"app:{CALLER_APP}"


def test_small_clock_skew_is_tolerated(authority, settings):
    token = authority.token(exp=NOW - 30, nbf=NOW + 30)
    assert check(token, settings).oid == CALLER_OID


def test_the_scheme_is_case_insensitive(authority, settings):
    caller = auth.authenticate(
        {"authorization": "bearer " + authority.token()}, settings, cloud=PUBLIC
    )
    assert caller.oid == CALLER_OID


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"aud": "api://someone-else"}, "audience"),
        ({"aud": ["api://someone-else", "api://another"]}, "audience"),
        ({"iss": f"https://evil.example/{TENANT}/v2.0"}, "issuer"),
        ({"iss": f"https://sts.windows.net/{OTHER_TENANT}/"}, "issuer"),
        ({"iss": f"https://login.microsoftonline.com/{TENANT}/v2.0/"}, "issuer"),
        ({"tid": OTHER_TENANT, "iss": f"https://sts.windows.net/{OTHER_TENANT}/"}, "another"),
        ({"tid": OTHER_TENANT}, "another tenant"),
        ({"exp": NOW - 3600, "iat": NOW - 7200, "nbf": NOW - 7200}, "expired"),
        ({"nbf": NOW + 3600}, "not valid yet"),
        ({"exp": None}, "'exp'"),
        ({"nbf": None}, "'nbf'"),
        ({"tid": None}, "'tid'"),
        ({"azp": None}, "not an access token"),  # an ID token for our client id
        ({"exp": "tomorrow"}, "invalid"),
    ],
)
def test_bad_claims_are_401_invalid_token(authority, settings, overrides, needle):
    with pytest.raises(auth.Unauthorized) as caught:
        check(authority.token(**overrides), settings)
    assert needle in caught.value.message
    assert caught.value.status == 401
    assert 'error="invalid_token"' in caught.value.www_authenticate


@pytest.mark.parametrize("roles", [["Connector.Read"], [], "Connector.Sync", None, [["x"]]])
def test_a_valid_token_without_the_role_is_403(authority, settings, roles):
    with pytest.raises(auth.Forbidden) as caught:
        check(authority.token(roles=roles), settings)
    assert caught.value.status == 403
    assert 'error="insufficient_scope"' in caught.value.www_authenticate
    assert "Connector.Sync" in caught.value.message


EVENT_GRID = auth.EVENT_GRID_APP_IDS["public"]


def event_grid_check(token: str, settings: Settings) -> auth.Caller:
    headers = {"Authorization": f"Bearer {token}"}
    return auth.authenticate(
        headers,
        settings,
        cloud=PUBLIC,
        keys=auth.SigningKeys(),
        role=auth.EVENT_GRID_ROLE,
        expected_appid=auth.event_grid_app_id(PUBLIC),
    )


def test_expected_appid_accepts_event_grids_v2_azp_and_v1_appid(authority, settings):
    v2 = authority.token(roles=[auth.EVENT_GRID_ROLE], azp=EVENT_GRID)
    assert event_grid_check(v2, settings).appid == EVENT_GRID
    v1 = authority.token(
        roles=[auth.EVENT_GRID_ROLE],
        iss=f"https://sts.windows.net/{TENANT}/",
        aud=CLIENT_ID,
        azp=None,
        appid=EVENT_GRID.upper(),  # a GUID is the same id in either case
        ver="1.0",
    )
    assert event_grid_check(v1, settings).appid == EVENT_GRID.upper()


@pytest.mark.parametrize(
    "overrides",
    [
        {"azp": CALLER_APP},  # another app that holds the role (the subscription's creator)
        {"azp": None, "appid": CALLER_APP, "ver": "1.0", "idtyp": "user"},  # a user, v1
        {"azp": CALLER_APP, "appid": EVENT_GRID},  # both claims: both must be Event Grid's
        {"azp": EVENT_GRID, "appid": CALLER_APP},
    ],
    ids=["v2 other app", "v1 user via other app", "azp differs", "appid differs"],
)
def test_expected_appid_refuses_the_role_from_another_application(authority, settings, overrides):
    token = authority.token(roles=[auth.EVENT_GRID_ROLE], **overrides)
    with pytest.raises(auth.Forbidden) as caught:
        event_grid_check(token, settings)
    assert caught.value.status == 403
    assert "appid/azp" in caught.value.message
    assert EVENT_GRID in caught.value.message
    assert token not in caught.value.www_authenticate
    assert CALLER_APP not in caught.value.message  # names what is expected, not what came


def test_expected_appid_does_not_replace_the_role(authority, settings):
    token = authority.token(roles=["Connector.Sync"], azp=EVENT_GRID)
    with pytest.raises(auth.Forbidden) as caught:
        event_grid_check(token, settings)
    assert auth.EVENT_GRID_ROLE in caught.value.message


def test_without_expected_appid_any_application_may_call(authority, settings):
    assert check(authority.token(azp=CALLER_APP), settings).appid == CALLER_APP


def test_event_grids_app_id_follows_the_cloud_and_fails_closed_where_unknown():
    assert auth.event_grid_app_id(PUBLIC) == "4962773b-9cdb-44cf-a8bf-237846a00ab7"
    for name in ("usgov", "usgovhigh", "dod"):
        assert auth.event_grid_app_id(CLOUDS[name]) == "54316b56-3481-47f9-8f30-0300f5542a7b"
    with pytest.raises(ConfigError) as caught:
        auth.event_grid_app_id(CLOUDS["china"])
    assert caught.value.path == "SYNC_EVENTGRID_WEBHOOK_AUTH"
    assert "china" in caught.value.message


def test_a_user_token_with_only_a_delegated_scope_is_403(authority, settings):
    token = authority.token(roles=None, scp="user_impersonation", idtyp="user")
    with pytest.raises(auth.Forbidden):
        check(token, settings)


def test_a_token_signed_by_another_key_under_a_published_kid_fails_the_signature(
    authority, settings
):
    with pytest.raises(auth.Unauthorized, match="signature"):
        check(authority.token(kid="key-a", signer="intruder"), settings)


def test_a_tampered_payload_fails_the_signature(authority, settings):
    head, _, sig = authority.token().split(".")
    forged = authority.claims(roles=["Connector.Sync", "Admin"])
    token = f"{head}.{b64(json.dumps(forged).encode())}.{sig}"
    with pytest.raises(auth.Unauthorized, match="signature"):
        check(token, settings)


def test_alg_none_is_refused_before_any_key_is_fetched(authority, settings):
    token = hand_made({"alg": "none", "typ": "JWT", "kid": "key-a"}, authority.claims())
    with pytest.raises(auth.Unauthorized, match="'none'"):
        check(token, settings)
    assert authority.metadata_fetches == 0


def test_hs256_signed_with_the_public_key_is_refused(authority, settings):
    pem = (
        rsa_key("key-a")
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "key-a"}
    unsigned = hand_made(header, authority.claims()).rsplit(".", 1)[0]
    signature = hmac.new(pem, unsigned.encode(), hashlib.sha256).digest()
    with pytest.raises(auth.Unauthorized, match="'HS256'"):
        check(f"{unsigned}.{b64(signature)}", settings)


@pytest.mark.parametrize("alg", ["PS256", "RS512", "ES256", "RS256 "])
def test_only_rs256_is_accepted(authority, settings, alg):
    token = hand_made({"alg": alg, "kid": "key-a"}, authority.claims(), b"x" * 256)
    with pytest.raises(auth.Unauthorized, match="algorithm"):
        check(token, settings)


def test_a_token_without_kid_is_refused(authority, settings):
    token = jwt.encode(authority.claims(), rsa_key("key-a"), algorithm="RS256")
    with pytest.raises(auth.Unauthorized, match="kid"):
        check(token, settings)


def test_an_unknown_kid_refreshes_the_keys_once_then_401(authority, settings):
    keys = auth.SigningKeys()
    check(authority.token(), settings, keys)
    assert authority.jwks_fetches == 1
    with pytest.raises(auth.Unauthorized, match="does not publish"):
        check(authority.token(kid="key-b"), settings, keys)
    assert authority.jwks_fetches == 2  # refreshed exactly once
    with pytest.raises(auth.Unauthorized):  # another random kid within the cooldown: no fetch
        check(authority.token(kid="key-c"), settings, keys)
    assert authority.jwks_fetches == 2
    assert check(authority.token(), settings, keys).oid == CALLER_OID


def test_a_rolled_key_is_picked_up_on_first_sight(authority, settings):
    keys = auth.SigningKeys()
    check(authority.token(), settings, keys)
    authority.published = ["key-a", "key-b"]  # Entra publishes the next key, then signs with it
    assert check(authority.token(kid="key-b"), settings, keys).oid == CALLER_OID
    assert authority.jwks_fetches == 2


def test_keys_are_cached_and_refreshed_after_the_ttl(authority, settings):
    now = [1000.0]
    keys = auth.SigningKeys(ttl=60, clock=lambda: now[0])
    for _ in range(3):
        check(authority.token(), settings, keys)
    assert (authority.metadata_fetches, authority.jwks_fetches) == (1, 1)
    now[0] += 61
    check(authority.token(), settings, keys)
    assert authority.jwks_fetches == 2


def test_stale_keys_are_used_when_a_refresh_fails(authority, settings):
    now = [1000.0]
    keys = auth.SigningKeys(ttl=60, clock=lambda: now[0])
    check(authority.token(), settings, keys)
    authority.jwks_down = True
    now[0] += 61
    assert check(authority.token(), settings, keys).oid == CALLER_OID


@pytest.mark.parametrize("down", ["jwks_down", "metadata_down"])
def test_unreachable_keys_are_transient_not_401(authority, settings, down):
    setattr(authority, down, True)
    with pytest.raises(TransientError):
        check(authority.token(), settings)


@pytest.mark.parametrize(
    "body",
    [b"<html>busy</html>", b"[" * 100_000 + b"]" * 100_000, b"[]"],
    ids=["html", "nested-too-deep", "an-array"],
)
def test_sign_in_metadata_that_is_no_json_object_is_transient(authority, settings, body):
    """A gateway's page, or JSON nested past the parser's recursion limit (which raised
    RecursionError out of the check: a 500 instead of a 503 the caller may retry)."""
    authority.metadata_body = body
    with pytest.raises(TransientError, match=r"not a JSON object|is not JSON"):
        check(authority.token(), settings)


def test_a_dead_authority_is_transient(settings):
    dead = Authority()
    dead.stop()
    gone = Settings(**{**settings.__dict__, "auth_metadata_url": dead.metadata_url()})
    with pytest.raises(TransientError):
        check(dead.token(), gone)


def test_a_tenant_the_authority_does_not_know_is_a_config_error(authority, settings):
    wrong = Settings(**{**settings.__dict__, "auth_metadata_url": authority.metadata_url("nope")})
    with pytest.raises(ConfigError) as caught:
        check(authority.token(), wrong)
    assert caught.value.path == AUTH_TENANT_ID


def test_a_private_metadata_host_not_allowlisted_is_a_config_error(authority, settings):
    # https, so that the guard, not the plain-http refusal (test_signing_keys_tls.py), answers
    https = settings.auth_metadata_url.replace("http://", "https://", 1)
    closed = Settings(
        **{**settings.__dict__, "allow_private_hosts": frozenset(), "auth_metadata_url": https}
    )
    with pytest.raises(ConfigError, match="outbound URL guard"):
        check(authority.token(), closed)
    assert authority.metadata_fetches == 0


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (None, None),
        ("", None),
        ("Bearer", "invalid_request"),
        ("Bearer    ", "invalid_request"),
        ("Basic dXNlcjpwYXNzd29yZA==", "invalid_request"),
        ("garbage", "invalid_request"),
        ("Bearer not-a-jwt", "invalid_token"),
        ("Bearer a.b", "invalid_token"),
        ("Bearer a.b.c", "invalid_token"),
        ("Bearer a.b.c d", "invalid_token"),
        ('Bearer "quoted".b.c', "invalid_token"),
        ("Bearer " + "a" * 20000 + ".b.c", "invalid_token"),
    ],
)
def test_malformed_authorization_headers_are_401_without_any_fetch(
    authority, settings, header, error
):
    headers = {} if header is None else {"Authorization": header}
    with pytest.raises(auth.Unauthorized) as caught:
        auth.authenticate(headers, settings, cloud=PUBLIC)
    challenge = caught.value.www_authenticate
    assert challenge.startswith('Bearer realm="connector-sync"')
    if error is None:  # RFC 6750 3.1: no error code when no credentials were sent
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge
    assert authority.metadata_fetches == 0


def test_a_token_in_the_query_string_or_another_header_is_ignored(authority, settings):
    token = authority.token()
    with pytest.raises(auth.Unauthorized, match="no Authorization header"):
        auth.authenticate(
            {"x-access-token": token, "x-ms-token-aad-access-token": token},
            settings,
            cloud=PUBLIC,
        )


def test_the_challenge_never_breaks_the_header_quoting():
    exc = auth.Unauthorized('bad "quoted" \\ value\r\nInjected: yes')
    challenge = exc.www_authenticate
    description = challenge.split('error_description="', 1)[1]
    assert description.endswith('"') and '"' not in description[:-1]
    assert "\r" not in challenge and "\n" not in challenge and "\\" not in challenge


@pytest.mark.parametrize(
    ("missing", "path"),
    [({"auth_tenant_id": None}, AUTH_TENANT_ID), ({"auth_audience": " , "}, AUTH_AUDIENCE)],
)
def test_unconfigured_auth_fails_closed_naming_the_setting(authority, settings, missing, path):
    broken = Settings(**{**settings.__dict__, **missing})
    with pytest.raises(ConfigError) as caught:
        check(authority.token(), broken)  # even a perfect token does not get through
    assert caught.value.path == path
    assert path in caught.value.message


def test_disabled_auth_admits_a_labelled_local_caller(monkeypatch):
    monkeypatch.delenv("WEBSITE_INSTANCE_ID", raising=False)
    caller = auth.authenticate({}, Settings(auth_disabled=True), cloud=PUBLIC)
    assert caller.label == "local:auth-disabled"


def test_disabled_auth_is_refused_in_azure(monkeypatch):
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "abc123")
    with pytest.raises(ConfigError) as caught:
        auth.authenticate({}, Settings(auth_disabled=True), cloud=PUBLIC)
    assert caught.value.path == AUTH_DISABLED


def test_settings_read_the_disable_switch_only_as_1():
    assert Settings.from_env({AUTH_DISABLED: "1"}).auth_disabled
    assert not Settings.from_env({AUTH_DISABLED: "true"}).auth_disabled
    assert not Settings.from_env({}).auth_disabled


@pytest.mark.parametrize(
    ("body", "dry"),
    [
        (b'{"api": "x", "dryRun": true}', True),
        (b'{"api": "x", "dryRun": false}', False),
        (b'{"api": "x", "dryRun": "true"}', False),
        (b'{"api": "x", "dryRun": 1}', False),
        (b'{"api": "x", "dryRun": true, "dryRun": false}', False),
        (b'{"api": "x"}', False),
        (b"[true]", False),
        (b"not json", False),
        (b"\xff", False),
        (b'{"dryRun": true, "pad": "' + b"a" * 70000 + b'"}', False),
    ],
)
def test_only_an_unambiguous_dry_run_body_skips_the_token(body, dry):
    assert auth.is_dry_run_body(body) is dry


def test_default_metadata_url_and_issuers_follow_the_cloud():
    s = Settings(auth_tenant_id=TENANT, auth_audience="x")
    assert auth.metadata_url(s, CLOUDS["usgovhigh"]) == (
        f"https://login.microsoftonline.us/{TENANT}/v2.0/.well-known/openid-configuration"
    )
    assert auth.accepted_issuers(TENANT, CLOUDS["china"], None) == {
        f"https://sts.chinacloudapi.cn/{TENANT}/",
        f"https://login.chinacloudapi.cn/{TENANT}/v2.0",
    }
    assert f"https://sts.windows.net/{TENANT}/" in auth.accepted_issuers(TENANT, PUBLIC, None)


def test_the_https_local_identity_authority_works_end_to_end():
    """The same code against the shared HTTPS Entra simulator (trustme CA), as Azure would serve."""
    from tests.support.local_identity import start_local_identity

    idp = start_local_identity()
    try:
        s = Settings(
            auth_tenant_id=TENANT,
            auth_audience="api://connector-sync",
            auth_metadata_url=f"{idp.authority}/{TENANT}/v2.0/.well-known/openid-configuration",
            allow_private_hosts=frozenset({"127.0.0.1"}),
        )
        token = idp.mint(
            {
                "aud": "api://connector-sync",
                "iss": idp.issuer(TENANT),
                "tid": TENANT,
                "oid": CALLER_OID,
                "azp": CALLER_APP,
                "roles": ["Connector.Sync"],
            }
        )
        keys = auth.SigningKeys(verify=ssl.create_default_context(cafile=idp.ca_pem_path))
        assert check(token, s, keys).label == f"oid:{CALLER_OID}"
        with pytest.raises(TransientError):  # the system trust store does not know the local CA
            check(token, s, auth.SigningKeys())
    finally:
        idp.stop()


def test_guid_settings_are_compared_whatever_their_case(authority, settings):
    """Tokens spell the tenant and the client id in lower case; a setting pasted in upper case
    refused every caller with "issued by another tenant" / "audience is not this app's" while
    the metadata, which Entra reads case-insensitively, still loaded. Found in review on
    2026-12-07."""
    from dataclasses import replace

    upper = replace(settings, auth_tenant_id=TENANT.upper(), auth_audience=CLIENT_ID.upper())
    assert check(authority.token(aud=CLIENT_ID), upper).appid == CALLER_APP


def test_a_tenant_that_is_not_a_guid_is_a_configuration_error(authority, settings):
    from dataclasses import replace

    with pytest.raises(ConfigError, match="must be the tenant's id") as caught:
        check(authority.token(), replace(settings, auth_tenant_id="contoso.onmicrosoft.com"))
    assert caught.value.path == AUTH_TENANT_ID
