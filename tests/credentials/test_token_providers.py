"""Every credential kind through the real azure-identity classes against the local identity platform."""

from __future__ import annotations

import logging
import re
import threading
import time

import jwt
import pytest

from sync.adapters.credentials import TOKEN_EXCHANGE_SCOPE, build_token_provider
from sync.adapters.keyvault import KeyVaultSecretStore
from sync.adapters.urlguard import UrlGuard
from sync.clouds import Cloud
from sync.errors import ConfigError, PermanentError, SecretError, SyncError, TransientError
from tests.support.local_identity import LocalIdentity, make_client_certificate
from tests.support.local_vault import LocalVault

PP_SCOPE = "https://service.powerapps.com/.default"
FAST = {"retry_total": 0}
TENANT_B = "33333333-0000-0000-0000-00000000000c"
# The local identity platform listens on loopback: let through as SYNC_ALLOW_PRIVATE_HOSTS=127.0.0.1
# lets it through for a developer (tests/credentials/test_authority_guard.py: refused without).
LOCAL = UrlGuard({"127.0.0.1"})


class MemoryStore:
    """A dict-backed writable store, for kinds where the vault itself is not under test."""

    def __init__(self, **values: str) -> None:
        self.values = {k.replace("_", "-"): v for k, v in values.items()}
        self.writes: list[tuple[str, str]] = []

    def get(self, name: str) -> str:
        try:
            return self.values[name]
        except KeyError:
            raise SecretError(f"secret {name!r} not found", where="memory") from None

    def set(self, name: str, value: str) -> None:
        self.writes.append((name, value))
        self.values[name] = value


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def provider(name, spec, cloud, identity, store=None):
    return build_token_provider(
        name,
        spec,
        cloud=cloud,
        secrets=store or MemoryStore(),
        connection_verify=identity.ca_pem_path,
        transport_options=FAST,
        guard=LOCAL,
    )


def test_managed_identity_system_assigned(identity: LocalIdentity, cloud: Cloud) -> None:
    tokens = provider("mi", {"managedIdentity": {}}, cloud, identity)
    token = tokens.token(PP_SCOPE)
    body = identity.decode(token, audience="https://service.powerapps.com")
    assert body["oid"] == identity.identities[None].object_id
    assert body["idtyp"] == "app"
    mi_calls = [r for r in identity.requests if r.path == "/msi/token"]
    assert len(mi_calls) == 1
    assert mi_calls[0].query["resource"] == "https://service.powerapps.com"
    assert "client_id" not in mi_calls[0].query


def test_managed_identity_user_assigned(identity: LocalIdentity, cloud: Cloud) -> None:
    uami = identity.add_managed_identity("0b7c6a59-4a2d-4c43-9d6e-3f0f3d6b2a11")
    tokens = provider("mi", {"managedIdentity": {"clientId": uami.client_id}}, cloud, identity)
    assert claims(tokens.token(PP_SCOPE))["oid"] == uami.object_id
    assert identity.requests[-1].query["client_id"] == uami.client_id


def test_second_call_is_served_from_cache(identity: LocalIdentity, cloud: Cloud) -> None:
    tokens = provider("mi", {"managedIdentity": {}}, cloud, identity)
    first = tokens.token(PP_SCOPE)
    before = len(identity.requests)
    assert tokens.token(PP_SCOPE) == first
    assert len(identity.requests) == before
    tokens.token("https://management.azure.com/.default")  # another scope is its own entry
    assert len(identity.requests) == before + 1


def test_token_near_expiry_is_refreshed(identity: LocalIdentity, cloud: Cloud) -> None:
    identity.token_lifetime = 200  # under the 5-minute margin: refreshed half-way
    tokens = provider("mi", {"managedIdentity": {}}, cloud, identity)
    tokens.token(PP_SCOPE)
    # Move the provider's clock forward instead of sleeping.
    tokens._clock = lambda: __import__("time").time() + 150
    tokens.token(PP_SCOPE)
    assert len([r for r in identity.requests if r.path == "/msi/token"]) >= 2


def test_concurrent_callers_share_one_fetch(identity: LocalIdentity, cloud: Cloud) -> None:
    app = identity.add_app(TENANT_B, secret="concurrent-secret-value")
    store = MemoryStore(sp_secret=app.secret)
    spec = {
        "servicePrincipal": {
            "tenant": TENANT_B,
            "clientId": app.client_id,
            "secret": "kv:sp-secret",
        }
    }
    tokens = provider("sp", spec, cloud, identity, store)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(tokens.token(PP_SCOPE))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert len(identity.token_requests("client_credentials")) == 1


def test_federated_uses_the_mi_token_as_assertion(identity: LocalIdentity, cloud: Cloud) -> None:
    uami = identity.add_managed_identity("5d6f1f4e-2b43-4d0f-8c55-0c3f6a0e9b21")
    # The app lives in another tenant and trusts the managed identity's subject.
    app = identity.add_app(TENANT_B, federated_subjects={uami.object_id})
    spec = {
        "federated": {
            "tenant": TENANT_B,
            "clientId": app.client_id,
            "managedIdentityClientId": uami.client_id,
        }
    }
    tokens = provider("pp-app", spec, cloud, identity)
    body = claims(tokens.token(PP_SCOPE))
    assert body["tid"] == TENANT_B
    assert body["appid"] == app.client_id
    assert body["idtyp"] == "app"
    mi_call = next(r for r in identity.requests if r.path == "/msi/token")
    assert mi_call.query["resource"] == TOKEN_EXCHANGE_SCOPE.removesuffix("/.default")
    assert mi_call.query["client_id"] == uami.client_id
    (grant,) = identity.token_requests("client_credentials")
    assert "client_secret" not in grant.form
    assertion = identity.decode(
        grant.form["client_assertion"], audience="api://AzureADTokenExchange"
    )
    assert assertion["oid"] == uami.object_id
    assert grant.path == f"/{TENANT_B}/oauth2/v2.0/token"


def test_federated_refused_when_subject_not_trusted(identity: LocalIdentity, cloud: Cloud) -> None:
    app = identity.add_app(TENANT_B, federated_subjects={"someone-else"})
    spec = {"federated": {"tenant": TENANT_B, "clientId": app.client_id}}
    with pytest.raises(PermanentError) as caught:
        provider("pp-app", spec, cloud, identity).token(PP_SCOPE)
    message = str(caught.value)
    assert "'pp-app' (federated)" in message
    assert "AADSTS70021" in message


def test_service_principal_secret(identity: LocalIdentity, cloud: Cloud) -> None:
    app = identity.add_app(TENANT_B, secret="sp-secret-value-1")
    store = MemoryStore(sp_secret="sp-secret-value-1")
    spec = {
        "servicePrincipal": {
            "tenant": TENANT_B,
            "clientId": app.client_id,
            "secret": "kv:sp-secret",
        }
    }
    body = claims(provider("sp", spec, cloud, identity, store).token(PP_SCOPE))
    assert body["appid"] == app.client_id
    assert body["aud"] == "https://service.powerapps.com"
    (grant,) = identity.token_requests("client_credentials")
    assert grant.form["client_secret"] == "sp-secret-value-1"
    assert grant.form["scope"] == PP_SCOPE
    # the OIDC metadata came from the local authority: instance discovery was switched off
    assert any(r.path.endswith("/.well-known/openid-configuration") for r in identity.requests)


def test_service_principal_certificate(identity: LocalIdentity, cloud: Cloud) -> None:
    pem, cert = make_client_certificate()
    app = identity.add_app(TENANT_B, certificate_pem=cert)
    store = MemoryStore(sp_cert=pem)
    spec = {
        "servicePrincipal": {
            "tenant": TENANT_B,
            "clientId": app.client_id,
            "certificate": "kv:sp-cert",
        }
    }
    body = claims(provider("sp", spec, cloud, identity, store).token(PP_SCOPE))
    assert body["appid"] == app.client_id
    (grant,) = identity.token_requests("client_credentials")
    assert grant.form["client_assertion_type"].endswith("jwt-bearer")


def test_certificate_that_is_not_one_is_a_secret_error(
    identity: LocalIdentity, cloud: Cloud
) -> None:
    app = identity.add_app(TENANT_B)
    store = MemoryStore(sp_cert="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    spec = {
        "servicePrincipal": {
            "tenant": TENANT_B,
            "clientId": app.client_id,
            "certificate": "kv:sp-cert",
        }
    }
    with pytest.raises(SecretError, match="kv:sp-cert"):
        provider("sp", spec, cloud, identity, store).token(PP_SCOPE)


def test_wrong_client_secret_is_permanent_and_never_echoed(
    identity: LocalIdentity, cloud: Cloud, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "CANARY-sp-secret-7f3a9c"
    app = identity.add_app(TENANT_B, secret="the-right-one")
    store = MemoryStore(sp_secret=canary)
    spec = {
        "servicePrincipal": {
            "tenant": TENANT_B,
            "clientId": app.client_id,
            "secret": "kv:sp-secret",
        }
    }
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermanentError) as caught:
        provider("sp", spec, cloud, identity, store).token(PP_SCOPE)
    assert "'sp' (servicePrincipal)" in str(caught.value)
    assert "AADSTS7000215" in str(caught.value)
    assert canary not in str(caught.value)
    assert canary not in caplog.text
    assert caught.value.__suppress_context__


def test_unreachable_authority_is_transient(identity: LocalIdentity, cloud: Cloud) -> None:
    app = identity.add_app(TENANT_B, secret="x-secret-value")
    identity.fail_next(503, times=5, path_contains="/oauth2/")
    spec = {"servicePrincipal": {"tenant": TENANT_B, "clientId": app.client_id, "secret": "kv:s"}}
    with pytest.raises(TransientError, match=r"'sp' \(servicePrincipal\)"):
        provider("sp", spec, cloud, identity, MemoryStore(s="x-secret-value")).token(PP_SCOPE)


def test_managed_identity_wrong_header_is_permanent(
    identity: LocalIdentity, cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "wrong-header")
    with pytest.raises(PermanentError, match=r"'mi' \(managedIdentity\)"):
        provider("mi", {"managedIdentity": {}}, cloud, identity).token(PP_SCOPE)


def test_managed_identity_endpoint_down_is_transient(identity: LocalIdentity, cloud: Cloud) -> None:
    identity.fail_next(503, times=3, path_contains="/msi/")
    with pytest.raises(TransientError, match=r"'mi' \(managedIdentity\)"):
        provider("mi", {"managedIdentity": {}}, cloud, identity).token(PP_SCOPE)


def test_jwks_verifies_minted_tokens(identity: LocalIdentity, cloud: Cloud) -> None:
    import httpx

    token = provider("mi", {"managedIdentity": {}}, cloud, identity).token(PP_SCOPE)
    tenant = identity.mi_tenant
    meta = httpx.get(
        f"{identity.authority}/{tenant}/v2.0/.well-known/openid-configuration",
        verify=__import__("ssl").create_default_context(cafile=identity.ca_pem_path),
    ).json()
    client = jwt.PyJWKClient(
        meta["jwks_uri"],
        ssl_context=__import__("ssl").create_default_context(cafile=identity.ca_pem_path),
    )
    key = client.get_signing_key_from_jwt(token)
    body = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience="https://service.powerapps.com",
        issuer=meta["issuer"],
    )
    assert body["tid"] == tenant


def test_missing_secret_is_secret_error(identity: LocalIdentity, cloud: Cloud) -> None:
    spec = {"servicePrincipal": {"tenant": TENANT_B, "clientId": "x", "secret": "kv:absent"}}
    with pytest.raises(SecretError, match="absent"):
        provider("sp", spec, cloud, identity).token(PP_SCOPE)


def test_default_credential_goes_to_managed_identity(identity: LocalIdentity, cloud: Cloud) -> None:
    tokens = provider("local", {"default": {}}, cloud, identity)
    assert claims(tokens.token(PP_SCOPE))["oid"] == identity.identities[None].object_id


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({}, "credentials.bad"),
        ({"managedIdentity": {}, "default": {}}, "credentials.bad"),
        ({"password": {}}, "credentials.bad"),
        ({"delegated": {"tenant": "t", "clientId": "c"}}, "credentials.bad.delegated.refreshToken"),
        ({"delegated": {"tenant": "t", "clientId": "c", "refreshToken": "plain"}}, "refreshToken"),
        ({"servicePrincipal": {"tenant": "t", "clientId": "c"}}, "servicePrincipal"),
        ({"servicePrincipal": {"clientId": "c", "secret": "kv:x"}}, "tenant"),
        ({"federated": {"tenant": "t"}}, "clientId"),
        ({"federated": "yes"}, "federated"),
    ],
)
def test_bad_credential_blocks(spec: dict, path: str, cloud: Cloud) -> None:
    with pytest.raises(ConfigError) as caught:
        build_token_provider("bad", spec, cloud=cloud, secrets=MemoryStore())
    assert path in str(caught.value)


# --- delegated ------------------------------------------------------------------------------------


def delegated_setup(identity: LocalIdentity, vault: LocalVault, cloud: Cloud, retries: int = 0):
    app = identity.add_app(TENANT_B, public_client=True)
    first = identity.issue_refresh_token(TENANT_B, app.client_id)
    vault.put("pp-user-refresh", first)
    vault_tokens = provider("vault", {"managedIdentity": {}}, cloud, identity)
    store = KeyVaultSecretStore(
        vault.url,
        vault_tokens,
        connection_verify=identity.ca_pem_path,
        verify_challenge_resource=False,
        client_options=FAST,
    )
    spec = {
        "delegated": {
            "tenant": TENANT_B,
            "clientId": app.client_id,
            "refreshToken": "kv:pp-user-refresh",
        }
    }
    tokens = build_token_provider(
        "pp-user",
        spec,
        cloud=cloud,
        secrets=store,
        connection_verify=identity.ca_pem_path,
        transport_options={"retry_total": retries, "retry_backoff_factor": 0.01},
        guard=LOCAL,
    )
    return app, first, store, tokens


def test_delegated_rotates_refresh_token_into_the_vault(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud
) -> None:
    app, first, store, tokens = delegated_setup(identity, vault, cloud)
    body = claims(tokens.token(PP_SCOPE))
    assert body["idtyp"] == "user"
    (grant,) = identity.token_requests("refresh_token")
    assert grant.form["refresh_token"] == first
    assert grant.form["client_id"] == app.client_id
    assert grant.form["scope"] == f"{PP_SCOPE} offline_access"
    rotated = vault.latest("pp-user-refresh")
    assert rotated != first
    assert rotated in identity.refresh_tokens
    assert store.get("pp-user-refresh") == rotated
    # The next scope redeems the rotated token (kept in memory), not the first one.
    tokens.token("https://management.azure.com/.default")
    assert identity.token_requests("refresh_token")[-1].form["refresh_token"] == rotated


def test_delegated_revoked_token_names_credential_not_token(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _app, first, _store, tokens = delegated_setup(identity, vault, cloud)
    identity.revoke_refresh_token(first)
    with pytest.raises(PermanentError) as caught:
        tokens.token(PP_SCOPE)
    message = str(caught.value)
    assert "'pp-user' (delegated)" in message
    assert "invalid_grant" in message
    assert "AADSTS70008" in message
    assert "kv:pp-user-refresh" in message
    assert first not in message
    assert first not in caplog.text


def test_delegated_rereads_the_vault_when_its_memory_copy_is_revoked(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud
) -> None:
    identity.revoke_used_refresh_tokens = True
    app, _first, store, tokens = delegated_setup(identity, vault, cloud)
    tokens.token(PP_SCOPE)
    in_memory = vault.latest("pp-user-refresh")
    # Another instance redeems our rotated token and stores its own newer one.
    newer = identity.issue_refresh_token(TENANT_B, app.client_id)
    identity.revoke_refresh_token(in_memory)
    vault.put("pp-user-refresh", newer)
    store.forget()
    tokens.token("https://management.azure.com/.default")
    used = [r.form["refresh_token"] for r in identity.token_requests("refresh_token")]
    assert used[-2:] == [in_memory, newer]


def test_delegated_transient_failure_is_retried_then_transient(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud
) -> None:
    _app, _first, _store, tokens = delegated_setup(identity, vault, cloud, retries=2)
    identity.fail_next(503, times=1, path_contains="/oauth2/")
    assert tokens.token(PP_SCOPE)  # the shared retry policy absorbed one 503
    identity.fail_next(503, times=5, path_contains="/oauth2/")
    with pytest.raises(TransientError, match="delegated"):
        tokens.token("https://management.azure.com/.default")


def test_delegated_with_read_only_store_keeps_rotation_in_memory(
    identity: LocalIdentity, cloud: Cloud, caplog: pytest.LogCaptureFixture
) -> None:
    from sync.adapters.secrets_env import EnvSecretStore

    app = identity.add_app(TENANT_B, public_client=True)
    first = identity.issue_refresh_token(TENANT_B, app.client_id)
    store = EnvSecretStore({"SYNC_SECRET_PP_USER_REFRESH": first})
    spec = {
        "delegated": {
            "tenant": TENANT_B,
            "clientId": app.client_id,
            "refreshToken": "kv:pp-user-refresh",
        }
    }
    tokens = provider("pp-user", spec, cloud, identity, store)
    tokens.token(PP_SCOPE)
    assert "read-only" in caplog.text
    tokens.token("https://management.azure.com/.default")
    assert identity.token_requests("refresh_token")[-1].form["refresh_token"] != first


def test_service_principal_pkcs12_certificate(identity: LocalIdentity, cloud: Cloud) -> None:
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import NoEncryption, load_pem_private_key
    from cryptography.hazmat.primitives.serialization.pkcs12 import serialize_key_and_certificates

    pem, cert = make_client_certificate()
    key = load_pem_private_key(pem.encode(), password=None)
    pfx = serialize_key_and_certificates(
        b"c", key, x509.load_pem_x509_certificate(cert), None, NoEncryption()
    )
    app = identity.add_app(TENANT_B, certificate_pem=cert)
    store = MemoryStore(sp_cert=base64.b64encode(pfx).decode())
    spec = {
        "servicePrincipal": {
            "tenant": TENANT_B,
            "clientId": app.client_id,
            "certificate": "kv:sp-cert",
        }
    }
    assert (
        claims(provider("sp", spec, cloud, identity, store).token(PP_SCOPE))["appid"]
        == app.client_id
    )


@pytest.mark.parametrize("expires_in", ["NaN", "Infinity", "1e400", '"soon"', "[3600]"])
def test_delegated_token_answer_with_a_bad_expires_in_is_permanent(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud, expires_in: str
) -> None:
    _app, first, _store, tokens = delegated_setup(identity, vault, cloud)
    token = identity.mint({"aud": "https://service.powerapps.com"})
    body = f'{{"access_token": "{token}", "expires_in": {expires_in}}}'.encode()
    identity.answer_next(body, path_contains="/oauth2/")
    with pytest.raises(PermanentError) as caught:
        tokens.get_token(PP_SCOPE)
    message = str(caught.value)
    assert "'pp-user' (delegated)" in message
    assert "expires_in" in message
    assert token not in message
    assert first not in message


DEEP = b"[" * 100_000 + b"]" * 100_000  # JSON nested past the recursion limit
NOT_JSON = b"<html><body>Service Unavailable</body></html>"


@pytest.mark.parametrize(
    ("status", "error"), [(400, PermanentError), (503, TransientError), (200, PermanentError)]
)
def test_delegated_token_answer_nested_past_the_recursion_limit_fails_as_one_not_json(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud, status: int, error: type
) -> None:
    """A RecursionError out of the error description (the 400, and the 503 through
    check_transient) or the answer's read (the 200) became PermanentError "RecursionError: ...":
    a 503 that is retried when its body is HTML was then not retried at all."""
    _app, _first, _store, tokens = delegated_setup(identity, vault, cloud)
    failures = []
    for body in (NOT_JSON, DEEP):
        identity.answer_next(body, status=status, path_contains="/oauth2/")
        with pytest.raises(SyncError) as caught:
            tokens.token(PP_SCOPE)
        failures.append((type(caught.value), str(caught.value)))
    assert failures[0] == failures[1]
    assert issubclass(failures[0][0], error)


# --- token lifetimes ------------------------------------------------------------------------------

DAY = 24 * 3600


def answering(kind: str, lifetime: float, identity: LocalIdentity, vault: LocalVault, cloud: Cloud):
    """A provider whose token answer claims ``lifetime`` seconds (a managed identity's every
    answer, a delegated grant's next one), and a count of its token requests."""
    if kind == "managedIdentity":
        identity.token_lifetime = int(lifetime)
        tokens = provider("mi", {"managedIdentity": {}}, cloud, identity)
        return tokens, lambda: len([r for r in identity.requests if r.path == "/msi/token"])
    _app, _first, _store, tokens = delegated_setup(identity, vault, cloud)
    token = identity.mint({"aud": "https://service.powerapps.com"})
    body = f'{{"access_token": "{token}", "expires_in": {lifetime}}}'.encode()
    identity.answer_next(body, path_contains="/oauth2/")
    return tokens, lambda: len(identity.token_requests("refresh_token"))


@pytest.mark.parametrize("kind", ["managedIdentity", "delegated"])
def test_a_token_claiming_years_of_life_is_kept_a_day_at_most(
    identity: LocalIdentity,
    vault: LocalVault,
    cloud: Cloud,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An answer claiming 31 years (seconds read as milliseconds somewhere, a proxy's
    invention) pinned the token that long, revoked or not: in our cache, in what get_token
    tells the SDK clients and, for a managed identity, in MSAL's cache behind ours."""
    tokens, requests = answering(kind, 1e9, identity, vault, cloud)
    before = time.time()
    info = tokens.access_token(PP_SCOPE)
    assert before + DAY - 5 <= info.expires_on <= before + DAY + 5
    assert tokens.get_token(PP_SCOPE).expires_on <= before + DAY + 5
    assert requests() == 1  # kept for the day
    assert re.search(r"claims (99999\d{4}|1000000000) s of life; kept 86400 s", caplog.text)
    tokens._clock = lambda: time.time() + DAY  # a day later: asked again
    tokens.token(PP_SCOPE)
    assert requests() == 2


@pytest.mark.parametrize("kind", ["managedIdentity", "delegated"])
def test_a_day_long_token_seen_by_a_clock_a_little_behind_is_kept_as_it_is(
    identity: LocalIdentity,
    vault: LocalVault,
    cloud: Cloud,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A managed identity's 24 h token, read by a host whose clock runs 30 s behind the
    issuer's: no cut, no warning, no new credential every day."""
    tokens, requests = answering(kind, DAY + 30, identity, vault, cloud)
    before = time.time()
    assert tokens.access_token(PP_SCOPE).expires_on >= before + DAY + 25
    assert "of life; kept" not in caplog.text
    tokens.token(PP_SCOPE)
    assert requests() == 1


@pytest.mark.parametrize("kind", ["managedIdentity", "delegated"])
def test_a_token_that_arrives_expired_is_used_once_not_kept_and_reported(
    identity: LocalIdentity,
    vault: LocalVault,
    cloud: Cloud,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A negative expires_in: the token serves the call it was asked for and the next call asks
    once more, with no loop waiting for a better answer; the warning keeps it from passing as
    a silent request per call."""
    tokens, requests = answering(kind, -3600, identity, vault, cloud)
    info = tokens.access_token(PP_SCOPE)
    assert info.expires_on < time.time()
    assert requests() == 1
    assert re.search(r"arrived already expired \((359\d|360\d) s ago\); not cached", caplog.text)
    tokens.token(PP_SCOPE)
    assert requests() == 2
