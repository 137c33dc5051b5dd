"""A local Entra-like authority over plain HTTP: OpenID metadata + JWKS, keys the test controls.

``tests/support/local_identity.py`` serves one fixed key over HTTPS; these tests need key rotation,
an unreachable JWKS endpoint and a count of JWKS fetches, so this one keeps the same documented
contract (tenant-specific ``/v2.0/.well-known/openid-configuration`` naming ``issuer`` and
``jwks_uri``; ``/discovery/v2.0/keys`` answering ``{"keys": [JWK...]}``) with those switches.
Anything else is a 404 in Entra's error shape; only GET is allowed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

TENANT = "72f988bf-0000-4000-8000-00000000c0de"
OTHER_TENANT = "0f0f0f0f-0000-4000-8000-0000000000ff"
CLIENT_ID = "6a4f5e1b-1111-4000-8000-00000000a11d"
APP_ID_URI = "api://connector-sync"
CALLER_APP = "9c9c9c9c-2222-4000-8000-0000000000ca"
CALLER_OID = "5e5e5e5e-3333-4000-8000-00000000001d"


@cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """One 2048-bit key per name per process (key generation is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key(kid).public_key()))
    jwk.update({"kid": kid, "use": "sig", "x5t": kid})
    return jwk


class Authority:
    def __init__(self, tenant: str = TENANT) -> None:
        self.tenant = tenant
        self.published: list[str] = ["key-a"]  # kids in the JWKS, in order
        self.jwks_down = False
        self.metadata_down = False
        self.metadata_body: bytes | None = None  # served as it is instead of the metadata
        self.jwks_fetches = 0
        self.metadata_fetches = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def metadata_url(self, tenant: str | None = None) -> str:
        return f"{self.base}/{tenant or self.tenant}/v2.0/.well-known/openid-configuration"

    def issuer(self, tenant: str | None = None) -> str:
        return f"{self.base}/{tenant or self.tenant}/v2.0"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """An app-only access token for this app with the Connector.Sync role (v2 shape)."""
        now = int(time.time())
        body: dict[str, Any] = {
            "aud": APP_ID_URI,
            "iss": self.issuer(),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "tid": self.tenant,
            "oid": CALLER_OID,
            "sub": CALLER_OID,
            "azp": CALLER_APP,
            "azpacr": "1",
            "idtyp": "app",
            "roles": ["Connector.Sync"],
            "ver": "2.0",
            "uti": uuid.uuid4().hex,
        }
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not None}

    def token(self, *, kid: str = "key-a", signer: str | None = None, **overrides: Any) -> str:
        """RS256 token with header ``kid``, signed by key ``signer`` (default: the kid's key)."""
        return jwt.encode(
            self.claims(**overrides),
            rsa_key(signer or kid),
            algorithm="RS256",
            headers={"kid": kid, "typ": "JWT"},
        )


def _handler(authority: Authority) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as real front ends: no 40 ms stalls

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self) -> None:
            self._send(
                400,
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant not found. Path {self.path}",
                    "error_codes": [90002],
                },
            )

        def do_GET(self) -> None:
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if len(parts) != 4 or parts[0] != authority.tenant:
                self._not_found()
            elif parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                authority.metadata_fetches += 1
                if authority.metadata_down:
                    self._send(503, {"error": "temporarily_unavailable"})
                    return
                if authority.metadata_body is not None:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(authority.metadata_body)))
                    self.end_headers()
                    self.wfile.write(authority.metadata_body)
                    return
                base = f"{authority.base}/{authority.tenant}"
                self._send(
                    200,
                    {
                        "issuer": authority.issuer(),
                        "jwks_uri": f"{base}/discovery/v2.0/keys",
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "response_types_supported": ["code", "id_token"],
                        "subject_types_supported": ["pairwise"],
                    },
                )
            elif parts[1:] == ["discovery", "v2.0", "keys"]:
                authority.jwks_fetches += 1
                if authority.jwks_down:
                    self._send(503, {"error": "temporarily_unavailable"})
                    return
                self._send(200, {"keys": [public_jwk(kid) for kid in authority.published]})
            else:
                self._not_found()

        def do_POST(self) -> None:
            self._send(405, {"error": "invalid_request", "error_description": "GET only"})

    return Handler
