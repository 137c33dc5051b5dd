"""The map's ``endpoints.authorityHost`` passes the outbound URL guard before a credential goes there.

Every other outbound URL of the service went through ``sync.adapters.urlguard``; the authority
host did not: azure-identity and the delegated grant's form POST sent the client secret, the
certificate's assertion or the refresh token to whatever the map named (loopback, the metadata
endpoint, a private address). Now each kind that talks to the authority vets it first (no
connection, an ``UnsafeUrlError`` naming ``endpoints.authorityHost`` and why), and
SYNC_ALLOW_PRIVATE_HOSTS still lets the local identity platform through.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sync.adapters.credentials import build_token_provider, vet_authority
from sync.adapters.urlguard import UrlGuard
from sync.clouds import CLOUDS, Cloud
from sync.config import parse_map
from sync.errors import SyncError, UnsafeUrlError
from sync.settings import Settings
from tests.credentials.test_token_providers import FAST, PP_SCOPE, TENANT_B, MemoryStore, claims
from tests.support.local_identity import LocalIdentity, make_client_certificate

SECRETS = {
    "sp-secret": "SP-SECRET-VALUE",
    "pp-user-refresh": "RT-SECRET-REFRESH",
}
CLIENT = "11111111-2222-3333-4444-555555555555"
KINDS: dict[str, dict[str, Any]] = {
    "servicePrincipal": {
        "servicePrincipal": {"tenant": TENANT_B, "clientId": CLIENT, "secret": "kv:sp-secret"}
    },
    "certificate": {
        "servicePrincipal": {"tenant": TENANT_B, "clientId": CLIENT, "certificate": "kv:sp-cert"}
    },
    "federated": {"federated": {"tenant": TENANT_B, "clientId": CLIENT}},
    "delegated": {
        "delegated": {"tenant": TENANT_B, "clientId": CLIENT, "refreshToken": "kv:pp-user-refresh"}
    },
    "default": {"default": {}},
}


class Listener:
    """A TCP listener on loopback that counts the connections it is offered, then drops them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:  # the accept timeout, or the socket closed
                continue
            self.accepted += 1
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.stop()


class RecordingStore(MemoryStore):
    """The secrets of every kind; remembers which ones were read."""

    def __init__(self) -> None:
        super().__init__(**SECRETS)
        self.values["sp-cert"] = make_client_certificate()[0]
        self.reads: list[str] = []

    def get(self, name: str) -> str:
        self.reads.append(name)
        return super().get(name)


def at(authority: str) -> Cloud:
    return replace(CLOUDS["public"], authority_host=authority)


def attempt(
    kind: str, cloud: Cloud, store: RecordingStore, guard: UrlGuard | None = None
) -> SyncError:
    """The error of the first token of credential ``kind`` (one that must fail)."""
    tokens = build_token_provider(
        kind, KINDS[kind], cloud=cloud, secrets=store, transport_options=FAST, guard=guard
    )
    with pytest.raises(SyncError) as caught:
        tokens.token(PP_SCOPE)
    return caught.value


def assert_refused(error: SyncError, *, kind: str, reason: str, store: RecordingStore) -> None:
    assert isinstance(error, UnsafeUrlError), repr(error)
    message = str(error)
    assert "endpoints.authorityHost" in message and reason in message, message
    assert f"credential {kind!r}" in message
    for value in SECRETS.values():
        assert value not in message
    assert store.reads == []  # refused before the vault was asked for the secret


# --- (a), (b): an internal authority gets no connection ------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_loopback_authority_gets_no_connection_and_no_secret(
    kind: str, identity: LocalIdentity, listener: Listener
) -> None:
    store = RecordingStore()
    error = attempt(kind, at(f"https://127.0.0.1:{listener.port}"), store)
    assert_refused(error, kind=kind, reason="loopback", store=store)
    assert "SYNC_ALLOW_PRIVATE_HOSTS" in str(error)
    assert listener.accepted == 0
    assert identity.requests == []  # not even the federated kind's managed-identity assertion


@pytest.mark.parametrize("kind", ["servicePrincipal", "delegated"])
def test_the_metadata_endpoint_and_private_names_are_refused(
    kind: str, identity: LocalIdentity
) -> None:
    store = RecordingStore()
    error = attempt(kind, at("https://169.254.169.254"), store)
    assert_refused(error, kind=kind, reason="link-local", store=store)

    def resolver(host: str, port: int) -> list[str]:
        return ["10.1.2.3"] if host == "login.contoso.example" else ["20.190.160.1"]

    error = attempt(kind, at("https://login.contoso.example"), store, UrlGuard(resolver=resolver))
    assert_refused(error, kind=kind, reason="resolves to 10.1.2.3", store=store)


def test_the_check_resolves_when_a_token_is_asked_for_not_when_the_map_is_read(
    identity: LocalIdentity,
) -> None:
    looked_up: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return ["192.168.0.9"]

    cloud = at("https://login.sovereign.example")
    store = RecordingStore()
    tokens = build_token_provider(
        "sp",
        KINDS["servicePrincipal"],
        cloud=cloud,
        secrets=store,
        guard=UrlGuard(resolver=resolver),
    )
    assert looked_up == []
    with pytest.raises(UnsafeUrlError, match="private"):
        tokens.token(PP_SCOPE)
    assert looked_up == ["login.sovereign.example"]
    # the clouds' own authorities are hard-coded: no lookup at all
    for known in CLOUDS.values():
        vet_authority(known, UrlGuard(resolver=resolver), what="x", where="y")
    assert looked_up == ["login.sovereign.example"]


def test_the_refresh_token_post_connects_only_where_the_guard_looked(
    identity: LocalIdentity, listener: Listener
) -> None:
    """The delegated grant's POST goes through the guarded client: a name that answers public
    for the check and loopback for the connection (DNS rebinding) gets no connection."""
    answers = iter([["20.190.160.1"], ["127.0.0.1"]])
    store = RecordingStore()
    error = attempt(
        "delegated",
        at(f"https://login.rebinding.example:{listener.port}"),
        store,
        UrlGuard(resolver=lambda host, port: next(answers)),
    )
    assert isinstance(error, UnsafeUrlError), repr(error)
    assert "loopback" in str(error)
    assert "RT-SECRET-REFRESH" not in str(error)
    assert listener.accepted == 0


# --- (c): SYNC_ALLOW_PRIVATE_HOSTS lets the local identity platform through ---------------------


@pytest.mark.parametrize("kind", ["servicePrincipal", "federated", "delegated"])
def test_an_allow_listed_local_authority_issues_tokens(
    kind: str, identity: LocalIdentity, cloud: Cloud
) -> None:
    store = MemoryStore()
    if kind == "federated":
        app = identity.add_app(TENANT_B, federated_subjects={identity.identities[None].object_id})
    elif kind == "delegated":
        app = identity.add_app(TENANT_B, public_client=True)
        store.values["pp-user-refresh"] = identity.issue_refresh_token(TENANT_B, app.client_id)
    else:
        app = identity.add_app(TENANT_B, secret="right")
        store.values["sp-secret"] = "right"
    spec = {k: {**v, "clientId": app.client_id} for k, v in KINDS[kind].items()}
    tokens = build_token_provider(
        kind,
        spec,
        cloud=cloud,
        secrets=store,
        connection_verify=identity.ca_pem_path,
        transport_options=FAST,
        guard=UrlGuard({"127.0.0.1"}),
    )
    assert claims(tokens.token(PP_SCOPE))["appid"] == app.client_id


def sync_map(authority: str, tmp_path: Path, sp_client: str, user_client: str) -> Any:
    sp = {**KINDS["servicePrincipal"]["servicePrincipal"], "clientId": sp_client}
    user = {**KINDS["delegated"]["delegated"], "clientId": user_client}
    raw = {
        "endpoints": {"authorityHost": authority},
        "credentials": {"pp-sp": {"servicePrincipal": sp}, "pp-user": {"delegated": user}},
        "apis": {
            "a": {
                "spec": {"url": "https://api.contoso.example/openapi.json"},
                "targets": [{"name": "t", "folder": "out"}],
            }
        },
    }
    return parse_map(raw, source="t", base_dir=tmp_path)


def _factory_tokens(settings: Settings, sync_map: Any, store: Any, credential: str) -> Any:
    from sync.bootstrap import TargetFactory

    return TargetFactory(settings, sync_map, store, ledger=None).tokens(credential)


def _spec_source_tokens(settings: Settings, sync_map: Any, store: Any, credential: str) -> Any:
    from sync.adapters.spec_sources import SpecSources

    sources = SpecSources(settings, sync_map, secrets=store)
    try:
        return sources.tokens(credential)
    finally:
        sources.close()


@pytest.mark.parametrize("tokens_of", [_factory_tokens, _spec_source_tokens])
def test_the_service_vets_the_maps_authority_with_its_app_settings(
    tokens_of: Any, identity: LocalIdentity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The targets' and the spec sources' credentials, built as the service builds them:
    refused on loopback without SYNC_ALLOW_PRIVATE_HOSTS, signed in with it."""
    apps = {
        "pp-sp": identity.add_app(TENANT_B, secret="SP-SECRET-VALUE"),
        "pp-user": identity.add_app(TENANT_B, public_client=True),
    }
    user_client = apps["pp-user"].client_id
    store = RecordingStore()
    store.values["pp-user-refresh"] = identity.issue_refresh_token(TENANT_B, user_client)
    the_map = sync_map(identity.authority, tmp_path, apps["pp-sp"].client_id, user_client)
    for credential in ("pp-sp", "pp-user"):
        with pytest.raises(UnsafeUrlError, match=r"endpoints\.authorityHost"):
            tokens_of(Settings(), the_map, store, credential).token(PP_SCOPE)
    assert identity.requests == [] and store.reads == []

    # the service passes no CA bundle: the local CA is trusted the way a developer would
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", identity.ca_pem_path)  # azure-identity (requests)
    monkeypatch.setenv("SSL_CERT_FILE", identity.ca_pem_path)  # the delegated grant (httpx)
    local = Settings(allow_private_hosts=frozenset({"127.0.0.1"}))
    for credential in ("pp-sp", "pp-user"):
        token = tokens_of(local, the_map, store, credential).token(PP_SCOPE)
        assert claims(token)["appid"] == apps[credential].client_id


def test_the_function_identity_off_azure_reads_sync_allow_private_hosts(
    identity: LocalIdentity, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sync.adapters.function_identity import function_identity

    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        monkeypatch.delenv(name)  # off Azure: DefaultAzureCredential, at the map's authority
    monkeypatch.delenv("SYNC_ALLOW_PRIVATE_HOSTS", raising=False)
    tokens = function_identity(at(f"https://127.0.0.1:{listener.port}"))
    with pytest.raises(UnsafeUrlError, match=r"endpoints\.authorityHost .*loopback"):
        tokens.token(PP_SCOPE)
    assert listener.accepted == 0


# --- (d): no plain http, allow-listed or not -----------------------------------------------------


@pytest.mark.parametrize("allowed", [frozenset(), frozenset({"127.0.0.1"})])
@pytest.mark.parametrize("kind", ["servicePrincipal", "certificate", "delegated", "default"])
def test_a_plain_http_authority_is_refused(
    kind: str, allowed: frozenset[str], identity: LocalIdentity, listener: Listener
) -> None:
    """An allow-listed host is exempt from the address check, not from TLS: the request carries
    a secret, and azure-identity refuses an http authority for its kinds anyway."""
    store = RecordingStore()
    authority = f"http://127.0.0.1:{listener.port}"
    error = attempt(kind, at(authority), store, UrlGuard(allowed))
    assert_refused(error, kind=kind, reason="must be an https:// URL", store=store)
    assert authority in str(error)
    assert listener.accepted == 0
