"""``credential init`` and ``doctor``: set up and check the identities the sync map names.

Why these two commands: the delegated kind needs a refresh token that only an interactive sign-in
can produce (device code, so it works over SSH and in a container), and "which identity does the
tenant actually see, and does the platform accept it" is the first question whenever a target
answers 401/403. Neither command ever prints a token or a secret: ``doctor`` decodes the access
token's payload locally (no signature check, it is only displayed) and prints a few claims.

The command lines themselves (``register``, ``CliDeps``) live in ``sync.credential_commands`` so
that building ``python -m sync``'s parser does not import this module; both names are re-exported
here for callers that already use them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from sync.adapters.credentials import build_token_provider, vet_authority
from sync.adapters.keyvault import secret_name_of
from sync.clouds import Cloud, cloud_for
from sync.config import SyncMap, TargetConfig, load_map_file
from sync.credential_commands import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliDeps,
    Probe,
    register,
)
from sync.errors import ConfigError, SyncError, UnsafeUrlError
from sync.ports import SecretStore
from sync.settings import Settings
from sync.token_claims import unverified_claims

if TYPE_CHECKING:
    from sync.adapters.urlguard import UrlGuard

SHOWN_CLAIMS = ("aud", "oid", "idtyp", "tid", "appid")


def scope_for(target: TargetConfig, cloud: Cloud) -> str | None:
    """The token scope a target's platform expects; None for targets that need no token."""
    if target.kind == "powerapps":
        return cloud.powerapps_scope
    if target.kind == "dataverse":
        return cloud.dataverse_scope(str(target.params["org"]))
    return None


def doctor(
    sync_map: SyncMap,
    api: str,
    target: str,
    *,
    secrets: SecretStore,
    probe: Probe | None = None,
    connection_verify: str | None = None,
    transport_options: Mapping[str, Any] | None = None,
    guard: UrlGuard | None = None,
    out: TextIO | None = None,
) -> int:
    """Acquire the target's token, show who it is, then call the read-only probe.

    0 = the tenant issued a token and the probe (when wired) succeeded; 1 = refused; 2 = the
    map does not name this API / target / credential.
    """
    out = out or sys.stdout
    try:
        target_config = sync_map.api(api).target(target)
        cloud = cloud_for(sync_map.cloud, sync_map.endpoints)
    except ConfigError as exc:
        print(f"error: {exc}", file=out)
        return EXIT_USAGE
    params = target_config.params if isinstance(target_config.params, dict) else {}
    credential = params.get("credential")
    scope = scope_for(target_config, cloud)
    print(f"target: {api}/{target} ({target_config.kind})", file=out)
    if credential and scope:
        spec = sync_map.credentials.get(credential)
        if spec is None:
            print(f"error: credential {credential!r} is not defined under 'credentials'", file=out)
            return EXIT_USAGE
        print(f"credential: {credential} ({next(iter(spec), '?')})", file=out)
        print(f"scope: {scope}", file=out)
        try:
            tokens = build_token_provider(
                credential,
                spec,
                cloud=cloud,
                secrets=secrets,
                connection_verify=connection_verify,
                transport_options=transport_options,
                guard=guard,
            )
            token = tokens.token(scope)
        except ConfigError as exc:
            print(f"error: {exc}", file=out)
            return EXIT_USAGE
        except SyncError as exc:
            print(f"token: REFUSED - {exc}", file=out)
            return EXIT_REFUSED
        claims = unverified_claims(token)
        if claims is None:
            print("token: acquired (not a JWT; claims not shown)", file=out)
        else:
            print("token: acquired", file=out)
            for name in SHOWN_CLAIMS:
                print(f"  {name}: {claims.get(name, '(absent)')}", file=out)
            expected = scope.removesuffix("/.default")
            if claims.get("aud") not in (expected, expected + "/"):
                print(f"  warning: aud is not {expected}; the platform will answer 401", file=out)
            if target_config.kind == "powerapps" and claims.get("idtyp") == "app":
                print(
                    "  warning: an app-only token; the PowerApps API may refuse it "
                    "(use a delegated credential or a dataverse target)",
                    file=out,
                )
    else:
        print("credential: none (this target needs no token)", file=out)
    if probe is None:
        print("probe: skipped (no probe wired)", file=out)
        return EXIT_OK
    try:
        result = probe(api, target)
    except SyncError as exc:
        print(f"probe: REFUSED - {exc}", file=out)
        return EXIT_REFUSED
    print(f"probe: ok - {result}", file=out)
    return EXIT_OK


def credential_init(
    sync_map: SyncMap,
    credential: str,
    *,
    store: SecretStore,
    scope: str | None = None,
    connection_verify: str | None = None,
    timeout_seconds: float = 15.0,
    guard: UrlGuard | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Device-code sign-in for a delegated credential; the refresh token goes into the vault.

    MSAL's public client does the device flow (initiate, show the code, poll). The refresh token
    is written with ``store.set`` and only the secret's name is printed. The authority host is
    vetted first (``vet_authority`` with ``guard``), as the service vets it before redeeming the
    token: the sign-in page and the refresh token come from there.
    """
    out, err = out or sys.stdout, err or sys.stderr
    spec = sync_map.credentials.get(credential)
    if spec is None:
        print(f"error: credential {credential!r} is not defined under 'credentials'", file=err)
        return EXIT_USAGE
    kind, params = next(iter(spec.items()))
    if kind != "delegated":
        print(
            f"error: credential {credential!r} is {kind}; only delegated credentials sign in "
            "with a device code",
            file=err,
        )
        return EXIT_USAGE
    setter = getattr(store, "set", None)
    if setter is None:
        print(
            f"error: the secret store ({type(store).__name__}) is read-only; "
            "set SYNC_KEY_VAULT_URL to the vault that holds the refresh token",
            file=err,
        )
        return EXIT_USAGE
    secret_name = secret_name_of(params["refreshToken"])
    cloud = cloud_for(sync_map.cloud, sync_map.endpoints)
    try:
        vet_authority(
            cloud,
            guard,
            what="the device-code sign-in request",
            where=f"credential {credential!r} (delegated)",
        )
    except SyncError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE if isinstance(exc, UnsafeUrlError) else EXIT_REFUSED
    from msal import PublicClientApplication

    from sync.adapters.credentials import KNOWN_AUTHORITY_HOSTS

    host = cloud.authority_host.rstrip("/")
    tenant = params["tenant"]
    try:  # MSAL raises ValueError when the authority has no configuration for the tenant
        app = PublicClientApplication(
            params["clientId"],
            authority=f"{host}/{tenant}",
            instance_discovery=host in KNOWN_AUTHORITY_HOSTS,
            http_client=_http_client(connection_verify, timeout_seconds),
        )
        flow = app.initiate_device_flow(scopes=[scope or cloud.powerapps_scope])
    except ValueError as exc:
        return _tenant_refused(credential, tenant, exc, err)
    if "user_code" not in flow:
        print(
            f"error: the tenant refused the device-code request: {_oauth_error(flow)}",
            file=err,
        )
        return EXIT_REFUSED
    print(flow.get("message") or f"Open {flow['verification_uri']} and enter the code.", file=err)
    try:
        result = app.acquire_token_by_device_flow(flow)
    except ValueError as exc:
        return _tenant_refused(credential, tenant, exc, err)
    refresh_token = result.get("refresh_token")
    if not refresh_token:
        print(f"error: sign-in did not complete: {_oauth_error(result)}", file=err)
        return EXIT_REFUSED
    try:
        setter(secret_name, refresh_token)
    except SyncError as exc:
        print(f"error: could not store the refresh token: {exc}", file=err)
        return EXIT_REFUSED
    print(
        f"stored the refresh token for credential {credential!r} in secret {secret_name!r}",
        file=out,
    )
    return EXIT_OK


def _tenant_refused(credential: str, tenant: Any, exc: ValueError, err: TextIO) -> int:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    print(
        f"error: the authority refused tenant {tenant!r} of credential {credential!r}: {first}",
        file=err,
    )
    return EXIT_REFUSED


def _oauth_error(answer: dict[str, Any]) -> str:
    """The OAuth error code and the first line of Entra's description (no tokens in either)."""
    description = str(answer.get("error_description") or "").strip().splitlines()
    first = description[0][:300] if description else ""
    return f"{answer.get('error', 'unknown')} {first}".strip()


def _http_client(connection_verify: str | None, timeout_seconds: float) -> Any:
    """A requests session for MSAL that really uses ``connection_verify``.

    MSAL's own ``verify=`` sets ``Session.verify``, which requests silently replaces with
    ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` when those are set; a per-request ``verify`` wins.
    """
    import functools

    import requests

    session = requests.Session()
    session.mount("https://", requests.adapters.HTTPAdapter(max_retries=1))
    session.request = functools.partial(  # type: ignore[method-assign]
        session.request, timeout=timeout_seconds, verify=connection_verify or True
    )
    return session


def _load(path: str, err: TextIO) -> SyncMap | None:
    try:
        return load_map_file(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=err)
        return None


def map_and_store(path: str, deps: CliDeps, err: TextIO) -> tuple[SyncMap, SecretStore] | None:
    """The sync map and the secret store both commands start from; None after printing why.
    Errors go to ``err`` because ``doctor`` reports everything on stdout and ``init`` does not."""
    sync_map = _load(path, err)
    if sync_map is None:
        return None
    try:
        store = deps.store(
            Settings.from_env(deps.env), cloud_for(sync_map.cloud, sync_map.endpoints)
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=err)
        return None
    return sync_map, store


__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "SHOWN_CLAIMS",
    "CliDeps",
    "Probe",
    "credential_init",
    "doctor",
    "map_and_store",
    "register",
    "scope_for",
]
