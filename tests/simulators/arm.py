"""A strict local Resource Manager for the two export actions, plus the blobs they link to.

No local ARM exists, so this follows the documented contracts and refuses what real ARM would:

* every ARM call needs ``Authorization: Bearer <JWT>`` minted by the local identity platform
  (``tests/support/local_identity.py``), signature and audience checked (``audience`` defaults to
  this server's own URL, because the tests point ``endpoints.resourceManager`` here); a missing or
  bad token gets 401 ``AuthenticationFailed`` / ``InvalidAuthenticationTokenAudience``; an object id
  outside ``authorized`` gets 403 ``AuthorizationFailed``;
* ``api-version`` must be the documented one, and unknown query parameters are 400
  (``InvalidQueryParameter``), as is an unknown APIM export ``format``;
* APIM "Api Export - Get": ``GET {service}/apis/{api}?format=&export=true&api-version=2022-08-01``
  answers ``{"id", "format", "value": {"link": <blob URL with a SAS valid link_lifetime s>}}``;
  the link is served under ``/export-blobs/`` and answers 403 ``AuthenticationFailed`` (Storage's
  XML error, ``x-ms-error-code``) once ``se`` has passed or when the test expired it;
* API Center ``POST .../definitions/{d}/exportSpecification?api-version=2024-03-01``: 200 with the
  result, or 202 + ``Location`` + ``Azure-AsyncOperation`` + ``Retry-After`` for ``polls`` polls;
  result ``{"format": "inline"|"link", "value": ...}``;
* ``/blobstore/{container}/{blob}``: a blob endpoint that takes a Storage bearer token (audience
  ``https://storage.azure.com``) and requires ``x-ms-version``, with ETag / If-None-Match;
* ``slow(contains, seconds)``: every request whose path contains ``contains`` is answered that
  much later (a busy service, for the fetch budget's tests).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

APIM_VERSION = "2022-08-01"
API_CENTER_VERSION = "2024-03-01"
APIM_FORMATS = {  # request format -> result format (ExportResultFormat)
    "swagger-link": "swagger-link-json",
    "openapi-link": "openapi-link",
    "openapi+json-link": "openapi+json-link",
    "wadl-link": "wadl-link-json",
    "wsdl-link": "wsdl-link+xml",
}
STORAGE_AUDIENCE = "https://storage.azure.com"

Verify = Callable[[str, str], dict[str, Any]]  # (token, audience) -> claims, raises when invalid


@dataclass
class Logged:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


@dataclass
class Definition:
    spec: bytes
    mode: str = "inline"  # inline | link
    polls: int = 0
    fail: bool = False


@dataclass
class Operation:
    remaining: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None = None


@dataclass
class State:
    verify: Verify
    audience: str | None = None
    authorized: set[str] | None = None  # object ids allowed; None = anyone with a valid token
    link_lifetime: float = 300.0
    expire_links: int = 0  # the next N links answer 403 whatever their se= says
    apim: dict[str, bytes] = field(default_factory=dict)  # lower-case api id -> spec
    centers: dict[str, Definition] = field(default_factory=dict)  # lower-case definition id
    blobs: dict[str, bytes] = field(default_factory=dict)  # export blobs by name
    links: dict[str, tuple[str, float, bool]] = field(default_factory=dict)  # name -> sig, se, dead
    operations: dict[str, Operation] = field(default_factory=dict)
    store: dict[str, bytes] = field(default_factory=dict)  # /blobstore path -> bytes
    requests: list[Logged] = field(default_factory=list)
    # (path part, status, body, headers): the next matching request gets exactly this answer
    answers: list[tuple[str, int, bytes | dict[str, Any], dict[str, str]]] = field(
        default_factory=list
    )
    delays: list[tuple[str, float]] = field(default_factory=list)  # (path part, seconds)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _arm_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _storage_error(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><Error>'
        f"<Code>{code}</Code><Message>{message}\nRequestId:{uuid.uuid4()}\n"
        f"Time:{datetime.now(UTC).isoformat()}</Message></Error>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as real front ends (Kestrel, http.sys): no 40 ms stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def state(self) -> State:
        return self.server.state

    def _send(
        self,
        status: int,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.logged.status = status
        data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if isinstance(body, dict):
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def _start(self) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.logged = Logged(
            self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}
        )
        with self.state.lock:
            self.state.requests.append(self.logged)
        length = int(self.headers.get("content-length") or 0)
        self.body = self.rfile.read(length) if length else b""
        with self.state.lock:
            delay = sum(s for needle, s in self.state.delays if needle in parts.path)
        time.sleep(delay)
        return unquote(parts.path), query

    def _answered(self, path: str) -> bool:
        """Send a queued ``answer_next`` answer for ``path``, if there is one."""
        with self.state.lock:
            found = next((a for a in self.state.answers if a[0] in path), None)
            if found is None:
                return False
            self.state.answers.remove(found)
        _needle, status, body, headers = found
        self._send(status, body, headers)
        return True

    def _claims(self, audience: str) -> dict[str, Any] | None:
        """The token's claims, or None after answering 401/403 like ARM."""
        auth = self.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            self._send(
                401,
                _arm_error(
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.",
                ),
            )
            return None
        token = auth.removeprefix("Bearer ")
        try:
            claims = self.state.verify(token, audience)
        except Exception as exc:  # jwt errors: bad signature, audience, expiry
            code = (
                "InvalidAuthenticationTokenAudience"
                if "audience" in str(exc).lower()
                else "InvalidAuthenticationToken"
            )
            self._send(401, _arm_error(code, f"The access token is invalid: {exc}"))
            return None
        allowed = self.state.authorized
        if allowed is not None and claims.get("oid") not in allowed:
            self._send(
                403,
                _arm_error(
                    "AuthorizationFailed",
                    f"The client with object id '{claims.get('oid')}' does not have authorization to "
                    "perform action over this scope.",
                ),
            )
            return None
        return claims

    def _query(self, query: dict[str, str], version: str, allowed: set[str]) -> bool:
        unknown = set(query) - allowed - {"api-version"}
        if unknown:
            self._send(400, _arm_error("InvalidQueryParameter", f"unknown {sorted(unknown)}"))
            return False
        if query.get("api-version") != version:
            self._send(
                400,
                _arm_error(
                    "InvalidApiVersionParameter",
                    f"The api-version '{query.get('api-version')}' is invalid.",
                ),
            )
            return False
        return True

    # --- routes ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        path, query = self._start()
        if self._answered(path):
            return
        if path.startswith("/export-blobs/"):
            self._export_blob(path.removeprefix("/export-blobs/"), query)
        elif path.startswith("/blobstore/"):
            self._blobstore(path.removeprefix("/blobstore/"))
        elif path.startswith("/operations/"):
            self._operation(path.removeprefix("/operations/"), query)
        elif "/providers/microsoft.apimanagement/service/" in path.lower() and "/apis/" in path:
            self._apim_export(path, query)
        else:
            self._send(404, _arm_error("NotFound", f"no route {path}"))

    def do_POST(self) -> None:
        path, query = self._start()
        if self._answered(path):
            return
        if path.lower().endswith("/exportspecification") and "microsoft.apicenter" in path.lower():
            self._center_export(path.removesuffix("/exportSpecification"), query)
        else:
            self._send(404, _arm_error("NotFound", f"no route {path}"))

    def _audience(self) -> str:
        return self.state.audience or self.server.base_url

    def _apim_export(self, path: str, query: dict[str, str]) -> None:
        if self._claims(self._audience()) is None:
            return
        if not self._query(query, APIM_VERSION, {"format", "export"}):
            return
        fmt = query.get("format")
        if fmt not in APIM_FORMATS or query.get("export") != "true":
            self._send(400, _arm_error("ValidationError", f"invalid format {fmt!r} / export"))
            return
        spec = self.state.apim.get(path.lower())
        if spec is None:
            self._send(404, _arm_error("ResourceNotFound", "Api not found."))
            return
        link = self._new_link(spec, ".json")
        self._send(200, {"id": path, "format": APIM_FORMATS[fmt], "value": {"link": link}})

    def _new_link(self, spec: bytes, suffix: str) -> str:
        name = uuid.uuid4().hex + suffix
        sig = secrets.token_urlsafe(24)
        expiry = time.time() + self.state.link_lifetime
        with self.state.lock:
            dead = self.state.expire_links > 0
            self.state.expire_links = max(0, self.state.expire_links - 1)
            self.state.blobs[name] = spec
            self.state.links[name] = (sig, expiry, dead)
        se = datetime.fromtimestamp(expiry, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"{self.server.base_url}/export-blobs/{name}?sv=2021-08-06&sr=b&sig={sig}&se={se}&sp=r"
        )

    def _export_blob(self, name: str, query: dict[str, str]) -> None:
        link = self.state.links.get(name)
        if link is None or query.get("sig") != link[0]:
            self._send(
                403,
                _storage_error("AuthenticationFailed", "Signature did not match."),
                {"x-ms-error-code": "AuthenticationFailed", "Content-Type": "application/xml"},
            )
            return
        _sig, expiry, dead = link
        if dead or time.time() > expiry:
            self._send(
                403,
                _storage_error(
                    "AuthenticationFailed",
                    "Server failed to authenticate the request. Signed expiry time has to be after "
                    "signed start time / the SAS has expired.",
                ),
                {"x-ms-error-code": "AuthenticationFailed", "Content-Type": "application/xml"},
            )
            return
        self._send(200, self.state.blobs[name], {"Content-Type": "application/json"})

    def _center_export(self, definition: str, query: dict[str, str]) -> None:
        if self._claims(self._audience()) is None:
            return
        if not self._query(query, API_CENTER_VERSION, set()):
            return
        if self.body.strip() not in (b"", b"{}"):
            self._send(400, _arm_error("InvalidRequestContent", "the action takes no body"))
            return
        found = self.state.centers.get(definition.lower())
        if found is None:
            self._send(404, _arm_error("ResourceNotFound", "API definition not found."))
            return
        result = (
            {"format": "inline", "value": found.spec.decode()}
            if found.mode == "inline"
            else {"format": "link", "value": self._new_link(found.spec, ".yaml")}
        )
        if found.polls == 0 and not found.fail:
            self._send(200, result)
            return
        op = uuid.uuid4().hex
        error = {"code": "ExportFailed", "message": "the definition could not be exported"}
        with self.state.lock:
            self.state.operations[op] = Operation(
                found.polls, result, error if found.fail else None
            )
        base = f"{self.server.base_url}/operations/{op}"
        self._send(
            202,
            b"",
            {
                "Location": f"{base}/result?api-version={API_CENTER_VERSION}",
                "Azure-AsyncOperation": f"{base}/status?api-version={API_CENTER_VERSION}",
                "Retry-After": "0",
            },
        )

    def _operation(self, rest: str, query: dict[str, str]) -> None:
        if self._claims(self._audience()) is None:
            return
        if not self._query(query, API_CENTER_VERSION, set()):
            return
        op_id, _, kind = rest.partition("/")
        op = self.state.operations.get(op_id)
        if op is None or kind not in ("status", "result"):
            self._send(404, _arm_error("NotFound", "operation not found"))
            return
        with self.state.lock:
            running = op.remaining > 0
            op.remaining = max(0, op.remaining - 1)
        if kind == "status":
            status = "InProgress" if running else ("Failed" if op.error else "Succeeded")
            body: dict[str, Any] = {"id": op_id, "name": op_id, "status": status}
            if status == "Failed":
                body["error"] = op.error
            self._send(200, body, {"Retry-After": "0"} if running else None)
        elif running:
            self._send(202, b"", {"Retry-After": "0"})
        elif op.error:
            self._send(400, {"error": op.error})
        else:
            self._send(200, op.result)

    def _blobstore(self, key: str) -> None:
        if self._claims(STORAGE_AUDIENCE) is None:
            return
        if not self.headers.get("x-ms-version"):
            self._send(
                400,
                _storage_error("MissingRequiredHeader", "x-ms-version"),
                {"x-ms-error-code": "MissingRequiredHeader"},
            )
            return
        data = self.state.store.get(key)
        if data is None:
            self._send(
                404,
                _storage_error("BlobNotFound", "The specified blob does not exist."),
                {"x-ms-error-code": "BlobNotFound"},
            )
            return
        etag = '"0x' + hashlib.sha256(data).hexdigest()[:15].upper() + '"'
        if self.headers.get("if-none-match") == etag:
            self._send(304, b"", {"ETag": etag})
            return
        self._send(200, data, {"ETag": etag, "Content-Type": "application/octet-stream"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ArmSimulator:
    """Start with ``ArmSimulator(verify).start()``; ``url`` is what ``resourceManager`` points at."""

    def __init__(self, verify: Verify, *, audience: str | None = None) -> None:
        self.state = State(verify=verify, audience=audience)
        self._server = _Server(self.state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> ArmSimulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        return self._server.base_url

    def add_apim_api(self, service: str, api: str, spec: bytes) -> None:
        self.state.apim[f"{service}/apis/{api}".lower()] = spec

    def add_definition(
        self,
        definition_id: str,
        spec: bytes,
        *,
        mode: str = "inline",
        polls: int = 0,
        fail: bool = False,
    ) -> None:
        self.state.centers[definition_id.lower()] = Definition(spec, mode, polls, fail)

    def put_blob(self, container: str, name: str, data: bytes) -> str:
        self.state.store[f"{container}/{name}"] = data
        return f"{self.url}/blobstore/{container}/{name}"

    def answer_next(
        self,
        contains: str,
        status: int,
        body: bytes | dict[str, Any] = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next request whose path contains ``contains`` with exactly this, whatever
        the route and the token: a service answering off its contract."""
        with self.state.lock:
            self.state.answers.append((contains, status, body, dict(headers or {})))

    def slow(self, contains: str, seconds: float) -> None:
        """Answer every request whose path contains ``contains`` ``seconds`` later."""
        with self.state.lock:
            self.state.delays.append((contains, seconds))

    def calls(self, contains: str = "") -> list[Logged]:
        with self.state.lock:
            return [r for r in self.state.requests if contains in r.path]
