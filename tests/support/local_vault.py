"""A local HTTPS Key Vault (secrets only) for driving the REAL ``azure-keyvault-secrets`` client.

Follows the documented data-plane contract: the first unauthenticated request gets
``401`` + ``WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="..."``;
``GET /secrets/{name}/{version}?api-version=`` (empty version = latest, note the trailing slash);
``PUT /secrets/{name}?api-version=`` with ``{"value", "contentType"?, "attributes"?, "tags"?}``;
``404 SecretNotFound``; ``403 Forbidden`` for names in ``forbidden``; unknown body fields -> 400.
With an ``identity`` the bearer token is verified (signature, expiry, audience
``https://vault.azure.net``) like the real vault does.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

from tests.support.local_identity import LocalIdentity, local_tls, serve, shutdown

VAULT_RESOURCE = "https://vault.azure.net"
PUT_FIELDS = {"value", "contentType", "attributes", "tags"}


@dataclass
class VaultRequest:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: dict[str, Any] | None
    status: int = 0


@dataclass
class SecretVersion:
    version: str
    value: str
    content_type: str | None
    created: int


@dataclass
class LocalVault:
    identity: LocalIdentity | None = None
    tenant: str = "22222222-0000-0000-0000-00000000000b"
    secrets: dict[str, list[SecretVersion]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)
    requests: list[VaultRequest] = field(default_factory=list)
    _failures: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._server = serve(_VaultHandler, tls=True)
        self._server[0].vault = self  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server[0].server_address[1]}"

    @property
    def ca_pem_path(self) -> str:
        return local_tls().ca_pem_path

    def stop(self) -> None:
        shutdown(*self._server)

    def put(self, name: str, value: str, content_type: str | None = None) -> str:
        version = uuid.uuid4().hex
        with self._lock:
            self.secrets.setdefault(name, []).append(
                SecretVersion(version, value, content_type, int(time.time()))
            )
        return version

    def latest(self, name: str) -> str | None:
        versions = self.secrets.get(name)
        return versions[-1].value if versions else None

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def secret_requests(self, method: str | None = None) -> list[VaultRequest]:
        """Authenticated secret operations (the 401 challenge round-trips left out)."""
        return [
            r for r in self.requests if r.status != 401 and (method is None or r.method == method)
        ]


def _error(code: str, message: str, inner: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return {"error": error}


class _VaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as real front ends (Kestrel, http.sys): no 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def vault(self) -> LocalVault:
        return self.server.vault  # type: ignore[attr-defined,no-any-return]

    def do_GET(self) -> None:
        self._handle(None)

    def do_PUT(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = "not json"
        self._handle(body)

    def _handle(self, body: Any) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        rec = VaultRequest(
            self.command,
            parts.path,
            query,
            self.headers.get("authorization"),
            body if isinstance(body, dict) else None,
        )
        self.vault.requests.append(rec)
        status, payload, headers = self._route(rec, parts.path, query, body)
        rec.status = status
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _challenge(self) -> dict[str, str]:
        authority = self.vault.identity.authority if self.vault.identity else "https://login.test"
        return {
            "WWW-Authenticate": f'Bearer authorization="{authority}/{self.vault.tenant}", '
            f'resource="{VAULT_RESOURCE}"'
        }

    def _route(
        self, rec: VaultRequest, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        vault = self.vault
        if not query.get("api-version"):
            return 400, _error("BadParameter", "api-version is required"), {}
        auth = rec.authorization or ""
        if not auth.startswith("Bearer "):
            return (
                401,
                _error("Unauthorized", "AKV10000: Request is missing a Bearer token."),
                (self._challenge()),
            )
        if vault.identity is not None:
            try:
                vault.identity.decode(auth.removeprefix("Bearer "), audience=VAULT_RESOURCE)
            except jwt.PyJWTError as exc:
                return (
                    401,
                    _error("Unauthorized", f"AKV10022: Invalid token: {exc}"),
                    (self._challenge()),
                )
        with vault._lock:
            failure = vault._failures.pop(0) if vault._failures else None
        if failure:
            return failure, _error("ServiceUnavailable", "simulated failure"), {"Retry-After": "0"}
        segments = path.strip("/").split("/")
        if len(segments) < 2 or segments[0] != "secrets" or len(segments) > 3:
            return 404, _error("NotFound", f"no route {path}"), {}
        name = segments[1]
        version = segments[2] if len(segments) == 3 else ""
        if name in vault.forbidden:
            return (
                403,
                _error(
                    "Forbidden",
                    f"Caller is not authorized to perform action on resource. Secret: {name}",
                    "ForbiddenByRbac",
                ),
                {},
            )
        if rec.method == "PUT":
            return self._put(name, version, body)
        return self._get(name, version)

    def _bundle(self, name: str, item: SecretVersion) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": item.value,
            "id": f"{self.vault.url}/secrets/{name}/{item.version}",
            "attributes": {
                "enabled": True,
                "created": item.created,
                "updated": item.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "tags": {},
        }
        if item.content_type:
            out["contentType"] = item.content_type
        return out

    def _get(self, name: str, version: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        versions = self.vault.secrets.get(name) or []
        match = [v for v in versions if v.version == version] if version else versions[-1:]
        if not match:
            return (
                404,
                _error(
                    "SecretNotFound",
                    f"A secret with (name/id) {name}{'/' + version if version else ''} was not "
                    f"found in this key vault.",
                ),
                {},
            )
        return 200, self._bundle(name, match[-1]), {}

    def _put(
        self, name: str, version: str, body: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if version:
            return 405, _error("BadParameter", "PUT takes no version"), {}
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            return 400, _error("BadParameter", "Property 'value' is required."), {}
        unknown = set(body) - PUT_FIELDS
        if unknown:
            return 400, _error("BadParameter", f"Unknown properties {sorted(unknown)}."), {}
        self.vault.put(name, body["value"], body.get("contentType"))
        return 200, self._bundle(name, self.vault.secrets[name][-1]), {}


def start_local_vault(identity: LocalIdentity | None = None) -> LocalVault:
    vault = LocalVault(identity=identity)
    # The SDK caches each vault's bearer challenge process-wide by host:port. A free port that an
    # earlier test's vault used would hand this vault that challenge, and the first request would
    # skip the 401 round trip a test may be checking (seen as a rare flake under xdist).
    from azure.keyvault.secrets._shared.http_challenge_cache import remove_challenge_for_url

    remove_challenge_for_url(vault.url)
    return vault
