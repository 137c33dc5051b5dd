"""Token providers for the sync map's ``credentials:`` block, built on azure-identity.

Why a wrapper around azure-identity instead of handing its credentials around:

* one cache in front of every kind (5-minute margin, per scope, thread-safe), so a second call in
  the same run costs no request and no MSAL work, whatever the kind;
* the delegated kind (a user's refresh token kept in Key Vault) is not an azure-identity
  credential at all: it is a plain refresh-token grant, and it must write the rotated refresh
  token back to the vault or the stored one eventually expires;
* errors come out as ``PermanentError`` / ``TransientError`` naming the credential and its kind,
  with every secret we loaded scrubbed from the message, so the pipeline's retry rules apply and
  nothing secret reaches a log or a Teams card.

azure-identity costs ~300 ms to import (msal + azure.core): it is imported inside the factories,
on the first ``token()`` call, never at module import. A managed identity on App Service (a
Function App) does not import it at all: ``sync.adapters.app_service_identity`` sends the one GET.

The returned provider also implements azure-core's ``TokenCredential.get_token`` so the Key Vault
and Storage SDK clients can use it directly.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from sync.adapters.http import (
    TOKEN_RETRIES,
    TRANSIENT_STATUSES,
    Retries,
    default_timeout,
    json_or_none,
    send_retried,
)
from sync.adapters.keyvault import secret_name_of
from sync.clouds import CLOUDS, Cloud
from sync.errors import (
    ConfigError,
    PermanentError,
    SecretError,
    SyncError,
    TransientError,
    UnsafeUrlError,
)
from sync.logs import RecentSecrets
from sync.ports import SecretStore, TokenProvider
from sync.redact import redact_url

if TYPE_CHECKING:
    from sync.adapters.urlguard import UrlGuard

log = logging.getLogger(__name__)

KINDS = ("managedIdentity", "federated", "servicePrincipal", "delegated", "default")
TOKEN_EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"  # noqa: S105 - a scope
REFRESH_MARGIN_SECONDS = 300.0
# The longest a token is kept, whatever lifetime its answer claims: Entra's access tokens live
# 60-90 minutes and managed-identity tokens up to 24 h, so only a wrong answer (expires_in in
# seconds mistaken for milliseconds, a proxy's invention) claims more; kept as claimed, it would
# be used for years, long after it was revoked.
MAX_TOKEN_SECONDS = 24 * 3600.0
# Slack before a claim counts as too long: a managed-identity token of exactly 24 h, met by a
# clock a few seconds off, must not be cut (with a warning) or cost its credential every day.
CLAIM_SLACK_SECONDS = 3600.0
KNOWN_AUTHORITY_HOSTS = frozenset(c.authority_host.rstrip("/") for c in CLOUDS.values())
_AADSTS = re.compile(r"AADSTS\d+")
# MSAL-backed errors carry the status only in text: "HTTP Error: 503" (token endpoint) or
# "Token request error: (invalid_scope) 503, ..." (App Service managed identity).
_HTTP_STATUS = re.compile(r"(?:HTTP Error: |Token request error: \(\w+\) )(\d{3})\b")
# App Service managed identity (MSAL): an answer that is JSON but carries no ``statusCode`` comes
# out as "Token request error: (invalid_scope) None, <message>". The identity endpoint itself always
# sends statusCode with its refusals, so a status-less answer came from something in front of it
# (a 429 or 5xx page of the platform's front end) or was no answer at all.
_NO_STATUS = re.compile(r"Token request error: \(\w+\) None\b")

# (token, expires_on epoch seconds)
Fetch = Callable[[str], tuple[str, float]]


@dataclass(frozen=True)
class AccessTokenInfo:
    token: str
    expires_on: float


class _Scrubber:
    """The secret values this credential loaded, to cut them out of error text.

    One slot per secret it reads and per scope it redeems an access token for; each keeps its last
    two values (``sync.logs.RecentSecrets``). Remembering every value ever loaded grew without
    bound on a delegated credential (a new refresh token and access token every hour); the newest
    two cover the value in use and the one it replaced, which an error may still quote.
    """

    def __init__(self) -> None:
        self._values = RecentSecrets(min_length=4)

    def remember(self, value: str, *, slot: str = "") -> str:
        """Keep ``value`` as the newest of ``slot`` (a secret name, ``access:<scope>``)."""
        self._values.remember(slot, value)
        return value

    def __call__(self, text: str) -> str:
        return self._values.scrub(text, "***")


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit] + "..."


def _status_of(exc: Exception) -> int | None:
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if status is None and response is not None:
        status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status
    # MSAL-backed credentials raise without a response; the status is only in the text.
    found = _HTTP_STATUS.search(str(exc))
    return int(found.group(1)) if found else None


def translate_error(
    exc: Exception, *, name: str, kind: str, scrub: Callable[[str], str]
) -> SyncError:
    """An azure-identity / azure-core failure as the service's error tree (message scrubbed)."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        ServiceRequestError,
        ServiceResponseError,
    )

    where = f"credential {name!r} ({kind})"
    detail = scrub(_first_line(str(exc)))
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return TransientError(
            f"cannot reach the token endpoint: {type(exc).__name__}: {detail}", where=where
        )
    if isinstance(exc, json.JSONDecodeError):
        # MSAL's managed-identity calls let the JSON parse of the answer escape: a body that is
        # not JSON is a front end's error page (503 HTML) or an empty 500, never the identity
        # endpoint's verdict. Its message names a position, not the body.
        return TransientError(
            f"the token endpoint answered something that is not JSON ({detail})", where=where
        )
    status = _status_of(exc)
    if status is not None and status in TRANSIENT_STATUSES:
        return TransientError(f"token endpoint answered HTTP {status}: {detail}", where=where)
    if isinstance(exc, ClientAuthenticationError):
        from azure.identity import CredentialUnavailableError

        if isinstance(exc, CredentialUnavailableError):
            if _NO_STATUS.search(str(exc)) and not _AADSTS.search(str(exc)):
                return TransientError(
                    f"the token endpoint answered without a status (a front end's 429/5xx?): "
                    f"{detail}",
                    where=where,
                )
            return PermanentError(f"credential unavailable: {detail}", where=where)
        codes = ", ".join(dict.fromkeys(_AADSTS.findall(str(exc)))) or "no AADSTS code"
        return PermanentError(f"the tenant refused the credential ({codes}): {detail}", where=where)
    if isinstance(exc, AzureError):
        return TransientError(f"{type(exc).__name__}: {detail}", where=where)
    return PermanentError(f"{type(exc).__name__}: {detail}", where=where)


class CachedTokenProvider:
    """``TokenProvider`` (+ azure-core ``get_token``) caching each scope until near expiry."""

    def __init__(
        self,
        name: str,
        kind: str,
        fetch: Fetch,
        *,
        scrub: Callable[[str], str] = lambda text: text,
        clock: Callable[[], float] = time.time,
        margin: float = REFRESH_MARGIN_SECONDS,
    ) -> None:
        self.name = name
        self.kind = kind
        self._fetch = fetch
        self._scrub = scrub
        self._clock = clock
        self._margin = margin
        self._cache: dict[str, tuple[AccessTokenInfo, float]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __repr__(self) -> str:  # never show a token
        return f"CachedTokenProvider(name={self.name!r}, kind={self.kind!r})"

    def _lock_for(self, scope: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(scope, threading.Lock())

    def _fresh(self, scope: str) -> AccessTokenInfo | None:
        hit = self._cache.get(scope)
        if hit and self._clock() < hit[1]:
            return hit[0]
        return None

    def access_token(self, scope: str) -> AccessTokenInfo:
        if not scope or not isinstance(scope, str):
            raise ConfigError(f"credential {self.name!r}: empty token scope")
        cached = self._fresh(scope)
        if cached:
            return cached
        with self._lock_for(scope):  # one fetch per scope at a time; others wait and reuse it
            cached = self._fresh(scope)
            if cached:
                return cached
            try:
                token, expires_on = self._fetch(scope)
            except SyncError:
                raise
            except Exception as exc:
                raise translate_error(
                    exc, name=self.name, kind=self.kind, scrub=self._scrub
                ) from None
            now = self._clock()
            expires_on = float(expires_on)
            if expires_on <= now:
                # A negative (or zero) expires_in: the token is used for this call as it came and
                # not kept, so the next call asks again, once. No loop asking until a good answer
                # comes, and a warning, so an endpoint that always answers so is seen.
                self._cache.pop(scope, None)
                log.warning(
                    "credential %s (%s): the token for %s arrived already expired (%.0f s ago); "
                    "not cached",
                    self.name,
                    self.kind,
                    scope,
                    now - expires_on,
                )
                return AccessTokenInfo(token, expires_on)
            if expires_on - now > MAX_TOKEN_SECONDS + CLAIM_SLACK_SECONDS:
                log.warning(
                    "credential %s (%s): the token for %s claims %.0f s of life; kept %.0f s",
                    self.name,
                    self.kind,
                    scope,
                    expires_on - now,
                    MAX_TOKEN_SECONDS,
                )
                expires_on = now + MAX_TOKEN_SECONDS
            # Refresh 5 minutes early, or half-way for tokens that live less than 10 minutes.
            refresh_at = expires_on - min(self._margin, (expires_on - now) / 2)
            info = AccessTokenInfo(token, expires_on)
            self._cache[scope] = (info, refresh_at)
            log.debug("credential %s (%s): new token for %s", self.name, self.kind, scope)
            return info

    def token(self, scope: str) -> str:
        return self.access_token(scope).token

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> Any:
        """azure-core ``TokenCredential``: the SDK clients call this (tenant hints are ignored:
        a credential is bound to its configured tenant)."""
        from azure.core.credentials import AccessToken

        if len(scopes) != 1:
            raise ConfigError(f"credential {self.name!r}: expected exactly one scope, got {scopes}")
        info = self.access_token(scopes[0])
        return AccessToken(info.token, int(info.expires_on))


# --- kinds ---------------------------------------------------------------------------------------


def vet_authority(cloud: Cloud, guard: UrlGuard | None, *, what: str, where: str) -> None:
    """Refuse to send ``what`` (a client secret, a refresh token, an assertion) to the cloud's
    authority host unless it is https and the URL guard lets it through.

    The host may come from the sync map (``endpoints.authorityHost``), and token requests do not
    go through ``guarded_client``: azure-identity sends them with its own transport, so a map
    naming loopback, the metadata endpoint or a private address would hand the credential to
    whatever listens there. Checked when a token is about to be requested, never at import or
    map load (the check resolves the name). The clouds' own hosts (``KNOWN_AUTHORITY_HOSTS``)
    are hard-coded, so they are not looked up here. Plain http is refused even for a host in
    SYNC_ALLOW_PRIVATE_HOSTS: the request carries a secret, and azure-identity refuses an
    http authority anyway.
    """
    from sync.adapters.urlguard import UrlGuard

    host = cloud.authority_host.rstrip("/")
    if host in KNOWN_AUTHORITY_HOSTS:
        return
    shown = redact_url(host)
    try:
        plain = httpx.URL(host).scheme.lower() == "http"
    except (httpx.InvalidURL, TypeError, ValueError):
        plain = False  # the guard names what is wrong with it
    if plain:
        raise UnsafeUrlError(
            f"refusing to send {what} over plain http to {shown}; endpoints.authorityHost must "
            "be an https:// URL",
            where=where,
        )
    try:
        (guard or UrlGuard()).check(host)  # other schemes, user@, private addresses
    except UnsafeUrlError as exc:
        raise UnsafeUrlError(
            f"refusing to send {what} to endpoints.authorityHost {shown}: {exc.message}",
            where=where,
        ) from None
    except TransientError as exc:  # the name does not resolve (now): retried like the request
        raise TransientError(
            f"endpoints.authorityHost {shown}: {exc.message}", where=where
        ) from None


def _vetted(fetch: Fetch, vet: Callable[[], None]) -> Fetch:
    """``fetch`` after ``vet`` (``vet_authority``) on every call, so the check comes before the
    secret is read from the vault and before azure-identity sends anything."""

    def checked(scope: str) -> tuple[str, float]:
        vet()
        return fetch(scope)

    return checked


def _authority_kwargs(cloud: Cloud) -> dict[str, Any]:
    host = cloud.authority_host.rstrip("/")
    kwargs: dict[str, Any] = {"authority": host}
    if host not in KNOWN_AUTHORITY_HOSTS:
        kwargs["disable_instance_discovery"] = True  # MSAL would ask login.microsoftonline.com
    return kwargs


def _transport(connection_verify: str | None, options: Mapping[str, Any] | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(options or {})
    if connection_verify:
        kwargs["connection_verify"] = connection_verify
    return kwargs


def _from_credential(factory: Callable[[], Any]) -> Fetch:
    """Build the azure-identity credential on first use (lazy import), then reuse it.

    A credential that handed out a token claiming more than ``MAX_TOKEN_SECONDS`` (and the slack)
    is let go: its own cache (MSAL's) would hand the same token back for as long as it claims,
    so the fetch after ours expires it starts from a new credential instead."""
    holder: list[Any] = []
    lock = threading.Lock()

    def fetch(scope: str) -> tuple[str, float]:
        with lock:
            if not holder:
                holder.append(factory())
            credential = holder[0]
        access = credential.get_token(scope)
        expires_on = float(access.expires_on)
        if expires_on - time.time() > MAX_TOKEN_SECONDS + CLAIM_SLACK_SECONDS:
            with lock:
                if holder and holder[0] is credential:
                    holder.clear()
        return access.token, expires_on

    return fetch


def _managed_identity(
    name: str,
    client_id: str | None,
    scrubber: _Scrubber,
    *,
    attempts: int,
    wait_initial: float,
    fallback: Fetch,
) -> Fetch:
    """The App Service protocol over httpx where the platform serves it
    (``sync.adapters.app_service_identity``), azure-identity everywhere else. Picked at the first
    token, from the environment then, as azure-identity picks when its credential is built."""
    chosen: list[Fetch] = []
    lock = threading.Lock()

    def fetch(scope: str) -> tuple[str, float]:
        with lock:
            if not chosen:
                from sync.adapters import app_service_identity

                if app_service_identity.serves():
                    chosen.append(
                        app_service_identity.AppServiceIdentity(
                            where=f"credential {name!r} (managedIdentity)",
                            client_id=client_id,
                            remember=lambda value, slot: scrubber.remember(value, slot=slot),
                            scrub=scrubber,
                            retries=TOKEN_RETRIES._replace(
                                attempts=attempts, wait_initial=wait_initial
                            ),
                        )
                    )
                else:
                    chosen.append(fallback)
        return chosen[0](scope)

    return fetch


def _certificate_bytes(value: str, *, where: str) -> bytes:
    """PEM (key + cert) as text, or a base64 PKCS#12 blob as Key Vault serves certificates."""
    if "-----BEGIN" in value:
        return value.encode("utf-8")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise SecretError(
            "certificate secret is neither PEM nor base64 PKCS#12", where=where
        ) from None


class RefreshTokenGrant:
    """The delegated kind: a user's refresh token from the vault, redeemed with a plain form POST.

    httpx rather than MSAL's ``acquire_token_by_refresh_token`` because: MSAL documents that call
    for migrating tokens only, keeps the rotated refresh token inside its own cache where we would
    have to dig it out, needs the OIDC metadata round-trip first, and its requests transport would
    bypass the shared retry policy (``sync.adapters.http``). The grant itself is one documented
    POST; rotation is then explicit: when the answer carries a new refresh token it is written back
    to the vault. Entra keeps the previous refresh token valid after redemption, so two instances
    racing on rotation both succeed and either token works.

    The write-back never replaces a token someone else stored: before writing, the secret is read
    again past the store's cache, and the rotated token is written only when the vault still holds
    the token just redeemed or the one this process last saw there. Anything else was stored by
    ``credential init`` (perhaps for another account) or by another instance: that token is
    adopted and redeemed at once, so the next access token is the vault's account, and the
    rotated one is dropped. Key Vault has no conditional write, so a store landing between the
    read and the write can still lose; the window is one round trip, not the hours it was.

    The endpoint must be https: the form carries the refresh token, and azure-identity refuses a
    plain-http authority for every other kind too. Its host must pass the URL guard
    (``vet_authority``, before the vault is read) and the POST goes through the guarded client,
    which connects to the address the guard vetted.
    """

    def __init__(
        self,
        name: str,
        *,
        tenant: str,
        client_id: str,
        secret_name: str,
        cloud: Cloud,
        secrets: SecretStore,
        scrubber: _Scrubber,
        connection_verify: str | None = None,
        guard: UrlGuard | None = None,
        timeout_seconds: float = 15.0,
        budget_seconds: float = 30.0,
        attempts: int = 3,
        wait_initial: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from sync.adapters.urlguard import UrlGuard

        self.name = name
        self.tenant = tenant
        self.client_id = client_id
        self.secret_name = secret_name
        self.endpoint = f"{cloud.authority_host.rstrip('/')}/{tenant}/oauth2/v2.0/token"
        self._cloud = cloud
        self._guard = guard or UrlGuard()
        self._secrets = secrets
        self._scrub = scrubber
        self._verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=connection_verify) if connection_verify else True
        )
        self._timeout = default_timeout(timeout_seconds)
        self._retries = Retries(budget_seconds, attempts, wait_initial)
        self._clock = clock
        self._current: str | None = None
        # The value this process last read from or wrote to the secret: the vault still holding
        # it means nobody else stored a token since, so a rotated one may replace it.
        self._seen_in_store: str | None = None
        self._lock = threading.Lock()
        self._warned_readonly = False

    @property
    def where(self) -> str:
        return f"credential {self.name!r} (delegated)"

    def __call__(self, scope: str) -> tuple[str, float]:
        vet_authority(
            self._cloud,
            self._guard,
            what=f"the refresh token from kv:{self.secret_name}",
            where=self.where,
        )
        with self._lock:
            from_store = False
            if self._current is None:
                self._current = self._seen_in_store = self._read_store()
                from_store = True
            try:
                body = self._redeem(self._current, scope)
            except PermanentError:
                if from_store:
                    raise
                # Our in-memory token may be older than the vault's (another instance rotated
                # it and ours was revoked, or `credential init` stored a new one): try the stored
                # one once before giving up. Past the cache, which holds what we wrote.
                stored = self._read_store(fresh=True)
                if stored == self._current:
                    raise
                self._current = self._seen_in_store = stored
                body = self._redeem(stored, scope)
            if self._rotate(body.get("refresh_token"), redeemed=self._current):
                # The vault's token may be another account's (credential init switched it): the
                # access token just redeemed from ours must not be handed out for an hour.
                adopted = self._current
                body = self._redeem(adopted, scope)
                self._rotate(body.get("refresh_token"), redeemed=adopted)
            return body["access_token"], self._clock() + body["expires_in"]

    def _read_store(self, *, fresh: bool = False) -> str:
        """The stored refresh token; ``fresh`` drops the store's cached copy first (Key Vault
        caches 5 minutes, and what another process stored meanwhile is what matters here)."""
        if fresh:
            forget = getattr(self._secrets, "forget", None)
            if callable(forget):
                forget(self.secret_name)
        return self._scrub.remember(self._secrets.get(self.secret_name), slot=self.secret_name)

    def _redeem(self, refresh_token: str, scope: str) -> dict[str, Any]:
        form = {
            "client_id": self.client_id,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "scope": f"{scope} offline_access",
        }

        def send() -> httpx.Response:
            from sync.adapters.urlguard import client_for_guard

            with client_for_guard(
                self._guard, timeout=self._timeout, verify=self._verify
            ) as client:
                return client.post(self.endpoint, data=form)

        response = send_retried(
            send,
            where=self.where,
            describe=self._describe,
            retries=self._retries,
        )
        if response.status_code != 200:
            raise PermanentError(
                f"the tenant refused the refresh token from kv:{self.secret_name} "
                f"({self._describe(response)}); sign in again with "
                f"`credential init --credential {self.name} --device-code`",
                where=self.where,
            )
        body = json_or_none(response)
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise PermanentError(
                f"token endpoint {self.endpoint} answered 200 without an access_token",
                where=self.where,
            )
        self._scrub.remember(body["access_token"], slot=f"access:{scope}")
        # JSON allows NaN and Infinity (and 1e400 reads as inf): such an expiry would never let
        # the cache refresh, and int() of it in get_token() is a ValueError out of an SDK client.
        expires_in = body.get("expires_in") or 0
        try:
            seconds = float(expires_in)
        except (TypeError, ValueError):
            seconds = math.nan
        if not math.isfinite(seconds):
            raise PermanentError(
                f"token endpoint {self.endpoint} answered 200 with expires_in {expires_in!r:.40} "
                "that is not a finite number of seconds",
                where=self.where,
            )
        body["expires_in"] = seconds
        return body

    def _describe(self, response: httpx.Response) -> str:
        """Status, OAuth error and AADSTS codes only: the description text is not ours to log.
        A body nested past the recursion limit reads as no JSON: a RecursionError out of here
        (check_transient calls it for a 5xx) would turn a retried outage into a permanent
        failure."""
        body = json_or_none(response)
        error = body.get("error") if isinstance(body, dict) else None
        codes = ""
        if isinstance(body, dict):
            found = _AADSTS.findall(str(body.get("error_description") or ""))
            codes = ", ".join(dict.fromkeys(found))
        parts = [f"HTTP {response.status_code}"]
        if isinstance(error, str):
            parts.append(error)
        if codes:
            parts.append(codes)
        return self._scrub(" ".join(parts))

    def _rotate(self, new_token: Any, *, redeemed: str) -> bool:
        """Keep (and store) the rotated token; or, when the vault now holds a token this
        process neither redeemed nor last saw there, adopt that one instead (True)."""
        if not isinstance(new_token, str) or not new_token or new_token == redeemed:
            return False
        self._scrub.remember(new_token, slot=self.secret_name)  # the stored token's successor
        setter = getattr(self._secrets, "set", None)
        if setter is None:
            self._current = new_token
            if not self._warned_readonly:
                self._warned_readonly = True
                log.warning(
                    "%s: rotated refresh token kept in memory only; secret store %s is read-only",
                    self.where,
                    type(self._secrets).__name__,
                )
            return False
        try:
            stored = self._read_store(fresh=True)
        except SyncError as exc:
            # Not written blind: the rotated token works, and so does the stored one.
            self._current = new_token
            log.warning(
                "%s: rotated refresh token kept in memory; could not re-read secret %s: %s",
                self.where,
                self.secret_name,
                exc,
            )
            return False
        if stored not in (redeemed, self._seen_in_store):
            self._current = self._seen_in_store = stored
            log.info(
                "%s: secret %s holds a refresh token this instance did not store (credential "
                "init or another instance); adopted it, rotated token dropped",
                self.where,
                self.secret_name,
            )
            return True
        self._current = new_token
        try:
            setter(self.secret_name, new_token)
        except SyncError as exc:
            # The new access token is good and the old refresh token stays valid: carry on.
            log.warning("%s: could not store the rotated refresh token: %s", self.where, exc)
        else:
            self._seen_in_store = new_token
            log.info("%s: rotated refresh token stored in secret %s", self.where, self.secret_name)
        return False


def _kind_of(name: str, spec: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    where = f"credentials.{name}"
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(f"a credential has exactly one kind of {list(KINDS)}", path=where)
    kind, params = next(iter(spec.items()))
    if kind not in KINDS:
        raise ConfigError(
            f"unknown credential kind {kind!r}; expected one of {list(KINDS)}", path=where
        )
    if not isinstance(params, Mapping):
        raise ConfigError(f"credential kind {kind!r} needs an object", path=f"{where}.{kind}")
    return kind, params


def _required(params: Mapping[str, Any], key: str, *, where: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"missing {key!r}", path=f"{where}.{key}")
    return value


def _secret_name(ref: Any, *, where: str) -> str:
    try:
        return secret_name_of(ref)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=where) from None


def build_token_provider(
    name: str,
    spec: Mapping[str, Any],
    *,
    cloud: Cloud,
    secrets: SecretStore,
    connection_verify: str | None = None,
    transport_options: Mapping[str, Any] | None = None,
    guard: UrlGuard | None = None,
) -> TokenProvider:
    """A cached ``TokenProvider`` for one entry of the map's ``credentials:`` block.

    ``spec`` is the entry itself (``{"federated": {...}}``). Nothing is fetched and azure-identity
    is not imported until the first ``token()`` call. ``connection_verify`` (a CA bundle path) and
    ``transport_options`` (e.g. ``{"retry_total": 0}``) go to every azure-core pipeline; they
    exist for local simulators and tests. ``guard`` vets the cloud's authority host before every
    kind that sends something to it (all but the managed identity) fetches a token
    (``vet_authority``); pass ``UrlGuard(settings.allow_private_hosts)``: without it no private
    host is exempt.
    """
    kind, params = _kind_of(name, spec)
    where = f"credentials.{name}.{kind}"
    scrubber = _Scrubber()
    transport = _transport(connection_verify, transport_options)
    authority = _authority_kwargs(cloud)
    provider_where = f"credential {name!r} ({kind})"

    def vet(what: str) -> Callable[[], None]:
        return lambda: vet_authority(cloud, guard, what=what, where=provider_where)

    def managed_identity(client_id: str | None) -> Any:
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=client_id, **transport)

    if kind == "managedIdentity":
        client_id = params.get("clientId")
        fetch = _managed_identity(
            name,
            client_id,
            scrubber,
            attempts=int(transport.get("retry_total", 2)) + 1,
            wait_initial=float(transport.get("retry_backoff_factor", 0.5)),
            fallback=_from_credential(lambda: managed_identity(client_id)),
        )
    elif kind == "federated":
        tenant = _required(params, "tenant", where=where)
        app_id = _required(params, "clientId", where=where)
        mi_client_id = params.get("managedIdentityClientId")

        def federated() -> Any:
            from azure.identity import ClientAssertionCredential

            mi = managed_identity(mi_client_id)

            def assertion() -> str:
                # The managed identity's token for the exchange audience IS the client assertion:
                # no secret exists anywhere, and the app may live in another tenant.
                return str(mi.get_token(TOKEN_EXCHANGE_SCOPE).token)

            # AadClient (not MSAL) underneath: no instance discovery to switch off.
            return ClientAssertionCredential(
                tenant, app_id, assertion, authority=authority["authority"], **transport
            )

        fetch = _vetted(_from_credential(federated), vet("the managed identity's client assertion"))
    elif kind == "servicePrincipal":
        tenant = _required(params, "tenant", where=where)
        app_id = _required(params, "clientId", where=where)
        if ("secret" in params) == ("certificate" in params):
            raise ConfigError("give exactly one of 'secret' or 'certificate'", path=where)
        if "secret" in params:
            secret_name = _secret_name(params["secret"], where=f"{where}.secret")

            def client_secret() -> Any:
                from azure.identity import ClientSecretCredential

                value = scrubber.remember(secrets.get(secret_name), slot=secret_name)
                return ClientSecretCredential(tenant, app_id, value, **authority, **transport)

            fetch = _vetted(
                _from_credential(client_secret), vet(f"the client secret from kv:{secret_name}")
            )
        else:
            cert_name = _secret_name(params["certificate"], where=f"{where}.certificate")

            def certificate() -> Any:
                from azure.identity import CertificateCredential

                value = scrubber.remember(secrets.get(cert_name), slot=cert_name)
                data = _certificate_bytes(value, where=f"{where} (kv:{cert_name})")
                try:
                    return CertificateCredential(
                        tenant, app_id, certificate_data=data, **authority, **transport
                    )
                except ValueError:
                    raise SecretError(
                        "certificate secret could not be loaded (expected PEM with a private key "
                        "or PKCS#12 without a password)",
                        where=f"{where} (kv:{cert_name})",
                    ) from None

            fetch = _vetted(
                _from_credential(certificate),
                vet(f"a client assertion signed with the certificate from kv:{cert_name}"),
            )
    elif kind == "delegated":
        fetch = RefreshTokenGrant(
            name,
            tenant=_required(params, "tenant", where=where),
            client_id=_required(params, "clientId", where=where),
            secret_name=_secret_name(params.get("refreshToken"), where=f"{where}.refreshToken"),
            cloud=cloud,
            secrets=secrets,
            scrubber=scrubber,
            connection_verify=connection_verify,
            guard=guard,
            # the azure-core retry knobs, so tests can make the grant's retries small too
            attempts=int(transport.get("retry_total", 2)) + 1,
            wait_initial=float(transport.get("retry_backoff_factor", 0.5)),
        )
    else:  # default

        def default() -> Any:
            from azure.identity import DefaultAzureCredential

            return DefaultAzureCredential(**authority, **transport)

        fetch = _vetted(_from_credential(default), vet("DefaultAzureCredential's credentials"))
    return CachedTokenProvider(name, kind, fetch, scrub=scrubber)
