"""Fixtures: the local Entra authority + managed-identity endpoint, and the local Key Vault.

Both servers start on port 0 per test (cheap: the CA and signing key are made once per process)
so a test's recorded requests and registered apps never leak into another test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from sync.adapters.credentials import build_token_provider
from sync.adapters.keyvault import KeyVaultSecretStore
from sync.adapters.secrets_env import EnvSecretStore
from sync.clouds import CLOUDS, Cloud
from tests.support.identity_env import local_managed_identity
from tests.support.local_identity import LocalIdentity
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
