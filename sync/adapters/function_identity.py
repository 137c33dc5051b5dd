"""The Function App's own identity, for every caller that signs in as the app itself.

One definition for the composition root (Key Vault, storage, spec sources without a
``credential:``) and for the remote sync map's reader, which runs before the root exists: all of
them sign in where the others do (the managed identity in Azure, DefaultAzureCredential locally).
Nothing is imported here until the first call (cold start).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sync.ports import TokenProvider


def function_identity(cloud: Any) -> TokenProvider:
    """The Function App's own identity (Key Vault, storage, ARM): the user-assigned managed
    identity named by AZURE_CLIENT_ID in Azure; developer credentials (az login...) locally,
    signing in at the cloud's authority host once the URL guard of SYNC_ALLOW_PRIVATE_HOSTS
    let it through."""
    from sync.adapters.credentials import build_token_provider
    from sync.adapters.secrets_env import EnvSecretStore
    from sync.adapters.urlguard import UrlGuard
    from sync.settings import Settings

    guard: UrlGuard | None = None  # the managed identity never talks to the authority
    if os.environ.get("IDENTITY_ENDPOINT") or os.environ.get("MSI_ENDPOINT"):
        client_id = os.environ.get("AZURE_CLIENT_ID")
        spec: dict[str, Any] = {"managedIdentity": {"clientId": client_id} if client_id else {}}
    else:
        spec = {"default": {}}
        guard = UrlGuard(Settings.from_env(os.environ).allow_private_hosts)
    return build_token_provider(
        "function-identity", spec, cloud=cloud, secrets=EnvSecretStore(os.environ), guard=guard
    )
