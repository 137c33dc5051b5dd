"""The real SecretClient against the local vault; the env store; ``kv:`` references."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from sync.adapters.credentials import build_token_provider
from sync.adapters.keyvault import KeyVaultSecretStore, resolve_ref, secret_name_of
from sync.adapters.secrets_env import EnvSecretStore, secret_store_for
from sync.clouds import Cloud
from sync.errors import ConfigError, SecretError, TransientError
from sync.logs import redact
from sync.settings import Settings
from tests.credentials.conftest import store_for
from tests.support import local_vault
from tests.support.local_identity import LocalIdentity
from tests.support.local_vault import LocalVault

CANARY = "CANARY-vault-value-91d2e4"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_get_follows_the_bearer_challenge(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud
) -> None:
    vault.put("db-password", CANARY)
    store = store_for(identity, vault, cloud)
    assert store.get("db-password") == CANARY
    first, second = vault.requests[:2]
    assert first.status == 401 and first.authorization is None
    assert second.status == 200 and second.authorization.startswith("Bearer ")
    assert second.path == "/secrets/db-password/"
    # the token was minted for the vault audience by the managed identity and verified by the vault
    mi = [r for r in identity.requests if r.path == "/msi/token"]
    assert [r.query["resource"] for r in mi] == ["https://vault.azure.net"]


def test_ttl_cache(identity: LocalIdentity, vault: LocalVault, cloud: Cloud) -> None:
    vault.put("webhook", "v1")
    clock = Clock()
    store = store_for(identity, vault, cloud, cache_ttl=300, clock=clock)
    assert store.get("webhook") == "v1"
    vault.put("webhook", "v2")
    clock.now += 299
    assert store.get("webhook") == "v1"
    assert len(vault.secret_requests("GET")) == 1
    clock.now += 2
    assert store.get("webhook") == "v2"
    assert len(vault.secret_requests("GET")) == 2


def test_set_writes_a_new_version_and_updates_the_cache(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud
) -> None:
    vault.put("rt", "old")
    store = store_for(identity, vault, cloud)
    assert store.get("rt") == "old"
    store.set("rt", "new")
    assert [v.value for v in vault.secrets["rt"]] == ["old", "new"]
    (put,) = vault.secret_requests("PUT")
    assert put.body == {"value": "new"}
    assert put.path == "/secrets/rt"
    assert store.get("rt") == "new"
    assert len(vault.secret_requests("GET")) == 1


def test_missing_secret_names_vault_and_secret(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud
) -> None:
    with pytest.raises(SecretError) as caught:
        store_for(identity, vault, cloud).get("nope")
    assert "'nope'" in str(caught.value)
    assert vault.url in str(caught.value)
    assert "SecretNotFound" in str(caught.value)


def test_forbidden_secret_names_vault_and_secret_never_value(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    vault.put("locked", CANARY)
    vault.forbidden.add("locked")
    store = store_for(identity, vault, cloud)
    with pytest.raises(SecretError) as caught:
        store.get("locked")
    assert "403" in str(caught.value)
    assert "'locked'" in str(caught.value)
    assert vault.url in str(caught.value)
    with pytest.raises(SecretError, match="Officer"):
        store.set("locked", CANARY)
    assert CANARY not in str(caught.value)
    assert CANARY not in caplog.text


def test_canary_never_logged_on_success(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    vault.put("teams-webhook-url", CANARY)
    store = store_for(identity, vault, cloud)
    assert store.get("teams-webhook-url") == CANARY
    store.set("teams-webhook-url", CANARY + "-2")
    assert CANARY not in caplog.text
    assert CANARY not in repr(store)


def test_secrets_read_or_written_are_known_to_log_redaction(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud
) -> None:
    """The registered-values safety net masks a secret wherever it shows up (an SDK's exception
    text, a dumped request); the stores never registered what they read or wrote, so it only
    knew env vars named like secrets."""
    read, written, from_env = (f"0.AR-{kind}-{uuid.uuid4().hex}" for kind in ("r", "w", "e"))
    vault.put("pp-user-refresh", read)
    store = store_for(identity, vault, cloud)
    assert store.get("pp-user-refresh") == read
    store.set("pp-user-refresh", written)
    assert EnvSecretStore({"SYNC_SECRET_LOCAL_ONLY": from_env}).get("local-only") == from_env
    for value in (read, written, from_env):
        assert redact(f"upstream said {value} twice") == "upstream said <redacted> twice"


def test_service_unavailable_is_transient(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud
) -> None:
    vault.put("x", "y")
    store = store_for(identity, vault, cloud)
    store.get("x")  # authenticate first, so the failure hits the secret call
    store.forget()
    vault.fail_next(503)
    with pytest.raises(TransientError, match="503"):
        store.get("x")


def test_an_answer_cut_off_mid_body_is_transient(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection dropped after the headers makes azure-core raise ``IncompleteReadError``, an
    ``HttpResponseError`` with no status: a transport failure, not the vault's verdict. It used to
    be a permanent SecretError ("HTTP None"), so the run gave up instead of retrying."""
    vault.put("teams-webhook-url", CANARY)
    store = store_for(identity, vault, cloud)
    store.get("teams-webhook-url")  # authenticate first, so the cut hits the secret call
    store.forget()

    def cut_off(handler: local_vault._VaultHandler, body: object) -> None:
        data = json.dumps({"value": CANARY, "id": "x"}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data[:10])
        handler.wfile.flush()
        handler.close_connection = True

    monkeypatch.setattr(local_vault._VaultHandler, "_handle", cut_off)
    with pytest.raises(TransientError) as caught:
        store.get("teams-webhook-url")
    assert "'teams-webhook-url'" in str(caught.value) and vault.url in str(caught.value)
    assert "IncompleteRead" in str(caught.value)
    assert CANARY not in str(caught.value)


def test_an_sdk_error_without_a_status_is_transient() -> None:
    """Any ``HttpResponseError``/``DecodeError`` carrying no status code did not come from the
    vault (a stream or decoding failure on our side of the wire): retry, do not give up."""
    from azure.core.exceptions import DecodeError, HttpResponseError

    store = KeyVaultSecretStore("https://kv1.vault.azure.net", _StaticCredential())
    for exc in (HttpResponseError("stream reset"), DecodeError("half a body")):
        error = store._translate(exc, "rt", "read")
        assert isinstance(error, TransientError), error
        assert "'rt'" in str(error) and "https://kv1.vault.azure.net" in str(error)
    permanent = HttpResponseError("bad request")
    permanent.status_code = 400
    assert not isinstance(store._translate(permanent, "rt", "read"), TransientError)


def test_unreachable_vault_is_transient(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud
) -> None:
    store = store_for(identity, vault, cloud)
    vault.stop()
    with pytest.raises(TransientError, match="unreachable"):
        store.get("x")


def test_untrusted_certificate_is_transient_not_a_crash(
    identity: LocalIdentity, vault: LocalVault
) -> None:
    # no connection_verify: the local CA is not trusted, the TLS handshake fails
    store = KeyVaultSecretStore(
        vault.url,
        _StaticCredential(),
        verify_challenge_resource=False,
        client_options={"retry_total": 0},
    )
    with pytest.raises(TransientError):
        store.get("x")


class _StaticCredential:
    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        return AccessToken("not-a-jwt", 2_000_000_000)


def test_vault_rejects_a_token_it_did_not_issue(identity: LocalIdentity, vault: LocalVault) -> None:
    store = KeyVaultSecretStore(
        vault.url,
        _StaticCredential(),
        connection_verify=identity.ca_pem_path,
        verify_challenge_resource=False,
        client_options={"retry_total": 0},
    )
    with pytest.raises(SecretError, match="authentication failed"):
        store.get("x")


def test_challenge_resource_is_verified_by_default(
    identity: LocalIdentity, vault: LocalVault
) -> None:
    store = KeyVaultSecretStore(
        vault.url,
        _StaticCredential(),
        connection_verify=identity.ca_pem_path,
        client_options={"retry_total": 0},
    )
    with pytest.raises(SecretError, match="'x'"):
        store.get("x")


@pytest.mark.parametrize("name", ["", "has space", "under_score", "x" * 128, "kv:x"])
def test_invalid_secret_names(name: str) -> None:
    store = KeyVaultSecretStore("https://example.vault.azure.net", _StaticCredential())
    with pytest.raises(SecretError, match="invalid secret name"):
        store.get(name)
    with pytest.raises(SecretError, match="invalid secret name"):
        EnvSecretStore({}).get(name)


@pytest.mark.parametrize(
    "url", ["", "http://example.vault.azure.net", "example.vault.azure.net", "https://"]
)
def test_vault_url_must_be_https(url: str) -> None:
    with pytest.raises(ConfigError, match="https"):
        KeyVaultSecretStore(url, _StaticCredential())


def test_env_store() -> None:
    store = EnvSecretStore({"SYNC_SECRET_TEAMS_WEBHOOK_URL": "https://hooks.example/x"})
    assert store.get("teams-webhook-url") == "https://hooks.example/x"
    with pytest.raises(SecretError, match="SYNC_SECRET_PP_USER_REFRESH"):
        store.get("pp-user-refresh")
    with pytest.raises(SecretError, match="SYNC_SECRET_EMPTY"):
        EnvSecretStore({"SYNC_SECRET_EMPTY": ""}).get("empty")
    assert "hooks" not in repr(store)


def test_resolve_ref() -> None:
    store = EnvSecretStore({"SYNC_SECRET_A_B": "value"})
    assert resolve_ref("kv:a-b", store) == "value"
    for bad in ["a-b", "kv:", "kv:a b", "vault:a", None]:
        with pytest.raises(ConfigError, match="kv:<secret-name>"):
            resolve_ref(bad, store)  # type: ignore[arg-type]
    assert secret_name_of("kv:pp-user-refresh") == "pp-user-refresh"


def test_secret_store_for_settings() -> None:
    env = {"SYNC_SECRETS_FROM_ENV": "1", "SYNC_SECRET_X": "1"}
    assert isinstance(secret_store_for(Settings.from_env(env), env, None), EnvSecretStore)
    kv_env = {"SYNC_KEY_VAULT_URL": "https://kv1.vault.azure.net/"}
    store = secret_store_for(Settings.from_env(kv_env), kv_env, _StaticCredential())
    assert isinstance(store, KeyVaultSecretStore)
    assert store.vault_url == "https://kv1.vault.azure.net"
    with pytest.raises(ConfigError, match="SYNC_KEY_VAULT_URL"):
        secret_store_for(Settings.from_env({}), {}, None)


def test_a_bare_token_provider_is_enough_for_the_vault(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud
) -> None:
    inner = build_token_provider(
        "vault",
        {"managedIdentity": {}},
        cloud=cloud,
        secrets=EnvSecretStore({}),
        transport_options={"retry_total": 0},
    )

    class OnlyToken:  # the TokenProvider port, nothing else
        def token(self, scope: str) -> str:
            return inner.token(scope)

    vault.put("s", "v")
    store = KeyVaultSecretStore(
        vault.url,
        lambda: OnlyToken(),  # a factory, resolved on first use
        connection_verify=identity.ca_pem_path,
        verify_challenge_resource=False,
        client_options={"retry_total": 0},
    )
    assert store.get("s") == "v"
