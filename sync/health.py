"""Health: can this deployment do its job right now, and how did each target fare last time?

``GET /api/health`` and ``python -m sync status`` both call ``check_health``. The probes are
deliberately cheap and single-shot (no retries, short timeouts): a health answer that waits out
the SDK's retry policy is slower than the monitor asking it, and "unreachable right now" is
exactly what a health check should say.

Critical checks (a failure answers 503): configuration, ledger table, work queue, Key Vault.
Target checks are informational (ok=false for a failed last outcome, but still 200): one target's
broken spec is not the service being down, and a probe that fails for it would page the wrong
people; the body says ``"status": "degraded"`` instead.

Key Vault is probed WITHOUT a token: an anonymous GET of the secrets list must answer 401 with a
``Bearer`` challenge. That proves DNS, TLS, the network path (firewall, private endpoint) and that
a Key Vault answers there, without reading or even listing any secret, and without making every
probe fetch a token. It does not prove the identity's RBAC; a missing role shows up as a
``SecretError`` naming the vault and secret on the first run that needs the secret.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from sync.errors import ConfigError, SyncError
from sync.logs import redact
from sync.redact import redact_url
from sync.settings import KEY_VAULT_URL

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 5.0
VAULT_API_VERSION = "7.5"
# retry_total=0: one attempt; the timeouts bound a black-holed endpoint
_SDK_OPTIONS: dict[str, Any] = {"retry_total": 0, "connection_timeout": 5, "read_timeout": 5}


@dataclass(frozen=True)
class Check:
    """One probe's answer; ``detail`` holds numbers an operator wants (ages, queue lengths)."""

    name: str
    ok: bool
    reason: str = ""
    critical: bool = True
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "ok": self.ok, "critical": self.critical}
        if self.reason:
            data["reason"] = self.reason
        data.update(self.detail)
        return data


@dataclass(frozen=True)
class HealthReport:
    checks: tuple[Check, ...]
    checked_at: str = field(
        default_factory=lambda: (
            datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        )
    )

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.critical)

    @property
    def status(self) -> str:
        if not self.ok:
            return "unhealthy"
        return "healthy" if all(c.ok for c in self.checks) else "degraded"

    @property
    def http_status(self) -> int:
        return 200 if self.ok else 503

    @property
    def failing(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "checkedAt": self.checked_at,
            "failing": self.failing,
            "checks": [c.to_dict() for c in self.checks],
        }


def config_failure(exc: ConfigError) -> HealthReport:
    """The report when the service cannot even be wired: the one failing part is the config."""
    return HealthReport((Check("config", False, redact(exc.message), detail={"path": exc.path}),))


# --- probes ---------------------------------------------------------------------------------------


def _azure_reason(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None)
    if status:
        return f"HTTP {status} ({code or 'no error code'})"
    return f"unreachable ({type(exc).__name__})"


_CREDENTIAL: list[Any] = []  # one per process: it caches its token until near expiry
_CREDENTIAL_LOCK = threading.Lock()


def _storage_credential(settings: Any) -> Any:
    """The probes' storage credential, made once: a new one per probe fetched a token three
    times per call (the ledger and both queues), ~4,300 a day for a monitor polling each minute
    (found in review on 2026-12-07)."""
    from sync.adapters.ledger_tables import default_credential

    with _CREDENTIAL_LOCK:
        if not _CREDENTIAL:
            _CREDENTIAL.append(default_credential())
        return _CREDENTIAL[0]


def probe_ledger(settings: Any) -> Check:
    """A point read of a row that never exists: 404 ResourceNotFound proves table + auth."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError
    from azure.data.tables import TableClient

    name = "ledger"
    try:
        if settings.storage_connection_string:
            client = TableClient.from_connection_string(
                settings.storage_connection_string,
                table_name=settings.ledger_table,
                **_SDK_OPTIONS,
            )
        elif settings.table_endpoint:
            client = TableClient(
                endpoint=settings.table_endpoint,
                table_name=settings.ledger_table,
                credential=_storage_credential(settings),
                **_SDK_OPTIONS,
            )
        else:
            return Check(
                name, False, "no storage configured", detail={"path": "SYNC_TABLE_ENDPOINT"}
            )
        with client:
            client.get_entity("health", "probe")
    except ResourceNotFoundError as exc:
        if getattr(exc, "error_code", None) == "TableNotFound":
            return Check(name, True, "table not created yet (the first run creates it)")
        return Check(name, True, detail={"table": settings.ledger_table})
    except (AzureError, ValueError) as exc:
        return Check(name, False, _azure_reason(exc), detail={"table": settings.ledger_table})
    return Check(name, True, detail={"table": settings.ledger_table})


def probe_queues(settings: Any) -> Check:
    """Queue properties of the work and poison queues: reachability plus the backlog sizes."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError
    from azure.storage.queue import QueueClient

    name = "queue"
    detail: dict[str, Any] = {"queue": settings.work_queue}
    if not (settings.storage_connection_string or settings.queue_endpoint):
        return Check(name, False, "no storage configured", detail={"path": "SYNC_QUEUE_ENDPOINT"})
    for key, queue in (("queued", settings.work_queue), ("poisoned", settings.poison_queue)):
        try:
            if settings.storage_connection_string:
                client = QueueClient.from_connection_string(
                    settings.storage_connection_string, queue_name=queue, **_SDK_OPTIONS
                )
            else:
                client = QueueClient(
                    account_url=settings.queue_endpoint,
                    queue_name=queue,
                    credential=_storage_credential(settings),
                    **_SDK_OPTIONS,
                )
            with client:
                detail[key] = client.get_queue_properties().approximate_message_count
        except ResourceNotFoundError:
            detail[key] = 0  # created on first send
        except (AzureError, ValueError) as exc:
            return Check(name, False, f"{queue}: {_azure_reason(exc)}", detail=detail)
    return Check(name, True, detail=detail)


def probe_vault(vault_url: str | None, client: httpx.Client | None = None) -> Check:
    """Anonymous GET expecting the 401 Bearer challenge (see the module docstring for why)."""
    name = "keyVault"
    if not vault_url:
        return Check(name, True, "not configured (secrets come from the environment)")
    url = vault_url.rstrip("/") + "/secrets"
    own = client is None
    http = client or httpx.Client(timeout=PROBE_TIMEOUT_SECONDS, follow_redirects=False)
    try:
        response = http.get(url, params={"api-version": VAULT_API_VERSION, "maxresults": "1"})
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeError) as exc:
        # A malformed setting (a bad port, an empty or over-long DNS label that the idna codec
        # refuses, no scheme). InvalidURL and UnicodeError are no httpx.HTTPError, and escaping
        # here turned /api/health into the host's 500. The value is not echoed: a malformed
        # value may be something else pasted into the wrong setting, e.g. a connection string.
        return Check(
            name,
            False,
            f"invalid URL ({type(exc).__name__})",
            detail={"path": KEY_VAULT_URL},
        )
    except httpx.HTTPError as exc:
        return Check(
            name,
            False,
            f"unreachable ({type(exc).__name__})",
            detail={"url": redact_url(vault_url)},
        )
    finally:
        if own:
            http.close()
    challenge = response.headers.get("www-authenticate", "")
    if response.status_code == 401 and challenge.lower().startswith("bearer"):
        return Check(name, True, detail={"url": redact_url(vault_url)})
    return Check(
        name,
        False,
        f"HTTP {response.status_code} without a Bearer challenge: not a Key Vault endpoint?",
        detail={"url": redact_url(vault_url)},
    )


def _age_seconds(timestamp: str | None, now: datetime) -> int | None:
    if not timestamp:
        return None
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return max(int((now - moment).total_seconds()), 0)


def target_checks(svc: Any, now: datetime | None = None) -> list[Check]:
    """Each target's state row: last outcome, its message, the last applied version and its age."""
    now = now or datetime.now(UTC)
    checks: list[Check] = []
    for api_name, api in svc.map.apis.items():
        for target in api.targets:
            name = f"target:{api_name}/{target.name}"
            try:
                state = svc.ports.ledger.state(api_name, target.name)
            except SyncError as exc:
                checks.append(Check(name, False, redact(str(exc)), critical=False))
                continue
            detail = {
                "lastOutcome": state.last_outcome,
                "version": state.version or None,
                "lastSyncedAt": state.last_synced_at,
                "ageSeconds": _age_seconds(state.last_synced_at, now),
                "lastRunId": state.last_run_id,
            }
            failed = state.last_outcome == "failed"
            reason = (
                redact(state.last_message or "")
                if state.last_outcome in ("failed", "blocked")
                else ""
            )
            if state.last_outcome is None:
                reason = "never synced"
            checks.append(Check(name, not failed, reason[:500], critical=False, detail=detail))
    return checks


def _guarded(name: str, probe: Callable[[], list[Check]], *, critical: bool = True) -> list[Check]:
    """``probe()``, or one failed check named ``name`` if it raises anything unexpected.

    A diagnostic endpoint must always answer: an exception no probe foresaw (an SDK's new error
    type, a bug) used to escape ``check_health`` and give the host's bare 500, hiding which part
    broke and what the other parts said. The reason names only the exception type (its message may
    carry a URL or a key); the log line has the redacted traceback.
    """
    try:
        return probe()
    except Exception as exc:
        log.exception("health: the %s probe failed unexpectedly", name)
        return [Check(name, False, f"probe failed ({type(exc).__name__})", critical=critical)]


def check_health(
    svc: Any, *, vault_client: httpx.Client | None = None, now: datetime | None = None
) -> HealthReport:
    """Probe every part; ``svc`` is a wired ``sync.bootstrap.Service`` (so the map is valid).
    Each probe is guarded (``_guarded``): one that raises is its own failed check, not a 500."""
    settings = svc.settings
    targets_total = sum(len(a.targets) for a in svc.map.apis.values())
    checks = [
        Check(
            "config",
            True,
            detail={"source": svc.map.source, "apis": len(svc.map.apis), "targets": targets_total},
        ),
        *_guarded("ledger", lambda: [probe_ledger(settings)]),
        *_guarded("queue", lambda: [probe_queues(settings)]),
        *_guarded("keyVault", lambda: [probe_vault(settings.key_vault_url, vault_client)]),
    ]
    if checks[1].ok:  # the state rows live in the ledger; skip them when it is down
        # informational like each target's check: a broken state reader degrades, never 503s
        checks.extend(_guarded("targets", lambda: target_checks(svc, now), critical=False))
    report = HealthReport(tuple(checks))
    if not report.ok:
        log.warning(
            "health check failing: %s", ", ".join(report.failing), extra={"outcome": "unhealthy"}
        )
    return report


def health_report(svc_factory: Callable[[], Any]) -> HealthReport:
    """Wire the service and probe it; a broken map or app setting is a failing config check."""
    try:
        svc = svc_factory()
    except ConfigError as exc:
        log.error("health: configuration error: %s", exc)
        return config_failure(exc)
    return check_health(svc)


def health_response(svc_factory: Callable[[], Any]) -> Any:
    """The ``GET /api/health`` answer: 200 healthy/degraded, 503 with the failing parts.

    A broken configuration answers 503 (not the 500 other routes give): monitors and load
    balancers read a health endpoint by status, and "this instance cannot work" is a 503; the body
    still names the key path.
    """
    from sync.http_api import ApiResponse
    from sync.logs import install

    install()
    report = health_report(svc_factory)
    headers = {"Cache-Control": "no-store"}
    if not report.ok:
        headers["Retry-After"] = "30"
    return ApiResponse(report.http_status, report.to_dict(), headers)
