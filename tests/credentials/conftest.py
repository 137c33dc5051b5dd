"""Fixtures: the local Entra authority + managed-identity endpoint, and the local Key Vault.

Both servers start on port 0 per test (cheap: the CA and signing key are made once per process)
so a test's recorded requests and registered apps never leak into another test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from sync.adapters.credentials import build_token_provider
from sync.adapters.keyvault import KeyVaultSecretStore
from sync.adapters.secrets_env import EnvSecretStore
from sync.clouds import CLOUDS, Cloud
from sync.errors import SyncError
from tests.support.identity_env import local_managed_identity
from tests.support.local_identity import LocalIdentity, serve, shutdown
from tests.support.local_vault import LocalVault, start_local_vault


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIdentity]:
    """The local identity platform, with this process's managed-identity env pointing at it."""
    with local_managed_identity(monkeypatch) as idp:
        yield idp


@pytest.fixture
def vault(identity: LocalIdentity) -> Iterator[LocalVault]:
    kv = start_local_vault(identity)
    try:
        yield kv
    finally:
        kv.stop()


@pytest.fixture
def cloud(identity: LocalIdentity) -> Cloud:
    """The public cloud with the authority host pointed at the local identity platform."""
    return replace(CLOUDS["public"], authority_host=identity.authority)


def store_for(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud, **kwargs: Any
) -> KeyVaultSecretStore:
    """A Key Vault secret store on the local vault, read with the local managed identity (no SDK
    retries, so a refusal shows at once)."""
    tokens = build_token_provider(
        "vault",
        {"managedIdentity": {}},
        cloud=cloud,
        secrets=EnvSecretStore({}),
        connection_verify=identity.ca_pem_path,
        transport_options={"retry_total": 0},
    )
    return KeyVaultSecretStore(
        vault.url,
        tokens,
        connection_verify=identity.ca_pem_path,
        verify_challenge_resource=False,
        client_options={"retry_total": 0},
        **kwargs,
    )


# --- a scripted managed-identity endpoint ----------------------------------------------------------

ARM_SCOPE = "https://management.azure.com/.default"


class _Scripted(BaseHTTPRequestHandler):
    """An App Service identity endpoint (or the front end before it) answering one scripted
    (status, content type, body)."""

    answer: tuple[int, str, bytes] = (503, "text/html", b"")

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        status, content_type, body = type(self).answer
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def scripted_endpoint(
    identity: LocalIdentity, monkeypatch: pytest.MonkeyPatch
) -> Iterator[type[_Scripted]]:
    """IDENTITY_ENDPOINT pointed at a scripted server (the identity fixture cleared the rest)."""
    handler = type("Scripted", (_Scripted,), {})
    server = serve(handler, tls=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{server[0].server_address[1]}/msi")
    try:
        yield handler
    finally:
        shutdown(*server)


def mi_failure(cloud: Cloud, answer: tuple[int, str, bytes], endpoint: type[_Scripted]) -> Any:
    """The error the function identity's provider raises for one scripted answer."""
    from tests.credentials.test_token_providers import MemoryStore

    endpoint.answer = answer
    tokens = build_token_provider(
        "(function identity)",
        {"managedIdentity": {}},
        cloud=cloud,
        secrets=MemoryStore(),
        transport_options={"retry_total": 0},
    )
    with pytest.raises(SyncError) as caught:
        tokens.token(ARM_SCOPE)
    return caught.value
