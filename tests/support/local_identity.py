"""A local Entra ID + managed-identity endpoint for driving the REAL azure-identity / MSAL code.

There is no local Entra emulator, so this is a strict simulator of the documented wire contract:

* HTTPS authority (trustme CA, ``ca_pem_path`` for ``connection_verify``):
  ``GET /{tenant}/v2.0/.well-known/openid-configuration``, ``GET /{tenant}/discovery/v2.0/keys``
  (JWKS, for inbound-token validation tests), ``POST /{tenant}/oauth2/v2.0/token``
  (client_credentials with client_secret or a jwt-bearer client_assertion, refresh_token with
  rotation, device_code) and ``POST /{tenant}/oauth2/v2.0/devicecode``.
* HTTP managed-identity endpoint speaking the App Service / Functions protocol
  (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``, api-version 2019-08-01).

Access tokens are RS256 JWTs signed with a local key (claims aud, iss, oid, sub, tid, appid, azp,
idtyp, iat, nbf, exp). Unknown form fields, unknown clients and bad credentials get Entra's error
shape (``error``, ``error_description`` with an AADSTS code, ``error_codes``). Every request is
recorded in ``requests`` so tests assert on what the client really sent.

Usage (see tests/credentials/conftest.py for fixtures)::

    idp = start_local_identity()
    app = idp.add_app("tenant-b", secret="s3cr3t")
    ...; idp.stop()
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import secrets as _random
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
RESERVED_SCOPES = {"openid", "profile", "offline_access", "email"}
# Form fields a real Entra token endpoint accepts from MSAL / azure-identity; anything else is 400.
COMMON_FIELDS = {"client_id", "grant_type", "scope", "claims", "client_info", "x-client-sku"}
GRANT_FIELDS = {
    "client_credentials": {"client_secret", "client_assertion", "client_assertion_type"},
    "refresh_token": {
        "refresh_token",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
    },
    DEVICE_GRANT: {"device_code", "code"},  # MSAL sends both (ADFS compatibility)
}


# --- shared TLS material -------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalTls:
    ca: trustme.CA
    ca_pem_path: str

    def server_context(self) -> ssl.SSLContext:
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        return ctx


@cache
def local_tls() -> LocalTls:
    """One CA per process: the SDKs take a single ``connection_verify`` path for every server."""
    ca = trustme.CA()
    fd, path = tempfile.mkstemp(prefix="connector-sync-ca-", suffix=".pem")
    os.close(fd)
    ca.cert_pem.write_to_path(path)
    atexit.register(lambda: os.path.exists(path) and os.remove(path))
    return LocalTls(ca, path)


def serve(
    handler: type[BaseHTTPRequestHandler], *, tls: bool
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start ``handler`` on a free loopback port (port 0) in a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls:
        server.socket = local_tls().server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll
        name=handler.__name__,
        daemon=True,
    )
    thread.start()
    return server, thread


def shutdown(server: ThreadingHTTPServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@cache
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_client_certificate(common_name: str = "connector-sync-test") -> tuple[str, bytes]:
    """(PEM with private key + certificate, as Key Vault stores it; the certificate PEM alone)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = time.time()
    import datetime as dt

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.fromtimestamp(now - 60, dt.UTC))
        .not_valid_after(dt.datetime.fromtimestamp(now + 86400, dt.UTC))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    return (key_pem + cert_pem).decode("ascii"), cert_pem


# --- state ---------------------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]
    status: int = 0


@dataclass
class App:
    """An app registration in one tenant."""

    tenant: str
    client_id: str
    object_id: str
    secret: str | None = None
    certificate_pem: bytes | None = None
    federated_subjects: set[str] = field(default_factory=set)
    public_client: bool = False


@dataclass
class ManagedIdentity:
    client_id: str
    object_id: str
    tenant: str


@dataclass
class RefreshGrant:
    tenant: str
    client_id: str
    user_oid: str
    revoked: bool = False


@dataclass
class DeviceCode:
    tenant: str
    client_id: str
    user_oid: str
    scope: str
    pending_polls: int


class LocalIdentity:
    """State + servers; the handler classes read it through ``self.server.idp``."""

    kid = "local-key-1"

    def __init__(self, *, token_lifetime: int = 3600) -> None:
        self.token_lifetime = token_lifetime
        self.identity_header = "local-identity-header-" + _random.token_hex(8)
        self.requests: list[Recorded] = []
        self.apps: dict[str, App] = {}
        self.identities: dict[str | None, ManagedIdentity] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.device_codes: dict[str, DeviceCode] = {}
        self.revoke_used_refresh_tokens = False
        self.device_pending_polls = 0
        self._failures: list[tuple[str, int]] = []
        self._answers: list[tuple[str, int, bytes, str]] = []
        self._lock = threading.Lock()
        self.mi_tenant = "11111111-0000-0000-0000-00000000000a"
        self.add_managed_identity(None)  # the system-assigned identity
        self._https = serve(_AuthorityHandler, tls=True)
        self._http = serve(_ManagedIdentityHandler, tls=False)
        self._https[0].idp = self  # type: ignore[attr-defined]
        self._http[0].idp = self  # type: ignore[attr-defined]

    # --- addresses ---
    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self._https[0].server_address[1]}"

    @property
    def identity_endpoint(self) -> str:
        return f"http://127.0.0.1:{self._http[0].server_address[1]}/msi/token"

    @property
    def ca_pem_path(self) -> str:
        return local_tls().ca_pem_path

    def managed_identity_env(self) -> dict[str, str]:
        return {
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
        }

    def jwks_uri(self, tenant: str) -> str:
        return f"{self.authority}/{tenant}/discovery/v2.0/keys"

    def issuer(self, tenant: str) -> str:
        return f"{self.authority}/{tenant}/v2.0"

    def stop(self) -> None:
        shutdown(*self._https)
        shutdown(*self._http)

    # --- set-up ---
    def add_app(
        self,
        tenant: str,
        *,
        client_id: str | None = None,
        secret: str | None = None,
        certificate_pem: bytes | None = None,
        federated_subjects: set[str] | None = None,
        public_client: bool = False,
    ) -> App:
        app = App(
            tenant=tenant,
            client_id=client_id or str(uuid.uuid4()),
            object_id=str(uuid.uuid4()),
            secret=secret,
            certificate_pem=certificate_pem,
            federated_subjects=set(federated_subjects or ()),
            public_client=public_client,
        )
        self.apps[app.client_id] = app
        return app

    def add_managed_identity(self, client_id: str | None) -> ManagedIdentity:
        """``None`` = the system-assigned identity; otherwise a user-assigned one."""
        mi = ManagedIdentity(client_id or str(uuid.uuid4()), str(uuid.uuid4()), self.mi_tenant)
        self.identities[client_id] = mi
        return mi

    def issue_refresh_token(self, tenant: str, client_id: str, user_oid: str | None = None) -> str:
        token = "rt-" + _random.token_urlsafe(24)
        self.refresh_tokens[token] = RefreshGrant(tenant, client_id, user_oid or str(uuid.uuid4()))
        return token

    def revoke_refresh_token(self, token: str) -> None:
        self.refresh_tokens[token].revoked = True

    def fail_next(self, status: int, *, times: int = 1, path_contains: str = "") -> None:
        """Answer the next ``times`` requests whose path contains ``path_contains`` with ``status``."""
        with self._lock:
            self._failures.extend([(path_contains, status)] * times)

    def answer_next(
        self,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "application/json; charset=utf-8",
        path_contains: str = "",
    ) -> None:
        """Answer the next POST whose path contains ``path_contains`` with these exact bytes: a
        token endpoint (or a proxy in front of it) that answers something other than the contract."""
        with self._lock:
            self._answers.append((path_contains, status, body, content_type))

    def token_requests(self, grant_type: str | None = None) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if r.path.endswith("/oauth2/v2.0/token")
            and (grant_type is None or r.form.get("grant_type") == grant_type)
        ]

    # --- tokens ---
    def mint(self, claims: dict[str, Any], *, lifetime: int | None = None) -> str:
        now = int(time.time())
        body = {"iat": now, "nbf": now - 5, "exp": now + (lifetime or self.token_lifetime)}
        body.update(claims)
        return jwt.encode(body, signing_key(), algorithm="RS256", headers={"kid": self.kid})

    def decode(self, token: str, *, audience: str) -> dict[str, Any]:
        """Verify a token this simulator minted (signature, exp, aud); raise ``jwt`` errors."""
        return jwt.decode(
            token, signing_key().public_key(), algorithms=["RS256"], audience=audience
        )

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key().public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def _take_answer(self, path: str) -> tuple[int, bytes, str] | None:
        with self._lock:
            for index, (needle, status, body, content_type) in enumerate(self._answers):
                if needle in path:
                    del self._answers[index]
                    return status, body, content_type
        return None

    def _take_failure(self, path: str) -> int | None:
        with self._lock:
            for index, (needle, status) in enumerate(self._failures):
                if needle in path:
                    del self._failures[index]
                    return status
        return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None


def _aud(scope: str) -> str:
    for part in scope.split():
        if part not in RESERVED_SCOPES:
            return part.removesuffix("/.default")
    return ""


class _OAuthError(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description

    def body(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.description} Trace ID: {uuid.uuid4()}",
            "error_codes": [self.code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        }


class _Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as real front ends (Kestrel, http.sys): no 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def idp(self) -> LocalIdentity:
        return self.server.idp  # type: ignore[attr-defined,no-any-return]

    def _record(self, form: dict[str, str]) -> Recorded:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        rec = Recorded(
            self.command,
            parts.path,
            query,
            {k.lower(): v for k, v in self.headers.items()},
            form,
        )
        self.idp.requests.append(rec)
        return rec

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        parsed = parse_qs(raw, keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def _send(self, rec: Recorded, status: int, body: dict[str, Any]) -> None:
        rec.status = status
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _ManagedIdentityHandler(_Base):
    def do_GET(self) -> None:
        rec = self._record({})
        idp = self.idp
        failure = idp._take_failure(rec.path)
        if failure:
            self._send(rec, failure, {"statusCode": failure, "message": "simulated failure"})
            return
        if rec.path != "/msi/token":
            self._send(rec, 404, {"statusCode": 404, "message": "not found"})
            return
        if rec.headers.get("x-identity-header") != idp.identity_header:
            self._send(rec, 401, {"statusCode": 401, "message": "X-IDENTITY-HEADER is missing"})
            return
        allowed = {"api-version", "resource", "client_id", "principal_id", "mi_res_id"}
        unknown = set(rec.query) - allowed
        if rec.query.get("api-version") != "2019-08-01" or not rec.query.get("resource") or unknown:
            self._send(rec, 400, {"statusCode": 400, "message": f"bad request {sorted(unknown)}"})
            return
        mi = idp.identities.get(rec.query.get("client_id"))
        if mi is None:
            self._send(
                rec, 400, {"statusCode": 400, "message": "No managed identity with that client_id"}
            )
            return
        resource = rec.query["resource"]
        token = idp.mint(
            {
                "aud": resource,
                "iss": idp.issuer(mi.tenant),
                "oid": mi.object_id,
                "sub": mi.object_id,
                "tid": mi.tenant,
                "appid": mi.client_id,
                "azp": mi.client_id,
                "idtyp": "app",
            }
        )
        self._send(
            rec,
            200,
            {
                "access_token": token,
                "expires_on": str(int(time.time()) + idp.token_lifetime),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": mi.client_id,
            },
        )


class _AuthorityHandler(_Base):
    def do_GET(self) -> None:
        rec = self._record({})
        parts = rec.path.strip("/").split("/")
        idp = self.idp
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            tenant = parts[0]
            base = f"{idp.authority}/{tenant}"
            self._send(
                rec,
                200,
                {
                    "issuer": idp.issuer(tenant),
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "jwks_uri": idp.jwks_uri(tenant),
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "response_types_supported": ["code", "id_token", "code id_token"],
                    "subject_types_supported": ["pairwise"],
                    "tenant_region_scope": "WW",
                },
            )
        elif len(parts) == 4 and parts[1:] == ["discovery", "v2.0", "keys"]:
            self._send(rec, 200, idp.jwks())
        else:
            self._send(rec, 404, {"error": "not_found", "error_description": rec.path})

    def do_POST(self) -> None:
        rec = self._record(self._form())
        failure = self.idp._take_failure(rec.path)
        if failure:
            self._send(rec, failure, {"error": "temporarily_unavailable", "error_codes": []})
            return
        answer = self.idp._take_answer(rec.path)
        if answer:
            rec.status, data, content_type = answer
            self.send_response(rec.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        parts = rec.path.strip("/").split("/")
        try:
            if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
                self._send(rec, 200, self._token(parts[0], rec.form))
            elif len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "devicecode"]:
                self._send(rec, 200, self._devicecode(parts[0], rec.form))
            else:
                self._send(rec, 404, {"error": "not_found", "error_description": rec.path})
        except _OAuthError as exc:
            self._send(rec, exc.status, exc.body())

    # --- grants ---
    def _token(self, tenant: str, form: dict[str, str]) -> dict[str, Any]:
        grant = form.get("grant_type", "")
        if grant not in GRANT_FIELDS:
            raise _OAuthError(400, "unsupported_grant_type", 70003, f"grant {grant!r}.")
        unknown = set(form) - COMMON_FIELDS - GRANT_FIELDS[grant]
        if unknown:
            raise _OAuthError(400, "invalid_request", 900144, f"unknown fields {sorted(unknown)}.")
        if grant != DEVICE_GRANT and not form.get("scope"):
            raise _OAuthError(400, "invalid_request", 900144, "'scope' is required.")
        app = self.idp.apps.get(form.get("client_id", ""))
        if app is None or app.tenant != tenant:
            raise _OAuthError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the "
                f"directory '{tenant}'.",
            )
        if grant == "client_credentials":
            if app.public_client:
                raise _OAuthError(401, "invalid_client", 7000218, "public client.")
            self._authenticate(app, tenant, form)
            if not form["scope"].endswith("/.default"):
                raise _OAuthError(400, "invalid_scope", 1002012, "scope must end with /.default.")
            return self._issue(tenant, app, app.object_id, "app", form["scope"], refresh=False)
        if grant == "refresh_token":
            held = self.idp.refresh_tokens.get(form.get("refresh_token", ""))
            if held is None or held.revoked or held.client_id != app.client_id:
                raise _OAuthError(
                    400, "invalid_grant", 70008, "The refresh token has expired or been revoked."
                )
            if held.tenant != tenant:
                raise _OAuthError(400, "invalid_grant", 50020, "refresh token from another tenant.")
            if not app.public_client:
                self._authenticate(app, tenant, form)
            if self.idp.revoke_used_refresh_tokens:
                held.revoked = True
            return self._issue(tenant, app, held.user_oid, "user", form["scope"], refresh=True)
        code = self.idp.device_codes.get(form.get("device_code", ""))
        if code is None or code.client_id != app.client_id:
            raise _OAuthError(400, "expired_token", 70020, "The device code has expired.")
        if code.pending_polls > 0:
            code.pending_polls -= 1
            raise _OAuthError(400, "authorization_pending", 70016, "Pending user authorization.")
        del self.idp.device_codes[form["device_code"]]
        return self._issue(tenant, app, code.user_oid, "user", code.scope, refresh=True)

    def _authenticate(self, app: App, tenant: str, form: dict[str, str]) -> None:
        if "client_secret" in form:
            if not app.secret or not _random.compare_digest(form["client_secret"], app.secret):
                raise _OAuthError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    f"is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{app.client_id}'.",
                )
            return
        if form.get("client_assertion_type") != JWT_BEARER or not form.get("client_assertion"):
            raise _OAuthError(
                401, "invalid_client", 7000218, "client_assertion or client_secret is required."
            )
        assertion = form["client_assertion"]
        header = jwt.get_unverified_header(assertion)
        token_endpoint = f"{self.idp.authority}/{tenant}/oauth2/v2.0/token"
        try:
            if "x5t" in header or "x5t#S256" in header:
                if app.certificate_pem is None:
                    raise _OAuthError(401, "invalid_client", 700027, "no certificate registered.")
                cert = x509.load_pem_x509_certificate(app.certificate_pem)
                der = cert.public_bytes(serialization.Encoding.DER)
                expected = {
                    "x5t": hashlib.sha1(der).digest(),  # noqa: S324 - the x5t format
                    "x5t#S256": hashlib.sha256(der).digest(),
                }
                # MSAL sends padded standard base64; RFC 7515 says base64url: accept both.
                if not any(_unb64(header.get(k)) == v for k, v in expected.items()):
                    raise _OAuthError(401, "invalid_client", 700027, "unknown certificate.")
                claims = jwt.decode(
                    assertion,
                    cert.public_key(),
                    algorithms=["RS256", "PS256"],
                    audience=token_endpoint,
                )
                if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
                    raise _OAuthError(401, "invalid_client", 700023, "iss/sub must be client id.")
            else:
                claims = self.idp.decode(assertion, audience=EXCHANGE_AUDIENCE)
                if claims.get("sub") not in app.federated_subjects:
                    raise _OAuthError(
                        400,
                        "invalid_client",
                        70021,
                        "No matching federated identity record found for presented assertion.",
                    )
        except jwt.PyJWTError as exc:
            raise _OAuthError(
                401, "invalid_client", 700027, f"Client assertion failed validation: {exc}."
            ) from None

    def _issue(
        self, tenant: str, app: App, oid: str, idtyp: str, scope: str, *, refresh: bool
    ) -> dict[str, Any]:
        idp = self.idp
        token = idp.mint(
            {
                "aud": _aud(scope),
                "iss": idp.issuer(tenant),
                "oid": oid,
                "sub": oid,
                "tid": tenant,
                "appid": app.client_id,
                "azp": app.client_id,
                "idtyp": idtyp,
                "scp" if idtyp == "user" else "roles": "user_impersonation"
                if idtyp == "user"
                else [],
            }
        )
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": idp.token_lifetime,
            "ext_expires_in": idp.token_lifetime,
            "access_token": token,
        }
        if refresh:
            body["refresh_token"] = idp.issue_refresh_token(tenant, app.client_id, oid)
        return body

    def _devicecode(self, tenant: str, form: dict[str, str]) -> dict[str, Any]:
        unknown = set(form) - {"client_id", "scope", "claims", "client_info"}
        if unknown:
            raise _OAuthError(400, "invalid_request", 900144, f"unknown fields {sorted(unknown)}.")
        app = self.idp.apps.get(form.get("client_id", ""))
        if app is None or app.tenant != tenant or not app.public_client:
            raise _OAuthError(400, "unauthorized_client", 700016, "not a public client here.")
        device_code = "dc-" + _random.token_urlsafe(16)
        user_code = _random.token_hex(4).upper()
        self.idp.device_codes[device_code] = DeviceCode(
            tenant, app.client_id, str(uuid.uuid4()), form["scope"], self.idp.device_pending_polls
        )
        uri = f"{self.idp.authority}/devicelogin"
        return {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "expires_in": 900,
            "interval": 1,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the code "
            f"{user_code} to authenticate.",
        }


def start_local_identity(*, token_lifetime: int = 3600) -> LocalIdentity:
    return LocalIdentity(token_lifetime=token_lifetime)
