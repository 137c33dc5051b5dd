"""Fixtures: the local Entra authority + managed-identity endpoint, and the local Key Vault.

Both servers start on port 0 per test (cheap: the CA and signing key are made once per process)
so a test's recorded requests and registered apps never leak into another test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from sync.clouds import CLOUDS, Cloud
from tests.support.local_identity import LocalIdentity, start_local_identity
from tests.support.local_vault import LocalVault, start_local_vault

AZURE_ENV = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
    "IDENTITY_SERVER_THUMBPRINT",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_AUTHORITY_HOST",
    "AZURE_TOKEN_CREDENTIALS",
)


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIdentity]:
    """The local identity platform, with this process's managed-identity env pointing at it."""
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    idp = start_local_identity()
    for key, value in idp.managed_identity_env().items():
        monkeypatch.setenv(key, value)
    try:
        yield idp
    finally:
        idp.stop()


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
