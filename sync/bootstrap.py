"""The composition root: the one place that picks an adapter for every port.

Built lazily on the first invocation in a process (never at import time) and cached per
(settings, sync map) pair, so a warm Functions worker reuses HTTP connections, credentials and
validation caches. Tests and the CLI pass their own ``Settings`` and may override single ports.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, replace
from typing import Any

from sync.adapters.function_identity import function_identity
from sync.config import SyncMap, load_map
from sync.errors import ConfigError
from sync.pipeline import Pipeline
from sync.ports import Ports, SecretStore, Target, TokenProvider
from sync.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Service:
    """Everything a trigger or command needs, wired."""

    settings: Settings
    map: SyncMap
    ports: Ports
    pipeline: Pipeline


def owner_id() -> str:
    """Lease owner: unique per process so two instances never mistake each other's lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


_OWNER = owner_id()


class _Lazy:
    """A port built on first use: a dry run never touches storage it does not need."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._value: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
        return getattr(self._value, name)


def build_secrets(settings: Settings, sync_map: SyncMap) -> SecretStore:
    """Env vars locally (SYNC_SECRETS_FROM_ENV=1), else Key Vault with the function identity."""
    from sync.adapters.secrets_env import secret_store_for
    from sync.clouds import cloud_for

    cloud = cloud_for(sync_map.cloud, sync_map.endpoints)
    return secret_store_for(settings, os.environ, lambda: function_identity(cloud))


def build_ledger(settings: Settings) -> Any:
    if not (settings.storage_connection_string or settings.table_endpoint):
        raise ConfigError(
            "no ledger storage: set SYNC_STORAGE_CONNECTION_STRING (local) or SYNC_TABLE_ENDPOINT",
            path="SYNC_TABLE_ENDPOINT",
        )
    from sync.adapters.ledger_tables import TableLedger

    return TableLedger.from_settings(settings)


def build_queue(settings: Settings) -> Any:
    if not (settings.storage_connection_string or settings.queue_endpoint):
        raise ConfigError(
            "no work queue: set SYNC_STORAGE_CONNECTION_STRING (local) or SYNC_QUEUE_ENDPOINT",
            path="SYNC_QUEUE_ENDPOINT",
        )
    from sync.adapters.queue_storage import StorageWorkQueue

    return StorageWorkQueue.from_settings(settings)


def build_notifier(settings: Settings, sync_map: SyncMap, secrets: SecretStore) -> Any:
    from sync.clouds import cloud_for

    portal = cloud_for(sync_map.cloud, sync_map.endpoints).maker_portal
    teams = sync_map.notify.get("teams")
    if teams:
        from sync.adapters.keyvault import resolve_ref
        from sync.adapters.teams import TeamsWebhookNotifier
        from sync.adapters.urlguard import guarded_client

        ref = teams["webhook"]
        return TeamsWebhookNotifier(
            webhook_url_provider=lambda: resolve_ref(ref, secrets),
            client=guarded_client(settings),
            maker_portal=portal,
        )
    from sync.adapters.file_notifier import FileNotifier

    path = settings.notify_file or sync_map.notify.get("file")
    return FileNotifier(str(sync_map.resolve(path)) if path else None, maker_portal=portal)


def _connector_id_reader(ledger: Any, api: str, name: str) -> Any:
    """What a Power Platform target calls to learn its recorded connector id.

    It holds the ledger, never the factory: a lambda over ``self`` closed the cycle factory ->
    target -> lambda -> factory, and after ``sync.collector.settle`` froze the first Service
    (``gc.freeze``), a Service replaced by a map reload could then never be collected, with its
    HTTP connection pool, token providers and ledger. Without the cycle, plain reference counting
    frees it once the last item using it is done.
    """
    return lambda: ledger.state(api, name).connector_id


class TargetFactory:
    """Builds (and caches) the target adapter for an (API, target) pair of the map."""

    def __init__(
        self, settings: Settings, sync_map: SyncMap, secrets: SecretStore, ledger: Any
    ) -> None:
        self.settings = settings
        self.map = sync_map
        self.secrets = secrets
        self.ledger = ledger
        self._tokens: dict[str, TokenProvider] = {}
        self._targets: dict[tuple[str, str], Target] = {}
        self._client: Any = None
        self._accepted: Any = None
        self._lock = threading.RLock()  # _build calls tokens() and client() under it

    def tokens(self, credential: str) -> TokenProvider:
        with self._lock:
            if credential not in self._tokens:
                from sync.adapters.credentials import build_token_provider
                from sync.adapters.urlguard import UrlGuard

                self._tokens[credential] = build_token_provider(
                    credential,
                    self.map.credentials[credential],
                    cloud=self.cloud,
                    secrets=self.secrets,
                    guard=UrlGuard(self.settings.allow_private_hosts),
                )
            return self._tokens[credential]

    @property
    def cloud(self) -> Any:
        from sync.clouds import cloud_for

        return cloud_for(self.map.cloud, self.map.endpoints)

    def accepted(self) -> Any:
        """validateApiSwagger acceptances, one store for every target this factory builds."""
        with self._lock:
            if self._accepted is None:
                from sync.adapters.pp_verdicts import AcceptedDefinitions

                self._accepted = AcceptedDefinitions()
            return self._accepted

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from sync.adapters.urlguard import guarded_client

                self._client = guarded_client(self.settings)
            return self._client

    def __call__(self, api: str, name: str) -> Target:
        """One adapter per (API, target) per process, even when queue invocations race for it."""
        key = (api, name)
        with self._lock:
            if key not in self._targets:
                self._targets[key] = self._build(api, name)
            return self._targets[key]

    def _build(self, api: str, name: str) -> Target:
        tcfg = self.map.api(api).target(name)
        if tcfg.kind == "folder":
            from sync.adapters.folder_target import FolderTarget

            return FolderTarget(api=api, name=name, path=self.map.resolve(tcfg.params))  # type: ignore[return-value]
        params = dict(tcfg.params)
        if tcfg.kind == "powerapps":
            from sync.adapters.powerapps import PowerAppsTarget

            return PowerAppsTarget(  # type: ignore[return-value]
                api=api,
                name=name,
                params=params,
                cloud=self.cloud,
                tokens=self.tokens(params["credential"]),
                secrets=self.secrets,
                client=self.client(),
                get_state_connector_id=_connector_id_reader(self.ledger, api, name),
                accepted=self.accepted(),
            )
        from sync.adapters.dataverse import DataverseTarget

        return DataverseTarget(  # type: ignore[return-value]
            api=api,
            name=name,
            params=params,
            cloud=self.cloud,
            tokens=self.tokens(params["credential"]),
            client=self.client(),
            get_state_connector_id=_connector_id_reader(self.ledger, api, name),
        )


def build(settings: Settings, sync_map: SyncMap | None = None, **overrides: Any) -> Service:
    """Wire every port for these settings; ``overrides`` replaces single ports (tests, bench)."""
    sync_map = sync_map or load_map(settings.config_path)
    secrets = overrides.pop("secrets", None) or _Lazy(lambda: build_secrets(settings, sync_map))
    ledger = overrides.pop("ledger", None) or _Lazy(lambda: build_ledger(settings))

    def specs() -> Any:
        from sync.adapters.spec_sources import SpecSources

        return SpecSources(settings, sync_map, secrets=secrets, function_identity=function_identity)

    ports = Ports(
        specs=overrides.pop("specs", None) or _Lazy(specs),
        ledger=ledger,
        queue=overrides.pop("queue", None) or _Lazy(lambda: build_queue(settings)),
        notifier=overrides.pop("notifier", None)
        or _Lazy(lambda: build_notifier(settings, sync_map, secrets)),
        secrets=secrets,
        targets=overrides.pop("targets", None)
        or TargetFactory(settings, sync_map, secrets, ledger),
    )
    if overrides:
        raise TypeError(f"unknown port overrides: {sorted(overrides)}")
    pipeline = Pipeline(sync_map, ports, owner=_OWNER, lease_seconds=settings.lease_seconds)
    return Service(settings=settings, map=sync_map, ports=ports, pipeline=pipeline)


_services: dict[Any, Service] = {}
_services_lock = threading.Lock()


def service(settings: Settings | None = None) -> Service:
    """The process-wide service for the current app settings (what the triggers use)."""
    settings = settings or Settings.from_env()
    sync_map = load_map(settings.config_path)
    key = (settings, id(sync_map))
    with _services_lock:
        cached = _services.get(key)
        if cached is None:
            cached = build(settings, sync_map)
            _services.clear()  # a changed map or settings replaces the old wiring
            _services[key] = cached
        return cached


def with_ports(svc: Service, **ports: Any) -> Service:
    """A copy of a service with some ports replaced (keeps the rest of the wiring)."""
    new_ports = replace(svc.ports, **ports)
    return replace(
        svc,
        ports=new_ports,
        pipeline=Pipeline(
            svc.map, new_ports, owner=_OWNER, lease_seconds=svc.settings.lease_seconds
        ),
    )
