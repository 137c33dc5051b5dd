"""A strict Power Platform simulator: the PowerApps resource provider and the Dataverse connectors
table, on one loopback port.

It follows /work/shared/reference/powerplatform-api.md and is proven against the real paconn 0.0.21
(tests/powerplatform/test_paconn_contract.py). Strict where the real service is strict, so a client
that passes here does not fail on first contact:

- every call needs ``Authorization: Bearer <JWT>`` (unsigned is fine, claims are read: ``aud``,
  ``oid``, ``idtyp``, ``exp``); wrong audience -> 401 ``InvalidAuthenticationToken`` with the RP's
  message; ``faults.refuse_app_tokens`` makes the RP refuse ``idtyp=app`` tokens the same way;
- ``properties`` members outside what the RP deserialises -> 400 ``InvalidRequestContent`` with the
  Json.NET message (``stackOwner`` included, as in paconn issue #614);
- the definition is only readable through ``apiDefinitions.originalSwaggerUrl``, a SAS URL served
  WITHOUT authentication (a request that sends an Authorization header there is refused, so a
  client cannot leak its RP token to a storage account); ``properties.swagger`` is the runtime copy
  with the APIM host, as on the real RP;
- OAuth client secrets are write-only (stored aside, never returned), as on the real RP; Dataverse
  blanks them (documented: "Microsoft doesn't store secrets in Dataverse for custom connectors");
- PATCH replaces the connector's members with what is sent (displayName and description are kept
  when absent; iconUri absent -> default icon; ``scriptDefinitionUrl: ""`` deletes custom code);
- the definition's platform limits (reference 4.1), on validateApiSwagger, create and PATCH alike:
  Swagger/OpenAPI 2.0 only (``"swagger": "2.0"``; an ``openapi: 3.x`` document is refused), less
  than 1 MB (``DEFINITION_LIMIT_BYTES``, measured as the project's client measures it: compact
  UTF-8 JSON, so a definition the client lets through is not refused here for its size, and the
  reverse), at most 256 operations per swagger;
- an OAuth security definition with ``flow: application`` or ``password`` is stored as
  ``accessCode`` (reference 2.2, PowerPlatformConnectors issue #708: client-credentials and
  password grants are not supported and the flow is reverted on update), so a client that writes
  one reads back something else; validateApiSwagger does not refuse it;
- a Dataverse create needs ``connectorid`` (in the body, or the key of an upserting PATCH),
  ``name``, ``displayname``, ``openapidefinition`` and ``connectortype`` (reference 3.2), and
  ``openapidefinition`` must be a Swagger 2.0 document as well as at most 500,000 characters.

Behaviour marked INFERRED below is not in the reference; it is the simplest strict choice.

Usage::

    sim = start_simulator()
    sim.seed_powerapps("env-1", "shared_x-1", definition, properties)
    sim.faults.add(status=429, retry_after=1, method="PATCH")
    ...
    sim.requests  # what clients sent
    sim.stop()
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import jwt

API_VERSION = "2016-11-01"
PA_PREFIX = "/providers/Microsoft.PowerApps/"
FLOW_ENVIRONMENTS = "/providers/Microsoft.ProcessSimple/environments"
DV_PREFIX = "/api/data/v9.2/"
POWERAPPS_AUDIENCES = frozenset({"https://service.powerapps.com", "https://service.powerapps.com/"})

# What the RP's ApiPropertiesDefinition deserialises (reference 1.4); anything else is refused.
RP_PROPERTIES = frozenset(
    {
        "connectionParameters",
        "connectionParameterSets",
        "iconBrandColor",
        "scriptOperations",
        "capabilities",
        "policyTemplateInstances",
        "publisher",
        "openApiDefinition",
        "backendService",
        "environment",
        "displayName",
        "description",
        "iconUri",
        "scriptDefinitionUrl",
    }
)
RP_TOP_LEVEL = frozenset({"properties", "name", "id", "type"})
# Members stored per connector and returned by GET (besides RP-computed ones).
CONNECTOR_MEMBERS = (
    "connectionParameters",
    "connectionParameterSets",
    "iconBrandColor",
    "scriptOperations",
    "capabilities",
    "policyTemplateInstances",
    "publisher",
    "stackOwner",  # only ever present when seeded (certified connectors carry it)
)

# Dataverse connector table (reference 3.2): writable string columns and their max lengths.
DV_STRING_COLUMNS = {
    "connectionparameters": 500_000,
    "connectionparametersets": 500_000,
    "connectorinternalid": 400,
    "customcodeblobcontent": 500_000,
    "description": 1000,
    "displayname": 200,
    "iconbrandcolor": 100,
    "name": 500,
    "openapidefinition": 500_000,
    "policytemplateinstances": 500_000,
    "scriptoperations": 500_000,
}
DV_WRITABLE = frozenset(DV_STRING_COLUMNS) | {
    "connectorid",
    "connectortype",
    "capabilities",
    "statecode",
    "statuscode",
    "iscustomizable",
}
DV_READ_ONLY = frozenset(
    {
        "componentstate",
        "ismanaged",
        "solutionid",
        "createdon",
        "modifiedon",
        "versionnumber",
        "iconblob_url",
        "iconblobid",
        "overwritetime",
    }
)
DV_COLUMNS = DV_WRITABLE | DV_READ_ONLY
# Platform limits on a definition (reference 4.1).
DEFINITION_LIMIT_BYTES = 1_000_000  # "less than 1 MB": refused at this size (compact UTF-8 JSON)
MAX_OPERATIONS = 256  # "max operations per swagger"
OPERATION_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
# Validator rule messages (reference Appendix A: SpecificationVersionIncorrect,
# TotalOperationsCountExceedsMaxAllowed).
SPEC_VERSION_MESSAGE = "The 'swagger' property must have the string value \"2.0\"."
OPERATIONS_MESSAGE = (
    "The total number of operations in the swagger exceeds the maximum allowed value of "
    f"'{MAX_OPERATIONS}'."
)
# OAuth grants a custom connector does not support: stored as accessCode (reference 2.2, #708).
REVERTED_OAUTH_FLOWS = frozenset({"application", "password"})
# Columns a Dataverse create must carry (reference 3.2: "POST with at least connectorid, name,
# displayname, openapidefinition, connectortype"). Dataverse generates the key of most tables; that
# it refuses a connector create without one is INFERRED from that documented minimum.
DV_CREATE_REQUIRED = ("connectorid", "name", "displayname", "openapidefinition", "connectortype")

DV_NOT_FOUND = "0x80040217"
DV_BAD_PROPERTY = "0x80060888"
DV_TOO_LONG = "0x80044331"
DV_DUPLICATE = "0x80040237"
DV_INVALID_ARGUMENT = "0x80040203"


@dataclass
class Recorded:
    """One request as the simulator received it."""

    method: str
    path: str
    query: dict[str, str]
    raw_query: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Fault:
    method: str | None
    path: str  # regular expression searched in the path
    status: int | None  # None: answer normally after ``delay``
    times: int
    retry_after: float | None = None
    body: bytes | None = None  # None: the service's JSON error shape
    content_type: str = "application/json"
    code: str = "InternalServerError"
    message: str | None = None
    delay: float = 0.0
    acted: bool = False  # carry the request out, then answer ``status`` (a gateway's 502, F3)


@dataclass
class Faults:
    """Switchable failures; a scripted fault fires ``times`` times on matching requests."""

    refuse_app_tokens: bool = False
    propagation_seconds: float = 0.0  # read-back serves the previous definition this long
    slow_seconds: float = 0.0  # every answer waits this long
    _scripted: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        *,
        status: int | None = 500,
        method: str | None = None,
        path: str = "",
        times: int = 1,
        retry_after: float | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        code: str | None = None,
        message: str | None = None,
        delay: float = 0.0,
        acted: bool = False,
    ) -> None:
        default_code = {429: "TooManyRequests", 502: "BadGateway", 503: "ServiceUnavailable"}
        with self._lock:
            self._scripted.append(
                Fault(
                    method=method.upper() if method else None,
                    path=path,
                    status=status,
                    times=times,
                    retry_after=retry_after,
                    body=body,
                    content_type=content_type,
                    code=code or default_code.get(status or 0, "InternalServerError"),
                    message=message,
                    delay=delay,
                    acted=acted,
                )
            )

    def clear(self) -> None:
        with self._lock:
            self._scripted.clear()
        self.refuse_app_tokens = False
        self.propagation_seconds = 0.0
        self.slow_seconds = 0.0

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._scripted:
                if fault.times <= 0:
                    continue
                if fault.method and fault.method != method:
                    continue
                if fault.path and not re.search(fault.path, path):
                    continue
                fault.times -= 1
                return fault
        return None


class Reply:
    def __init__(
        self,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json; charset=utf-8",
    ) -> None:
        self.status = status
        self.headers = dict(headers or {})
        if raw is not None:
            self.body = raw
        elif body is None:
            self.body = b""
        else:
            self.body = json.dumps(body).encode()
        if self.body:
            self.headers.setdefault("Content-Type", content_type)


def rp_error(status: int, code: str, message: str) -> Reply:
    return Reply(
        status,
        {"error": {"code": code, "message": message}},
        headers={"x-ms-correlation-request-id": str(uuid.uuid4())},
    )


def dv_error(status: int, code: str, message: str) -> Reply:
    return Reply(
        status,
        {"error": {"code": code, "message": message}},
        headers={"x-ms-service-request-id": str(uuid.uuid4()), "OData-Version": "4.0"},
    )


def _not_routed(url: str) -> Reply:
    return Reply(
        404, {"message": f"No HTTP resource was found that matches the request URI '{url}'."}
    )


def _member_error(body: bytes, member: str, owner: str, path: str) -> Reply:
    at = body.find(f'"{member}"'.encode())
    position = at + len(member) + 3 if at >= 0 else 1
    return rp_error(
        400,
        "InvalidRequestContent",
        "The request content was invalid and could not be deserialized: "
        f"'Could not find member '{member}' on object of type '{owner}'. "
        f"Path '{path}', line 1, position {position}.'.",
    )


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime())


def load_measured(body: bytes) -> tuple[Any, int | None]:
    """``json.loads(body)``, and a size no value in it can exceed once encoded as compact UTF-8
    JSON (None when the body is not UTF-8). Re-encoding a UTF-8 text only shrinks it (whitespace,
    escapes such as ``\\u00e9``, repeated keys) except where a float is spelled shorter than Python
    spells it (``1e15`` is ``1000000000000000.0``), and that growth is counted: a definition whose
    bound is under the limit is measured without encoding it again (~2.5 ms for 512 KB)."""
    growth = 0

    def parse_float(token: str) -> float:
        nonlocal growth
        value = float(token)
        growth += max(0, len(json.dumps(value)) - len(token))
        return value

    doc = json.loads(body, parse_float=parse_float)
    utf8 = json.detect_encoding(body) in ("utf-8", "utf-8-sig")
    return doc, (len(body) + growth if utf8 else None)


def compact_size(doc: Any) -> int:
    """Bytes of the compact UTF-8 JSON of ``doc``, the project client's measure
    (``sync.spec.canonical.compact_size``); a lone surrogate counts as its 3 bytes."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8", "surrogatepass"))


def operation_count(doc: dict[str, Any]) -> int:
    """Operations of a Swagger 2.0 document: the methods of every path item."""
    paths = doc.get("paths")
    if not isinstance(paths, dict):
        return 0
    return sum(
        1
        for key, item in paths.items()
        if str(key).startswith("/") and isinstance(item, dict)
        for method in OPERATION_METHODS
        if isinstance(item.get(method), dict)
    )


def definition_problem(doc: Any, bound: int | None = None) -> str | None:
    """Why the platform refuses ``doc`` as a connector definition (reference 4.1), or None.
    ``bound``: a size its compact UTF-8 JSON cannot exceed (``load_measured``); None measures."""
    if not isinstance(doc, dict) or doc.get("swagger") != "2.0":
        return SPEC_VERSION_MESSAGE
    if bound is None or bound >= DEFINITION_LIMIT_BYTES:
        size = compact_size(doc)
        if size >= DEFINITION_LIMIT_BYTES:
            # INFERRED wording: the limit is documented, its refusal is not (reference 5.2,
            # "RequestEntityTooLarge / 413 for big swaggers: no thread found"), so it is answered
            # like the validator's other refusals
            return (
                f"The OpenAPI definition is {size:,} bytes; it must be less than 1 MB "
                f"({DEFINITION_LIMIT_BYTES:,} bytes)."
            )
    if operation_count(doc) > MAX_OPERATIONS:
        return OPERATIONS_MESSAGE
    return None


def revert_unsupported_flows(doc: dict[str, Any]) -> None:
    """Store OAuth ``application`` / ``password`` flows as ``accessCode``, in place (reference 2.2:
    client-credentials grants "(for example, application and password)" are not supported, and
    issue #708 saw ``flow: application`` reverted to accessCode on update). Swagger 2.0's accessCode
    needs an ``authorizationUrl``, which those flows do not have, and what the platform puts there
    is not known: INFERRED, the ``tokenUrl`` (the Azure AD connectors of the corpus carry one URL
    in both), and nothing when there is no ``tokenUrl`` either (not valid Swagger 2.0 as sent)."""
    schemes = doc.get("securityDefinitions")
    if not isinstance(schemes, dict):
        return
    for scheme in schemes.values():
        if not isinstance(scheme, dict) or scheme.get("type") != "oauth2":
            continue
        if scheme.get("flow") in REVERTED_OAUTH_FLOWS:
            scheme["flow"] = "accessCode"
            if "authorizationUrl" not in scheme and "tokenUrl" in scheme:
                scheme["authorizationUrl"] = scheme["tokenUrl"]


def _strip_secrets(properties: dict[str, Any], *, blank: bool = False) -> list[str]:
    """Take clientSecret out of every oAuthSettings, removed (the PowerApps API) or ``blank``ed
    to "" (Dataverse, reference 3.2); return what was taken."""
    found: list[str] = []

    def scan(params: Any) -> None:
        if isinstance(params, dict):
            for value in params.values():
                settings = value.get("oAuthSettings") if isinstance(value, dict) else None
                if isinstance(settings, dict) and "clientSecret" in settings:
                    found.append(str(settings.pop("clientSecret")))
                    if blank:
                        settings["clientSecret"] = ""

    scan(properties.get("connectionParameters"))
    sets = properties.get("connectionParameterSets")
    if isinstance(sets, dict):
        for item in sets.get("values") or []:
            if isinstance(item, dict):
                scan(item.get("parameters"))
    return found


@dataclass
class _PaConnector:
    env: str
    cid: str
    members: dict[str, Any]
    display_name: str
    description: str
    icon_uri: str
    backend: dict[str, Any] | None
    versions: list[tuple[float, dict[str, Any], str]]  # (visible from, definition, blob ETag)
    sig: str
    script: str | None = None
    secrets: list[str] = field(default_factory=list)
    created: str = field(default_factory=_now_iso)
    changed: str = field(default_factory=_now_iso)
    blobs: dict[str, bytes] = field(default_factory=dict)  # blob ETag -> the bytes it serves

    def add_version(self, visible_from: float, definition: dict[str, Any]) -> None:
        """A write: the RP stores the definition as a blob once (a new ETag), and Blob Storage
        serves those stored bytes to every GET; nothing is serialized again per read."""
        etag = _blob_etag()
        self.versions.append((visible_from, definition, etag))
        self.blobs[etag] = json.dumps(definition).encode()

    def visible_definition(self) -> dict[str, Any]:
        return self.visible_version()[0]

    def visible_version(self) -> tuple[dict[str, Any], str]:
        """The definition the blob serves now, and the blob's ETag (new on every write)."""
        now = time.monotonic()
        visible = [(d, etag) for t, d, etag in self.versions if t <= now]
        return visible[-1] if visible else self.versions[0][1:]


def _blob_etag() -> str:
    """An ETag as Blob Storage gives one: opaque, quoted, different on every write (random, so a
    simulator restarted on a reused port never repeats one a client still remembers)."""
    return f'"0x{secrets.token_hex(8).upper()}"'


def _none_match(header: str | None, etag: str) -> bool:
    """If-None-Match (RFC 9110 13.1.2, weak comparison for GET): ``*`` or one of the listed tags."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


class Simulator:
    """The running simulator; create it with ``start_simulator()``."""

    def __init__(self) -> None:
        self.faults = Faults()
        self._requests: list[Recorded] = []
        self._lock = threading.RLock()
        self._pa: dict[tuple[str, str], _PaConnector] = {}
        self._dv: dict[str, dict[str, Any]] = {}
        self._dv_solutions: dict[str, str] = {}
        self.environments: set[str] = set()
        self.validate_failures: dict[str, str] = {}  # title -> message: validateApiSwagger refuses
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Simulator:
        sim = self

        class Handler(_Handler):
            simulator = sim

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    # --- seeding and inspection --------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def requests_to(self, method: str, path_pattern: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(path_pattern, r.path)]

    def rotate_blob_sas(self, env: str, cid: str) -> None:
        """Issue a new SAS for the connector's blobs: URLs handed out before now answer 403, as an
        expired or re-issued signature would (whether the real RP rotates on update is unknown)."""
        with self._lock:
            self._pa[(env, cid)].sig = secrets.token_hex(8)

    def seed_powerapps(
        self,
        env: str,
        connector_id: str,
        definition: dict[str, Any],
        properties: dict[str, Any] | None = None,
        *,
        display_name: str | None = None,
        description: str = "",
        script: str | None = None,
    ) -> None:
        """Put a connector in place as if created in the portal. ``properties`` is the
        ``properties`` object of an apiProperties.json (or the whole file)."""
        props = copy.deepcopy(properties or {})
        if set(props) == {"properties"}:
            props = props["properties"]
        members = {k: props[k] for k in CONNECTOR_MEMBERS if k in props}
        secrets_ = _strip_secrets(members)
        with self._lock:
            self.environments.add(env)
            self._pa[(env, connector_id)] = _PaConnector(
                env=env,
                cid=connector_id,
                members=members,
                display_name=display_name or str((definition.get("info") or {}).get("title", "")),
                description=description,
                icon_uri=f"{self.url}/blob/icons/default.png",
                backend=None,
                versions=[],
                sig=secrets.token_hex(8),
                script=script,
                secrets=secrets_,
            )
            self._pa[(env, connector_id)].add_version(0.0, copy.deepcopy(definition))

    def powerapps_connector(self, env: str, connector_id: str) -> dict[str, Any]:
        """What the simulator holds: members, definition (latest), secrets, names."""
        with self._lock:
            rec = self._pa[(env, connector_id)]
            return copy.deepcopy(
                {
                    "members": rec.members,
                    "definition": rec.versions[-1][1],
                    "displayName": rec.display_name,
                    "description": rec.description,
                    "iconUri": rec.icon_uri,
                    "backendService": rec.backend,
                    "script": rec.script,
                    "secrets": rec.secrets,
                }
            )

    def powerapps_ids(self, env: str) -> list[str]:
        with self._lock:
            return sorted(cid for (e, cid) in self._pa if e == env)

    def seed_dataverse(
        self,
        connector_id: str,
        *,
        name: str,
        definition: dict[str, Any] | None,
        displayname: str | None = None,
        description: str = "",
        columns: dict[str, Any] | None = None,
    ) -> None:
        """Put a row in the connector table; ``columns`` are other columns (strings as stored)."""
        row: dict[str, Any] = {
            "connectorid": connector_id,
            "name": name,
            "displayname": displayname or name,
            "description": description,
            "connectortype": 1,
            "openapidefinition": json.dumps(definition) if definition is not None else None,
        }
        row.update(copy.deepcopy(columns or {}))
        self._dv_stamp(row)
        with self._lock:
            self._dv[connector_id.lower()] = row

    def dataverse_row(self, connector_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._dv[connector_id.lower()])

    def dataverse_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._dv)

    def dataverse_solution(self, connector_id: str) -> str | None:
        return self._dv_solutions.get(connector_id.lower())

    # --- dispatch ----------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(target)
        path, raw_query = parts.path, parts.query
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        with self._lock:
            self._requests.append(Recorded(method, path, query, raw_query, headers, body))
        if self.faults.slow_seconds:
            time.sleep(self.faults.slow_seconds)
        fault = self.faults.take(method, path)
        if fault and fault.delay:
            time.sleep(fault.delay)
        url = f"{self.url}{target}"
        if fault is None or fault.status is None:
            return self._route(method, path, query, headers, body, url)
        if fault.acted:
            self._route(method, path, query, headers, body, url)  # carried out, answer lost
        return self._fault_reply(fault, path)

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        url: str,
    ) -> Reply:
        if path.startswith("/blob/"):
            return self._blob(method, path, query, headers)
        if path.startswith(PA_PREFIX):
            return self._powerapps(method, path[len(PA_PREFIX) :], query, headers, body, url)
        if path == FLOW_ENVIRONMENTS:
            return self._environments(method, query, headers, url)
        if path.startswith(DV_PREFIX):
            return self._dataverse(method, path[len(DV_PREFIX) :], query, headers, body, url)
        return _not_routed(url)

    def _fault_reply(self, fault: Fault, path: str) -> Reply:
        extra: dict[str, str] = {"x-ms-request-id": str(uuid.uuid4())}
        if fault.retry_after is not None:
            extra["Retry-After"] = f"{fault.retry_after:g}"
        if fault.body is not None:
            return Reply(
                fault.status or 500, raw=fault.body, headers=extra, content_type=fault.content_type
            )
        tracking = str(uuid.uuid4())
        message = fault.message or (
            f"Encountered internal server error. The tracking Id is '{tracking}'."
            if (fault.status or 500) >= 500
            else "Rate limit is exceeded. Try again later."
        )
        reply = (dv_error if path.startswith(DV_PREFIX) else rp_error)(
            fault.status or 500, fault.code, message
        )
        reply.headers.update(extra)
        return reply

    # --- auth --------------------------------------------------------------------------------

    def _claims(
        self, headers: dict[str, str], audiences: set[str] | frozenset[str]
    ) -> dict[str, Any] | str:
        """Claims of a valid bearer token, or the reason it is refused."""
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "The access token is missing or invalid."
        try:
            claims = jwt.decode(token.strip(), options={"verify_signature": False})
        except jwt.PyJWTError:
            return "The access token is invalid."
        if "exp" in claims and float(claims["exp"]) < time.time():
            return "The access token has expired."
        if str(claims.get("aud", "")) not in audiences:
            return "The received access token has been obtained from wrong audience or resource."
        return claims

    # --- PowerApps RP --------------------------------------------------------------------------

    def _powerapps(
        self,
        method: str,
        rest: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        url: str,
    ) -> Reply:
        claims = self._claims(headers, POWERAPPS_AUDIENCES)
        if isinstance(claims, str):
            return rp_error(401, "InvalidAuthenticationToken", claims)
        if self.faults.refuse_app_tokens and claims.get("idtyp") == "app":
            return rp_error(
                401,
                "InvalidAuthenticationToken",
                "The access token is an application token; this API requires a user token.",
            )
        version = query.get("api-version")
        if version != API_VERSION:  # INFERRED: ARM-style message
            return rp_error(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. The supported versions are '{API_VERSION}'.",
            )
        segments = rest.split("/")
        if segments[0] == "objectIds" and len(segments) == 3 and method == "POST":
            oid, action = segments[1], segments[2]
            if not oid:
                return _not_routed(url)
            if action == "validateApiSwagger":
                return self._validate(oid, claims, body)
            if action == "generateResourceStorage":
                return Reply(
                    200,
                    {
                        "sharedAccessSignature": "https://simstorage.blob.core.windows.net/"
                        f"uploads-{oid}?sv=2018-03-28&sr=c&sig={secrets.token_hex(6)}&sp=rw"
                    },
                )
            return _not_routed(url)
        if segments[0] != "apis" or len(segments) > 2:
            return _not_routed(url)
        env = _environment_filter(query.get("$filter", ""))
        if env is None:  # INFERRED: the RP scopes every apis call to one environment
            return rp_error(
                400,
                "EnvironmentNotSpecified",
                "The request must filter on one environment: $filter=environment eq '<name>'.",
            )
        if len(segments) == 1:
            if method == "GET":
                return self._list(env)
            if method == "POST":
                return self._upsert(env, None, body, claims)
            return rp_error(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")
        cid = segments[1]
        with self._lock:
            rec = self._pa.get((env, cid))
        if rec is None:  # INFERRED code
            return rp_error(
                404, "ApiNotFound", f"The API '{cid}' could not be found in environment '{env}'."
            )
        if method == "GET":
            return Reply(200, self._registration(rec))
        if method == "PATCH":
            return self._upsert(env, rec, body, claims)
        return rp_error(405, "MethodNotAllowed", f"The method '{method}' is not allowed.")

    def _validate(self, oid: str, claims: dict[str, Any], body: bytes) -> Reply:
        if oid != str(claims.get("oid", "")):  # INFERRED
            return rp_error(403, "Forbidden", f"The object id '{oid}' does not match the caller.")
        try:
            doc, bound = load_measured(body or b"null")
        except ValueError:
            return rp_error(400, "InvalidRequestContent", "The request content was invalid.")
        problem = definition_problem(doc, bound)
        if problem:  # INFERRED code; messages from the validator rules where they have one
            return rp_error(400, "SwaggerValidationFailed", problem)
        title = str((doc.get("info") or {}).get("title", ""))
        if title in self.validate_failures:
            return rp_error(400, "SwaggerValidationFailed", self.validate_failures[title])
        return Reply(200, "")

    def _list(self, env: str) -> Reply:
        with self._lock:
            items = [
                self._registration(r, listing=True) for (e, _), r in self._pa.items() if e == env
            ]
        return Reply(200, {"value": items})

    def _registration(self, rec: _PaConnector, *, listing: bool = False) -> dict[str, Any]:
        definition = rec.visible_definition()
        slug = rec.cid.removeprefix("shared_")
        # a shallow copy: the registration is serialized at once and never kept or changed
        runtime = {**definition, "host": "europe-002.azure-apim.net", "basePath": f"/apim/{slug}"}
        expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        sas = f"sv=2018-03-28&sr=b&sig={rec.sig}&se={quote(expiry)}&sp=r"
        user = {"id": str(uuid.uuid4()), "displayName": "Sim Maker", "type": "User"}
        props: dict[str, Any] = {
            "displayName": rec.display_name,
            "iconUri": rec.icon_uri,
            "contact": {},
            "license": {},
            "apiEnvironment": "Shared",
            "isCustomApi": True,
            "connectionParameters": {},
            "runtimeUrls": [f"https://europe-002.azure-apim.net/apim/{slug}"],
            "primaryRuntimeUrl": f"https://europe-002.azure-apim.net/apim/{slug}",
            "metadata": {
                "source": "powerapps-user-defined",
                "environmentName": rec.env,
                "xrmConnectorId": None,
                "almMode": "Environment",
                "allowSharing": False,
            },
            "capabilities": [],
            "description": rec.description,
            "apiDefinitions": {
                "originalSwaggerUrl": f"{self.url}/blob/api-swagger-files/{rec.cid}.json_original?{sas}",
                "modifiedSwaggerUrl": f"{self.url}/blob/api-swagger-files/{rec.cid}.json?{sas}",
            },
            "createdBy": user,
            "modifiedBy": user,
            "createdTime": rec.created,
            "changedTime": rec.changed,
            "environment": {
                "id": f"/providers/Microsoft.PowerApps/environments/{rec.env}",
                "name": rec.env,
            },
            "tier": "Standard",
            "almMode": "Environment",
        }
        props.update(copy.deepcopy(rec.members))
        if rec.script:
            props["scriptDefinitionUrl"] = f"{self.url}/blob/scripts/{rec.cid}.csx?{sas}"
        if not listing:
            props["swagger"] = runtime
            props["wadlUrl"] = f"{self.url}/blob/wadl/{rec.cid}.wadl?{sas}"
            if rec.backend is not None:
                props["backendService"] = copy.deepcopy(rec.backend)
        return {
            "name": rec.cid,
            "id": f"/providers/Microsoft.PowerApps/apis/{rec.cid}",
            "type": "Microsoft.PowerApps/apis",
            "properties": props,
        }

    def _upsert(
        self, env: str, rec: _PaConnector | None, body: bytes, claims: dict[str, Any]
    ) -> Reply:
        try:
            doc, bound = load_measured(body)
        except ValueError:
            return rp_error(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: "
                "'Unexpected character encountered while parsing value. Path '', line 1, position 1.'.",
            )
        if not isinstance(doc, dict) or not isinstance(doc.get("properties"), dict):
            return rp_error(
                400, "InvalidRequestContent", "The request content must have a 'properties' object."
            )
        for key in doc:
            if key not in RP_TOP_LEVEL:
                return _member_error(body, key, "ApiRegistrationDefinition", key)
        props: dict[str, Any] = doc["properties"]
        for key in props:
            if key not in RP_PROPERTIES:
                return _member_error(body, key, "ApiPropertiesDefinition", f"properties.{key}")
        problem = _shape_problem(props, env, creating=rec is None)
        if problem:
            return rp_error(400, "InvalidRequestContent", problem)
        problem = definition_problem(props["openApiDefinition"], bound)
        if problem:  # INFERRED: a write refuses what validateApiSwagger refuses, the same way
            return rp_error(400, "SwaggerValidationFailed", problem)
        members = {k: copy.deepcopy(props[k]) for k in CONNECTOR_MEMBERS if k in props}
        secrets_ = _strip_secrets(members)
        definition = copy.deepcopy(props["openApiDefinition"])
        revert_unsupported_flows(definition)
        script_url = props.get("scriptDefinitionUrl")
        with self._lock:
            if rec is None:
                cid = f"shared_sim-{secrets.token_hex(9)}-{secrets.token_hex(9)}"
                rec = _PaConnector(
                    env=env,
                    cid=cid,
                    members={},
                    display_name=str(props["displayName"]),
                    description="",
                    icon_uri="",
                    backend=None,
                    versions=[],
                    sig=secrets.token_hex(8),
                )
                self._pa[(env, cid)] = rec
                self.environments.add(env)
                status = 201
            else:
                status = 200
            rec.members = members
            rec.secrets = secrets_
            if "displayName" in props:
                rec.display_name = str(props["displayName"])
            if "description" in props:
                rec.description = str(props["description"] or "")
            rec.icon_uri = str(props.get("iconUri") or f"{self.url}/blob/icons/default.png")
            rec.backend = copy.deepcopy(props.get("backendService"))
            if script_url == "" or script_url is None:
                rec.script = None  # paconn's "" (and an omitted member: PATCH replaces) drop code
            elif not str(script_url).startswith(f"{self.url}/blob/scripts/{rec.cid}.csx"):
                rec.script = f"uploaded:{script_url}"
            rec.add_version(time.monotonic() + self.faults.propagation_seconds, definition)
            rec.changed = _now_iso()
            return Reply(status, self._registration(rec))

    def _environments(
        self, method: str, query: dict[str, str], headers: dict[str, str], url: str
    ) -> Reply:
        claims = self._claims(
            headers, POWERAPPS_AUDIENCES | {"https://service.flow.microsoft.com/"}
        )
        if isinstance(claims, str):
            return rp_error(401, "InvalidAuthenticationToken", claims)
        if method != "GET":
            return _not_routed(url)
        with self._lock:
            envs = sorted(self.environments)
        return Reply(
            200,
            {"value": [{"name": e, "properties": {"displayName": f"Sim {e}"}} for e in envs]},
        )

    def _blob(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> Reply:
        def storage_error(status: int, code: str, message: str) -> Reply:
            xml = (
                f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error>"
            ).encode()
            return Reply(status, raw=xml, content_type="application/xml")

        if method != "GET":
            return storage_error(
                405, "UnsupportedHttpVerb", "The resource doesn't support the verb."
            )
        if "authorization" in headers:  # a SAS URL: a bearer token here is a leaked RP credential
            return storage_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request: an Authorization header was sent "
                "together with a SAS.",
            )
        match = re.fullmatch(
            r"/blob/(api-swagger-files|scripts)/(.+?)\.(json_original|json|csx)", path
        )
        if not match:
            return storage_error(404, "BlobNotFound", "The specified blob does not exist.")
        cid = match.group(2)
        with self._lock:
            found = [r for (_, c), r in self._pa.items() if c == cid]
        if not found or query.get("sig") != found[0].sig:
            return storage_error(
                403, "AuthenticationFailed", "Signature did not match or the SAS is not valid."
            )
        rec = found[0]
        if match.group(3) == "csx":
            if not rec.script:
                return storage_error(404, "BlobNotFound", "The specified blob does not exist.")
            return Reply(200, raw=rec.script.encode(), content_type="application/octet-stream")
        _, etag = rec.visible_version()
        if _none_match(headers.get("if-none-match"), etag):  # Get Blob's conditional headers
            return Reply(304, headers={"ETag": etag})
        return Reply(
            200,
            raw=rec.blobs[etag],
            headers={"ETag": etag},
            content_type="application/octet-stream",
        )

    # --- Dataverse ---------------------------------------------------------------------------

    def _dataverse(
        self,
        method: str,
        rest: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        url: str,
    ) -> Reply:
        claims = self._claims(headers, {self.url, f"{self.url}/"})
        if isinstance(claims, str):  # Dataverse answers 401 with an empty body
            return Reply(
                401,
                headers={"WWW-Authenticate": f'Bearer authorization_uri="{self.url}/authorize"'},
            )
        match = re.fullmatch(r"connectors(?:\((.*)\))?", rest)
        if not match:
            return dv_error(
                404, DV_BAD_PROPERTY, f"Resource not found for the segment '{rest.split('/')[0]}'."
            )
        key = match.group(1)
        select = [c for c in query.get("$select", "").split(",") if c]
        for column in select:
            if column not in DV_COLUMNS:
                return dv_error(
                    400,
                    DV_BAD_PROPERTY,
                    f"Could not find a property named '{column}' on type "
                    "'Microsoft.Dynamics.CRM.connector'.",
                )
        if key is None:
            if method == "GET":
                return self._dv_query(query, select)
            if method == "POST":
                return self._dv_write(None, headers, body, creating=True)
            return dv_error(405, DV_INVALID_ARGUMENT, f"The method '{method}' is not allowed.")
        try:
            cid = str(uuid.UUID(key))
        except ValueError:
            return dv_error(
                400, DV_INVALID_ARGUMENT, f"Unrecognized 'Edm.Guid' literal '{key}' in the key."
            )
        with self._lock:
            row = self._dv.get(cid)
        if method == "GET":
            if row is None:
                return dv_error(404, DV_NOT_FOUND, f"connector With Id = {cid} Does Not Exist")
            return Reply(200, self._dv_view(row, select), headers={"OData-Version": "4.0"})
        if method == "PATCH":
            if row is None and headers.get("if-match") == "*":
                return dv_error(404, DV_NOT_FOUND, f"connector With Id = {cid} Does Not Exist")
            return self._dv_write(cid, headers, body, creating=row is None)
        return dv_error(405, DV_INVALID_ARGUMENT, f"The method '{method}' is not allowed.")

    def _dv_query(self, query: dict[str, str], select: list[str]) -> Reply:
        text = query.get("$filter", "")
        rows = self._dv_rows()
        if text:
            match = re.fullmatch(
                r"contains\((\w+),'((?:[^']|'')*)'\)|(\w+) eq '((?:[^']|'')*)'", text
            )
            if not match:  # INFERRED: only the filters our clients use are modelled
                return dv_error(
                    400, DV_BAD_PROPERTY, f"The query filter '{text}' is not supported."
                )
            column = match.group(1) or match.group(3)
            value = (match.group(2) if match.group(1) else match.group(4)).replace("''", "'")
            if column not in DV_COLUMNS:
                return dv_error(
                    400,
                    DV_BAD_PROPERTY,
                    f"Could not find a property named '{column}' on type "
                    "'Microsoft.Dynamics.CRM.connector'.",
                )
            if match.group(1):
                pattern = _like_regex(value)
                rows = [r for r in rows if pattern.search(str(r.get(column) or ""))]
            else:
                rows = [r for r in rows if str(r.get(column) or "").lower() == value.lower()]
        return Reply(
            200,
            {
                "@odata.context": f"{self.url}/api/data/v9.2/$metadata#connectors",
                "value": [self._dv_view(r, select) for r in rows],
            },
        )

    def _dv_rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._dv.values()]

    def _dv_view(self, row: dict[str, Any], select: list[str]) -> dict[str, Any]:
        columns = select or sorted(DV_COLUMNS)
        view = {c: copy.deepcopy(row.get(c)) for c in columns}
        view["connectorid"] = row["connectorid"]
        view["@odata.etag"] = f'W/"{row["versionnumber"]}"'
        return view

    def _dv_stamp(self, row: dict[str, Any]) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        row.setdefault("createdon", now)
        row["modifiedon"] = now
        row["versionnumber"] = int(row.get("versionnumber") or 1000) + 1
        row.setdefault("componentstate", 0)
        row.setdefault("ismanaged", False)
        row.setdefault("statecode", 0)
        row.setdefault("statuscode", 1)

    def _dv_write(
        self, cid: str | None, headers: dict[str, str], body: bytes, *, creating: bool
    ) -> Reply:
        try:
            doc = json.loads(body)
        except ValueError:
            return dv_error(400, "0x80040216", "The request body is not valid JSON.")
        if not isinstance(doc, dict):
            return dv_error(400, DV_INVALID_ARGUMENT, "The request body must be a JSON object.")
        for column, value in doc.items():
            if column not in DV_WRITABLE:
                return dv_error(
                    400,
                    DV_BAD_PROPERTY,
                    f"Invalid property '{column}' was found in entity 'Microsoft.Dynamics.CRM.connector'.",
                )
            limit = DV_STRING_COLUMNS.get(column)
            if limit is not None and value is not None:
                if not isinstance(value, str):
                    return dv_error(
                        400,
                        "0x0",
                        "An error occurred while validating input parameters: "
                        "Microsoft.OData.ODataException: Cannot convert the literal to the expected "
                        f"type 'Edm.String' for property '{column}'.",
                    )
                if len(value.encode("utf-16-le")) // 2 > limit:
                    return dv_error(
                        400,
                        DV_TOO_LONG,
                        f"A validation error occurred. The length of the '{column}' attribute of the "
                        f"'connector' entity exceeded the maximum allowed length of '{limit}'.",
                    )
        if not creating and "name" in doc:
            return dv_error(
                400, DV_INVALID_ARGUMENT, "The 'name' attribute of 'connector' cannot be updated."
            )
        if "connectortype" in doc and doc["connectortype"] not in (0, 1):
            return dv_error(
                400,
                DV_INVALID_ARGUMENT,
                f"A validation error occurred. The value {doc['connectortype']} of 'connectortype' "
                "on record of type 'connector' is outside the valid range.",
            )
        if "openapidefinition" in doc and doc["openapidefinition"] is not None:
            try:
                parsed = json.loads(doc["openapidefinition"])
            except ValueError:  # INFERRED: the platform refuses a definition it cannot parse
                return dv_error(
                    400, DV_INVALID_ARGUMENT, "The 'openapidefinition' value is not valid JSON."
                )
            if not isinstance(parsed, dict) or parsed.get("swagger") != "2.0":
                # reference 4.1, OpenAPI 2.0 only; INFERRED: refused by the write, in this shape
                # (the column's size limit is the 500,000 characters checked above)
                return dv_error(400, DV_INVALID_ARGUMENT, SPEC_VERSION_MESSAGE)
        for column, member in (
            ("connectionparameters", "connectionParameters"),
            ("connectionparametersets", "connectionParameterSets"),
        ):
            if not doc.get(column):
                continue
            try:
                params = json.loads(doc[column])
            except ValueError:  # INFERRED: refused as openapidefinition is, not a dropped socket
                return dv_error(
                    400, DV_INVALID_ARGUMENT, f"The '{column}' value is not valid JSON."
                )
            # reference 3.2: Dataverse stores no connector secret, "replaced with an empty
            # string" (the PowerApps API removes it instead)
            _strip_secrets({member: params}, blank=True)
            doc[column] = json.dumps(params)
        with self._lock:
            if creating:
                given = dict(doc)
                if cid is not None:  # an upserting PATCH names the id in its key
                    given.setdefault("connectorid", cid)
                for column in DV_CREATE_REQUIRED:
                    if given.get(column) in (None, ""):
                        return dv_error(
                            400,
                            DV_INVALID_ARGUMENT,
                            f"A value for the required attribute '{column}' of 'connector' was not provided.",
                        )
                try:
                    new_id = str(uuid.UUID(str(given["connectorid"])))
                except ValueError:
                    return dv_error(
                        400,
                        DV_INVALID_ARGUMENT,
                        f"Unrecognized 'Edm.Guid' literal '{given['connectorid']}' for 'connectorid'.",
                    )
                if new_id in self._dv:
                    return dv_error(
                        412, DV_DUPLICATE, "A record with matching key values already exists."
                    )
                row = dict(doc, connectorid=new_id)
                self._dv_stamp(row)
                self._dv[new_id] = row
                solution = headers.get("mscrm.solutionuniquename")
                if solution:
                    self._dv_solutions[new_id] = solution
                cid = new_id
            else:
                assert cid is not None
                row = self._dv[cid]
                row.update(doc)
                self._dv_stamp(row)
        entity = f"{self.url}/api/data/v9.2/connectors({cid})"
        if "return=representation" in headers.get("prefer", ""):
            return Reply(
                201 if creating else 200, self._dv_view(row, []), headers={"OData-EntityId": entity}
            )
        return Reply(204, headers={"OData-EntityId": entity, "OData-Version": "4.0"})


def _like_regex(value: str) -> re.Pattern[str]:
    """A Dataverse ``contains`` value as the SQL LIKE pattern it is: ``%`` any run, ``_`` any one
    character, ``[set]``/``[^set]`` (with ``a-z`` ranges) one character of / not of the set, so a
    bracketed wildcard is a literal (learn.microsoft.com/power-apps/developer/data-platform/
    wildcard-characters). Case-insensitive, like Dataverse's string filters. INFERRED: an unclosed
    ``[`` is taken literally and a reversed range matches nothing."""
    out: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        elif char == "[" and value.find("]", i + 2) != -1:
            end = value.find("]", i + 2)
            body = value[i + 1 : end]
            negate = body.startswith("^") and len(body) > 1
            members = body[1:] if negate else body
            parts: list[str] = []
            j = 0
            while j < len(members):
                if j + 2 < len(members) and members[j + 1] == "-":
                    low, high = members[j], members[j + 2]
                    if low <= high:
                        parts.append(f"{re.escape(low)}-{re.escape(high)}")
                    j += 3
                else:
                    parts.append(re.escape(members[j]))
                    j += 1
            inner = "".join(parts)
            if inner:
                out.append(f"[{'^' if negate else ''}{inner}]")
            else:
                out.append("." if negate else "(?!)")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _environment_filter(text: str) -> str | None:
    match = re.search(r"environment eq '([^']+)'", text)
    return match.group(1) if match else None


def _shape_problem(props: dict[str, Any], env: str, *, creating: bool) -> str | None:
    """Type checks the RP's deserialiser would make (messages in Json.NET's style)."""
    expected: dict[str, type | tuple[type, ...]] = {
        "openApiDefinition": dict,
        "connectionParameters": dict,
        "connectionParameterSets": dict,
        "iconBrandColor": str,
        "capabilities": list,
        "policyTemplateInstances": list,
        "scriptOperations": list,
        "backendService": dict,
        "environment": dict,
        "displayName": str,
        "description": str,
        "iconUri": str,
        "scriptDefinitionUrl": str,
        "publisher": str,
    }
    for key, kind in expected.items():
        if key in props and props[key] is not None and not isinstance(props[key], kind):
            return (
                "The request content was invalid and could not be deserialized: "
                f"'Error converting value to type of 'properties.{key}'. Path 'properties.{key}'.'."
            )
    if not isinstance(props.get("openApiDefinition"), dict):
        return "The property 'openApiDefinition' is required."  # INFERRED wording
    name = (props.get("environment") or {}).get("name")
    if name != env:  # INFERRED wording
        return f"The environment '{name}' in the body does not match the request's environment '{env}'."
    if creating and not props.get("displayName"):
        return "The property 'displayName' is required."  # INFERRED wording
    return None


class _Handler(BaseHTTPRequestHandler):
    simulator: Simulator
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as real front ends (Kestrel, http.sys): no 40 ms stalls
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is ``Simulator.requests``."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.simulator.handle(self.command, self.path, headers, body)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


def start_simulator() -> Simulator:
    """Start a simulator on a free loopback port; call ``.stop()`` when done."""
    return Simulator().start()
