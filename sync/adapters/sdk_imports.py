"""The Azure SDKs a sync loads on first use, imported ahead of it on one thread.

Each adapter imports its SDK only when first used, so a cold start pays for nothing it does not
use. In the first sync of a process those first uses came from several threads at once: the run
row's write imported the Tables SDK while the connector read imported azure-identity and the
item's own thread imported what it needed. Imports are CPU-bound and hold the GIL, so the threads
mostly waited for one another, and handing the GIL over cost CPU of its own. Imported here first,
one after another, the same modules made ``python -m sync run`` ~33 ms faster and ~40 ms cheaper
in CPU (40 interleaved pairs; docs/benchmarks.md, the pass of 2026-12-06 09:15).

Only what the sync will use is imported: nothing for a ledger without storage settings, and
nothing for targets whose credentials do not go through azure-identity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sync.adapters.storage_clients import (
    environment_credential_configured as storage_signs_in_first,
)
from sync.config import SyncMap
from sync.settings import Settings


def _tables() -> None:
    import azure.data.tables  # noqa: F401

    from sync.adapters.sdk_transport import import_transport

    import_transport()


def _identity() -> None:
    import azure.identity  # noqa: F401
    from azure.core.pipeline.transport import RequestsTransport  # noqa: F401


# What each SDK's first use imports. The Tables clients send through the transport
# sdk_transport picks (httpx's, or requests'); azure-identity's credentials through requests'.
SDKS: dict[str, Callable[[], None]] = {"tables": _tables, "identity": _identity}

# Credential kinds whose tokens come without azure-identity (sync.adapters.credentials).
_OWN_GRANTS = frozenset({"delegated"})


def needed(settings: Settings, sync_map: SyncMap, apis: Iterable[str]) -> list[str]:
    """The SDKs (keys of ``SDKS``) a sync of ``apis`` uses as the composition root wires it. An
    API the map does not have adds nothing: the sync refuses it in its own terms."""
    storage = bool(settings.storage_connection_string or settings.table_endpoint)
    # a ledger reached by endpoint signs in with the app's identity (storage_clients), through
    # azure-identity unless the platform serves it (app_service_identity)
    identity = (
        storage
        and not settings.storage_connection_string
        and (_via_identity(sync_map, None) or storage_signs_in_first())
    )
    for name in apis:
        api = sync_map.apis.get(name)
        if api is None:
            continue
        if api.spec_kind != "url" and isinstance(api.spec, dict):  # an ARM export or a blob
            identity = identity or _via_identity(sync_map, api.spec.get("credential"))
        for target in api.targets:
            if target.kind != "folder" and isinstance(target.params, dict):
                identity = identity or _via_identity(sync_map, target.params.get("credential"))
    return (["tables"] if storage else []) + (["identity"] if identity else [])


def _via_identity(sync_map: SyncMap, credential: object) -> bool:
    """Whether the map's credential ``credential`` (None: the function's own identity) gets its
    tokens through azure-identity. A managed identity the platform serves at IDENTITY_ENDPOINT
    does not (``sync.adapters.app_service_identity``); the function's own identity is one there."""
    from sync.adapters import app_service_identity

    if credential is None:
        return not app_service_identity.serves()
    spec = sync_map.credentials.get(str(credential))
    kind = next(iter(spec), None) if isinstance(spec, dict) and spec else None
    if kind == "managedIdentity":
        return not app_service_identity.serves()
    return kind not in _OWN_GRANTS


def import_sdks(names: Iterable[str]) -> None:
    """Import the SDKs ``names`` here; once imported, a call costs a few dictionary lookups. One
    that is not installed is left to the adapter that needs it, which reports it in its terms."""
    for name in names:
        try:
            SDKS[name]()
        except ImportError:
            continue
