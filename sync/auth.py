"""Who may call the mutating HTTP endpoints: an Entra ID bearer token carrying ``Connector.Sync``.

Why in code rather than App Service Authentication: the policy is per route and per body (reads and
dry runs accept the function key alone, a real sync needs a token *and* the key), the caller's
identity must reach the ledger and the card, and the checks must be testable without the host.

What a token must satisfy (all of it, or 401/403):

* ``Authorization: Bearer <jwt>``; tokens anywhere else (query string, body) are never read.
* header ``alg`` is RS256 (``none``, HS256 and every other algorithm are refused before any key is
  looked at, so an HMAC "signed" with the public key cannot pass) and ``kid`` names a key of the
  tenant's JWKS (found through the tenant's OpenID metadata; cached for ``KEYS_TTL_SECONDS`` and
  refreshed once when an unknown ``kid`` shows up, at most every ``UNKNOWN_KID_COOLDOWN_SECONDS`` so
  random kids cannot turn us into a JWKS amplifier);
* signature, ``exp`` and ``nbf`` (``LEEWAY_SECONDS`` of clock skew), ``aud`` one of
  ``SYNC_AUTH_AUDIENCE`` (comma list: app id URI and/or client id), ``iss`` the configured tenant's
  v1 (``https://sts.windows.net/<tid>/``) or v2 (``<authority>/<tid>/v2.0``) issuer, ``tid`` the
  configured tenant;
* ``appid`` (v1) or ``azp`` (v2) present: Entra access tokens always carry one and ID tokens never
  do, so an ID token whose ``aud`` is our client id is not mistaken for an access token;
* ``roles`` contains ``Connector.Sync`` (else 403: the token is fine, the caller lacks the role).
  Event Grid webhook deliveries instead need ``AzureEventGridSecureWebhookSubscriber`` *and*
  ``appid``/``azp`` equal to Event Grid's own application id (else 403).

Failing to reach the key endpoints is a ``TransientError`` (503 + Retry-After), never a 401: a
caller with a good token should retry, not go hunting for a permission problem.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sync import settings as names
from sync.clouds import Cloud
from sync.errors import ConfigError, SyncError, TransientError, UnsafeUrlError
from sync.redact import redact_url
from sync.settings import Settings

log = logging.getLogger(__name__)

ROLE = "Connector.Sync"
EVENT_GRID_ROLE = "AzureEventGridSecureWebhookSubscriber"  # Event Grid's Entra webhook delivery
# Event Grid's first-party application ("Microsoft.EventGrid"): the appid/azp of the tokens it sends.
# The role alone is not enough: whoever creates a subscription also holds it. The id differs per
# cloud (Microsoft's secure webhook delivery scripts); none is published for China.
EVENT_GRID_APP_IDS: dict[str, str] = {
    "public": "4962773b-9cdb-44cf-a8bf-237846a00ab7",
    "usgov": "54316b56-3481-47f9-8f30-0300f5542a7b",  # Azure Government: where sync.clouds puts
    # GCC's Azure resources (its ARM), as for GCC High and DoD
    "usgovhigh": "54316b56-3481-47f9-8f30-0300f5542a7b",
    "dod": "54316b56-3481-47f9-8f30-0300f5542a7b",
}
ALGORITHM = "RS256"
LEEWAY_SECONDS = 120  # Entra recommends tolerating a few minutes of skew; keep it small
KEYS_TTL_SECONDS = 6 * 3600  # Entra rolls keys with weeks of overlap; refresh well inside that
UNKNOWN_KID_COOLDOWN_SECONDS = 60.0
FETCH_BUDGET_SECONDS = 5.0  # the caller is waiting on an HTTP response
FETCH_TIMEOUT_SECONDS = 3.0
MAX_TOKEN_CHARS = 16 * 1024
REALM = "connector-sync"

# v1 issuers are not derived from the authority host (Entra docs, national clouds table).
V1_ISSUER_HOSTS: dict[str, str] = {
    "public": "https://sts.windows.net",
    "usgov": "https://sts.windows.net",
    "usgovhigh": "https://sts.windows.net",
    "dod": "https://sts.windows.net",
    "china": "https://sts.chinacloudapi.cn",
}
_TOKEN68 = re.compile(r"^[A-Za-z0-9\-._~+/]+=*\Z")
_UNSAFE_DESCRIPTION = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


@dataclass(frozen=True)
class Caller:
    """The authenticated principal; only ``label`` (an object id or app id) is ever stored."""

    oid: str | None
    appid: str | None
    name: str | None
    roles: tuple[str, ...]

    @property
    def label(self) -> str:
        if self.oid:
            return f"oid:{self.oid}"
        if self.appid:
            return f"app:{self.appid}"
        return "local:auth-disabled"


LOCAL_CALLER = Caller(oid=None, appid=None, name="local development (auth disabled)", roles=())


class AuthError(SyncError):
    """A refused caller; ``status`` and ``www_authenticate`` are what the HTTP answer carries."""

    status = 401
    code = "Unauthorized"

    def __init__(self, message: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(message)
        self.error = error

    @property
    def www_authenticate(self) -> str:
        parts = [f'Bearer realm="{REALM}"']
        if self.error:  # RFC 6750 3.1: no error code when the request carried no credentials
            description = _UNSAFE_DESCRIPTION.sub("?", self.message)[:300]
            parts.append(f'error="{self.error}"')
            parts.append(f'error_description="{description}"')
        return ", ".join(parts)


class Unauthorized(AuthError):
    """401: no token, a malformed one, or one that fails validation."""


class Forbidden(AuthError):
    """403: a valid token for this app whose caller lacks the required app role (or, where one
    application alone may call, was issued to another)."""

    status = 403
    code = "Forbidden"

    def __init__(self, message: str) -> None:
        super().__init__(message, error="insufficient_scope")


# --- the keys -------------------------------------------------------------------------------------


@dataclass
class _KeySet:
    keys: dict[str, Any]  # kid -> RSA public key
    issuer: str | None
    fetched_at: float
    forced_at: float = float("-inf")


class SigningKeys:
    """The tenant's token-signing keys, per metadata URL, shared by every request of the process.

    ``verify`` is the TLS trust for the fetch (a CA bundle path in tests that use an HTTPS authority).
    """

    def __init__(
        self,
        *,
        ttl: float = KEYS_TTL_SECONDS,
        unknown_kid_cooldown: float = UNKNOWN_KID_COOLDOWN_SECONDS,
        verify: Any = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.unknown_kid_cooldown = unknown_kid_cooldown
        self.verify = verify
        self._clock = clock
        self._sets: dict[str, _KeySet] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()

    def key_for(self, kid: str, metadata_url: str, settings: Settings) -> tuple[Any, str | None]:
        """(public key or None when the tenant has no such kid, the metadata's issuer)."""
        with self._lock:  # one fetch at a time; a cold start's burst waits for the first
            now = self._clock()
            held = self._sets.get(metadata_url)
            if held is None or now - held.fetched_at >= self.ttl:
                try:
                    held = self._store(metadata_url, self._fetch(metadata_url, settings), now)
                except TransientError:
                    if held is None:
                        raise
                    # Retry after the cooldown, not on every request (each fetch holds the lock).
                    held.fetched_at = now - self.ttl + self.unknown_kid_cooldown
                    log.warning("signing keys refresh failed; using the keys fetched earlier")
            if kid not in held.keys and now - held.forced_at >= self.unknown_kid_cooldown:
                log.info("token names unknown signing key %s; refreshing the signing keys", kid)
                held.forced_at = now  # a failed refresh counts too: random kids are no amplifier
                fresh = self._store(metadata_url, self._fetch(metadata_url, settings), now)
                fresh.forced_at = now
                held = fresh
            return held.keys.get(kid), held.issuer

    def _store(self, url: str, fetched: tuple[dict[str, Any], str | None], now: float) -> _KeySet:
        previous = self._sets.get(url)
        keys, issuer = fetched
        held = _KeySet(keys=keys, issuer=issuer, fetched_at=now)
        if previous is not None:
            held.forced_at = previous.forced_at
        self._sets[url] = held
        return held

    def _fetch(self, metadata_url: str, settings: Settings) -> tuple[dict[str, Any], str | None]:
        from sync.adapters.urlguard import guarded_client

        _require_tls(metadata_url, settings, "the OpenID metadata")
        client = guarded_client(settings, timeout=FETCH_TIMEOUT_SECONDS, verify=self.verify)
        try:
            meta = _get_json(client, metadata_url, "OpenID metadata")
            jwks_uri = meta.get("jwks_uri")
            issuer = meta.get("issuer")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise TransientError(
                    "OpenID metadata has no usable jwks_uri", where=_shown(metadata_url)
                )
            _require_tls(jwks_uri, settings, "the signing keys (the metadata's jwks_uri)")
            jwks = _get_json(client, jwks_uri, "signing keys")
        finally:
            client.close()
        keys = _rsa_keys(jwks, where=_shown(jwks_uri))
        log.info("fetched %d token signing keys", len(keys))
        return keys, issuer if isinstance(issuer, str) else None


def _require_tls(url: str, settings: Settings, what: str) -> None:
    """Refuse to read ``what`` over plain http: the keys decide which tokens are accepted, so
    whoever could change them on the path could sign their own. Hosts in SYNC_ALLOW_PRIVATE_HOSTS
    (the local test authority on loopback; refused in Azure) are exempt, as for tokens sent."""
    from sync.adapters.urlguard import tls_or_allowlisted

    if tls_or_allowlisted(url, settings.allow_private_hosts):
        return
    source = names.AUTH_METADATA_URL if settings.auth_metadata_url else "endpoints.authorityHost"
    raise ConfigError(
        f"refusing to read {what} over plain http from {_shown(url)}: the signing keys decide "
        f"which tokens are accepted; {source} must lead to https:// URLs",
        path=source,
    )


def _shown(url: str) -> str:
    return redact_url(url)


def _get_json(client: Any, url: str, what: str) -> dict[str, Any]:
    """GET a JSON object through the shared retry policy; 4xx is configuration, 5xx/network transient."""
    import httpx

    from sync.adapters.http import as_transient, check_transient, with_retries

    where = _shown(url)

    def once() -> httpx.Response:
        response = client.get(url, headers={"Accept": "application/json"})
        return check_transient(response, where=where)

    try:
        response = with_retries(
            once, budget_seconds=FETCH_BUDGET_SECONDS, attempts=3, wait_initial=0.2, wait_max=1.0
        )
    except httpx.HTTPError as exc:
        raise as_transient(exc, where=where) from None
    except UnsafeUrlError as exc:
        raise ConfigError(
            f"{what} URL refused by the outbound URL guard: {exc.message}",
            path=names.AUTH_METADATA_URL,
        ) from None
    if response.status_code != 200:
        raise ConfigError(
            f"{what} at {where} answered HTTP {response.status_code}; check "
            f"{names.AUTH_TENANT_ID} (and {names.AUTH_METADATA_URL} if set)",
            path=names.AUTH_TENANT_ID,
        )
    try:
        data = response.json()
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        raise TransientError(f"{what} is not JSON", where=where) from None
    if not isinstance(data, dict):
        raise TransientError(f"{what} is not a JSON object", where=where)
    return data


def _rsa_keys(jwks: dict[str, Any], *, where: str) -> dict[str, Any]:
    from jwt.algorithms import RSAAlgorithm
    from jwt.exceptions import InvalidKeyError

    keys: dict[str, Any] = {}
    for jwk in jwks.get("keys") or []:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or not jwk.get("kid"):
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        try:
            keys[str(jwk["kid"])] = RSAAlgorithm.from_jwk(json.dumps(jwk))
        except (InvalidKeyError, ValueError, TypeError, KeyError):
            log.warning("skipping unreadable signing key %s from %s", jwk.get("kid"), where)
    if not keys:
        raise TransientError("the JWKS holds no RSA signing key", where=where)
    return keys


_KEYS = SigningKeys()


def reset_key_cache() -> None:
    """Forget every fetched key (tests; a process normally keeps them for ``KEYS_TTL_SECONDS``)."""
    _KEYS.clear()


# --- the request ----------------------------------------------------------------------------------


def is_dry_run_body(body: bytes) -> bool:
    """True only for a JSON object with ``"dryRun": true``: anything unclear needs a token.

    Parsed with the same ``json.loads`` the route uses, so both read the same value (duplicate keys
    included); a body the route would refuse is treated as a write and meets the token check first.
    """
    from sync.http_api import MAX_BODY_BYTES

    if len(body) > MAX_BODY_BYTES:
        return False
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("dryRun") is True


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of the ``Authorization: Bearer`` header (scheme case-insensitive, RFC 7235)."""
    raw = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if raw is None or not raw.strip():
        raise Unauthorized(
            "no Authorization header; send 'Authorization: Bearer <token>'", error=None
        )
    scheme, _, token = raw.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized(
            f"Authorization scheme {scheme[:20]!r} is not accepted; use Bearer",
            error="invalid_request",
        )
    token = token.strip()
    if not token:
        raise Unauthorized("the Bearer credentials are empty", error="invalid_request")
    if len(token) > MAX_TOKEN_CHARS or not _TOKEN68.match(token) or token.count(".") != 2:
        raise Unauthorized("the bearer token is not a JWT")
    return token


def _configured(settings: Settings) -> tuple[str, tuple[str, ...]]:
    if not settings.auth_tenant_id:
        raise ConfigError(
            f"app setting {names.AUTH_TENANT_ID} is not set; mutating endpoints need it to check "
            f"callers (local development only: {names.AUTH_DISABLED}=1)",
            path=names.AUTH_TENANT_ID,
        )
    tenant = settings.auth_tenant_id.strip()
    if not _GUID.match(tenant):
        # a token's tid is the tenant's GUID: a domain name here would refuse every caller
        raise ConfigError(
            f"app setting {names.AUTH_TENANT_ID} must be the tenant's id (a GUID), not {tenant!r}",
            path=names.AUTH_TENANT_ID,
        )
    audiences = tuple(
        # tokens spell GUIDs in lower case; an upper-case setting refused every caller
        a.lower() if _GUID.match(a) else a
        for a in (a.strip() for a in (settings.auth_audience or "").split(","))
        if a
    )
    if not audiences:
        raise ConfigError(
            f"app setting {names.AUTH_AUDIENCE} is not set; give this app's id URI and/or client id",
            path=names.AUTH_AUDIENCE,
        )
    return tenant.lower(), audiences


_GUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
)


def metadata_url(settings: Settings, cloud: Cloud) -> str:
    if settings.auth_metadata_url:
        return settings.auth_metadata_url
    return f"{cloud.authority_host}/{settings.auth_tenant_id}/v2.0/.well-known/openid-configuration"


def accepted_issuers(tenant: str, cloud: Cloud, metadata_issuer: str | None) -> set[str]:
    issuers = {
        f"{V1_ISSUER_HOSTS.get(cloud.name, V1_ISSUER_HOSTS['public'])}/{tenant}/",
        f"{cloud.authority_host.rstrip('/')}/{tenant}/v2.0",
    }
    if metadata_issuer:  # the tenant-specific document names the v2 issuer itself
        issuers.add(metadata_issuer.replace("{tenantid}", tenant))
    return issuers


def _refuse_when_in_azure() -> None:
    if os.environ.get(names.IN_AZURE):
        raise ConfigError(
            f"{names.AUTH_DISABLED} is for local development only and is refused in Azure",
            path=names.AUTH_DISABLED,
        )


def authenticate(
    headers: Mapping[str, str],
    settings: Settings,
    *,
    cloud: Cloud,
    keys: SigningKeys | None = None,
    role: str = ROLE,
    expected_appid: str | None = None,
) -> Caller:
    """The caller behind a request's bearer token, or ``Unauthorized`` / ``Forbidden``.
    ``role``: the app role the token must carry (``EVENT_GRID_ROLE`` for Event Grid deliveries).
    ``expected_appid``: the only client application accepted (its ``appid``/``azp``), for routes
    that only one service may call (Event Grid: ``event_grid_app_id``).

    Raises ``ConfigError`` (500, naming the setting) when auth is not configured: the endpoints
    fail closed instead of running unauthenticated. ``TransientError`` when the keys are out of reach.
    """
    if settings.auth_disabled:
        _refuse_when_in_azure()
        log.warning("%s=1: accepting an unauthenticated caller", names.AUTH_DISABLED)
        return LOCAL_CALLER
    tenant, audiences = _configured(settings)
    token = bearer_token(headers)
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("the bearer token header is not readable") from None
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise Unauthorized(f"token algorithm {str(alg)[:20]!r} is not accepted (RS256 only)")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        raise Unauthorized("the token names no signing key (kid)")
    key, metadata_issuer = (keys or _KEYS).key_for(kid, metadata_url(settings, cloud), settings)
    if key is None:
        raise Unauthorized("the token is signed by a key the tenant does not publish")
    claims = _decode(token, key, audiences)
    if claims.get("tid") != tenant:
        raise Unauthorized("the token was issued by another tenant")
    if claims.get("iss") not in accepted_issuers(tenant, cloud, metadata_issuer):
        raise Unauthorized("the token issuer is not the configured tenant's")
    appid = claims.get("appid") or claims.get("azp")
    if not isinstance(appid, str) or not appid:
        raise Unauthorized("the token is not an access token (no appid/azp claim)")
    oid = claims.get("oid") if isinstance(claims.get("oid"), str) else None
    raw_roles = claims.get("roles")
    roles = tuple(r for r in raw_roles if isinstance(r, str)) if isinstance(raw_roles, list) else ()
    caller = Caller(
        oid=oid,
        appid=appid,
        name=_name(claims),
        roles=roles,
    )
    # Entra sets one of appid/azp; should both come, both must be the expected application.
    presented = {c.lower() for c in (claims.get("appid"), claims.get("azp")) if isinstance(c, str)}
    if expected_appid is not None and presented != {expected_appid.lower()}:
        log.warning("caller %s is application %s, not %s", caller.label, appid, expected_appid)
        raise Forbidden(
            f"the token's appid/azp is not the application {expected_appid} this route accepts"
        )
    if role not in roles:
        log.warning("caller %s lacks app role %s", caller.label, role)
        raise Forbidden(f"the caller lacks the app role {role!r}")
    log.info("authenticated caller %s", caller.label)
    return caller


def event_grid_app_id(cloud: Cloud) -> str:
    """Event Grid's application id in ``cloud``; ``ConfigError`` where none is published, so
    ``SYNC_EVENTGRID_WEBHOOK_AUTH=entra`` fails closed instead of trusting the role alone."""
    app_id = EVENT_GRID_APP_IDS.get(cloud.name)
    if app_id is None:
        raise ConfigError(
            f"{names.EVENTGRID_WEBHOOK_AUTH}=entra: Event Grid's application id in cloud "
            f"{cloud.name!r} is not known, so its tokens cannot be told apart; use 'key' or 'off'",
            path=names.EVENTGRID_WEBHOOK_AUTH,
        )
    return app_id


def _name(claims: Mapping[str, Any]) -> str | None:
    for claim in ("name", "preferred_username", "upn", "app_displayname"):
        value = claims.get(claim)
        if isinstance(value, str) and value:
            return value
    return None


def _decode(token: str, key: Any, audiences: tuple[str, ...]) -> dict[str, Any]:
    import jwt

    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=list(audiences),
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "nbf", "iss", "aud", "tid"], "verify_iss": False},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise Unauthorized("the token is not valid yet (nbf)") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized(
            f"the token audience is not this app's ({names.AUTH_AUDIENCE})"
        ) from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("the token signature does not verify") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"the token has no {exc.claim!r} claim") from None
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"the token is invalid ({type(exc).__name__})") from None
    return claims
