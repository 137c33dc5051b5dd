"""App settings: every name the code reads, declared once.

The names here are mirrored in the Bicep app settings (``infra/app/function.bicep``); a test keeps
the two lists equal. Values are read from the environment at call time (never at import time) so a
test, the CLI and a Functions worker can each pass their own mapping.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sync.errors import ConfigError

# --- app settings read by ``sync`` (mirrored in Bicep) -------------------------------------------
SYNC_CONFIG = "SYNC_CONFIG"  # path of the sync map (YAML/JSON) inside the package, or a blob URL
STORAGE_CONNECTION_STRING = "SYNC_STORAGE_CONNECTION_STRING"  # local / Azurite only
TABLE_ENDPOINT = "SYNC_TABLE_ENDPOINT"  # identity-based, production
QUEUE_ENDPOINT = "SYNC_QUEUE_ENDPOINT"
BLOB_ENDPOINT = "SYNC_BLOB_ENDPOINT"
LEDGER_TABLE = "SYNC_LEDGER_TABLE"
LEDGER_CONTAINER = "SYNC_LEDGER_CONTAINER"
WORK_QUEUE = "SYNC_WORK_QUEUE"
KEY_VAULT_URL = "SYNC_KEY_VAULT_URL"
FETCH_BUDGET_SECONDS = "SYNC_FETCH_BUDGET_SECONDS"
FETCH_TIMEOUT_SECONDS = "SYNC_FETCH_TIMEOUT_SECONDS"
FETCH_MAX_BYTES = "SYNC_FETCH_MAX_BYTES"
LEASE_SECONDS = "SYNC_LEASE_SECONDS"
DRIFT_SCHEDULE = "SYNC_DRIFT_SCHEDULE"  # read by the host as %SYNC_DRIFT_SCHEDULE%
AUTH_TENANT_ID = "SYNC_AUTH_TENANT_ID"
AUTH_AUDIENCE = "SYNC_AUTH_AUDIENCE"
# Event Grid webhook deliveries to POST /api/sync. "key" (default): the function key only;
# "entra": also Event Grid's own Entra token (app role AzureEventGridSecureWebhookSubscriber);
# "off": refused (deployments that only use the Event Grid trigger)
EVENTGRID_WEBHOOK_AUTH = "SYNC_EVENTGRID_WEBHOOK_AUTH"
LOG_LEVEL = "SYNC_LOG_LEVEL"

# --- local-only settings (never set in Azure) ------------------------------------------------------
ALLOW_PRIVATE_HOSTS = (
    "SYNC_ALLOW_PRIVATE_HOSTS"  # comma list of host[:port] the URL guard lets through
)
SECRETS_FROM_ENV = "SYNC_SECRETS_FROM_ENV"  # "1": secret "x-y" comes from env SYNC_SECRET_X_Y
NOTIFY_FILE = "SYNC_NOTIFY_FILE"  # cards are appended here when no webhook is configured
AUTH_METADATA_URL = "SYNC_AUTH_METADATA_URL"  # override of the OIDC metadata URL (tests)
AUTH_DISABLED = "SYNC_AUTH_DISABLED"  # "1": no token check on writes (never in Azure)
# Set by App Service on every instance and never by `func start`: the two local-only settings
# above are refused where it is set. A platform variable, so not in APP_SETTINGS.
IN_AZURE = "WEBSITE_INSTANCE_ID"

APP_SETTINGS: tuple[str, ...] = (
    SYNC_CONFIG,
    TABLE_ENDPOINT,
    QUEUE_ENDPOINT,
    BLOB_ENDPOINT,
    LEDGER_TABLE,
    LEDGER_CONTAINER,
    WORK_QUEUE,
    KEY_VAULT_URL,
    FETCH_BUDGET_SECONDS,
    FETCH_TIMEOUT_SECONDS,
    FETCH_MAX_BYTES,
    LEASE_SECONDS,
    DRIFT_SCHEDULE,
    AUTH_TENANT_ID,
    AUTH_AUDIENCE,
    EVENTGRID_WEBHOOK_AUTH,
    LOG_LEVEL,
)
LOCAL_SETTINGS: tuple[str, ...] = (
    STORAGE_CONNECTION_STRING,
    ALLOW_PRIVATE_HOSTS,
    SECRETS_FROM_ENV,
    NOTIFY_FILE,
    AUTH_METADATA_URL,
    AUTH_DISABLED,
)

DEFAULT_FETCH_MAX_BYTES = 10 * 1024 * 1024


WEBHOOK_AUTH_MODES = ("key", "entra", "off")  # the first is the default; Bicep @allowed mirrors it


def _choice(raw: str | None, name: str, allowed: tuple[str, ...]) -> str:
    """``raw`` stripped, or ``allowed[0]`` when unset. Exact match only: Bicep's ``@allowed`` is
    case-sensitive, so a value the deployment would refuse is refused here too."""
    value = (raw or "").strip()
    if not value:
        return allowed[0]
    if value not in allowed:
        raise ConfigError(
            f"app setting {name}={value[:64]!r} is not allowed; use one of: {', '.join(allowed)}",
            path=name,
        )
    return value


def _number(env: Mapping[str, str], name: str, default: float, *, whole: bool = False) -> Any:
    """A positive, finite number (an ``int`` when ``whole``). ``float()`` also reads nan and inf
    (and 1e400 as inf), which pass a ``<= 0`` check and break ``int()``: refused here."""
    raw = env.get(name, "").strip()
    if not raw:
        return int(default) if whole else default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"app setting {name}={raw!r} is not a number", path=name) from None
    if not math.isfinite(value):
        raise ConfigError(f"app setting {name}={raw!r} is not a finite number", path=name)
    if whole:
        value = int(value)
    if value <= 0:
        raise ConfigError(f"app setting {name}={raw!r} must be greater than 0", path=name)
    return value


@dataclass(frozen=True)
class Settings:
    """A snapshot of the app settings, taken when a trigger or command starts."""

    config_path: str | None = None
    storage_connection_string: str | None = None
    table_endpoint: str | None = None
    queue_endpoint: str | None = None
    blob_endpoint: str | None = None
    ledger_table: str = "connectorsync"
    ledger_container: str = "connectorsync-ledger"
    work_queue: str = "sync-work"
    key_vault_url: str | None = None
    fetch_budget_seconds: float = 120.0
    fetch_timeout_seconds: float = 15.0
    fetch_max_bytes: int = DEFAULT_FETCH_MAX_BYTES
    lease_seconds: float = 600.0
    auth_tenant_id: str | None = None
    auth_audience: str | None = None
    auth_metadata_url: str | None = None
    auth_disabled: bool = False
    eventgrid_webhook_auth: str = "key"  # one of WEBHOOK_AUTH_MODES, see EVENTGRID_WEBHOOK_AUTH
    allow_private_hosts: frozenset[str] = field(default_factory=frozenset)
    secrets_from_env: bool = False
    notify_file: str | None = None
    log_level: str = "INFO"

    @property
    def poison_queue(self) -> str:
        return f"{self.work_queue}-poison"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        hosts = frozenset(
            h.strip().lower() for h in (text(ALLOW_PRIVATE_HOSTS) or "").split(",") if h.strip()
        )
        if hosts and text(IN_AZURE):
            raise ConfigError(
                f"app setting {ALLOW_PRIVATE_HOSTS} is for local development only and is refused "
                f"in Azure ({IN_AZURE} is set): it lets outbound requests reach loopback and "
                "private addresses; remove it from the Function App's settings",
                path=ALLOW_PRIVATE_HOSTS,
            )
        return cls(
            config_path=text(SYNC_CONFIG),
            storage_connection_string=text(STORAGE_CONNECTION_STRING),
            table_endpoint=text(TABLE_ENDPOINT),
            queue_endpoint=text(QUEUE_ENDPOINT),
            blob_endpoint=text(BLOB_ENDPOINT),
            ledger_table=text(LEDGER_TABLE) or cls.ledger_table,
            ledger_container=text(LEDGER_CONTAINER) or cls.ledger_container,
            work_queue=text(WORK_QUEUE) or cls.work_queue,
            key_vault_url=text(KEY_VAULT_URL),
            fetch_budget_seconds=_number(env, FETCH_BUDGET_SECONDS, cls.fetch_budget_seconds),
            fetch_timeout_seconds=_number(env, FETCH_TIMEOUT_SECONDS, cls.fetch_timeout_seconds),
            fetch_max_bytes=_number(env, FETCH_MAX_BYTES, DEFAULT_FETCH_MAX_BYTES, whole=True),
            lease_seconds=_number(env, LEASE_SECONDS, cls.lease_seconds),
            auth_tenant_id=text(AUTH_TENANT_ID),
            auth_audience=text(AUTH_AUDIENCE),
            auth_metadata_url=text(AUTH_METADATA_URL),
            auth_disabled=text(AUTH_DISABLED) == "1",
            eventgrid_webhook_auth=_choice(
                text(EVENTGRID_WEBHOOK_AUTH), EVENTGRID_WEBHOOK_AUTH, WEBHOOK_AUTH_MODES
            ),
            allow_private_hosts=hosts,
            secrets_from_env=text(SECRETS_FROM_ENV) in {"1", "true", "True", "yes"},
            notify_file=text(NOTIFY_FILE),
            log_level=(text(LOG_LEVEL) or "INFO").upper(),
        )
