"""A custom connector in one Power Platform environment, written through the PowerApps API.

This is the resource provider paconn talks to (``{powerAppsUrl}/providers/Microsoft.PowerApps``,
api-version 2016-11-01, ``$filter=environment eq '<env>'``). What paconn gets wrong and this adapter
does differently (docs/targets.md has the long form):

- an update keeps what belongs to the connector (connection parameters, policies, icon, colour,
  script and its operations) instead of replacing it with a local file, and never sends
  ``scriptDefinitionUrl: ""`` (which deletes custom code);
- ``stackOwner`` is never sent: the RP refuses it (paconn issue #614);
- an OAuth connector gets its client secret from the secret store on every update, or the update is
  refused, because an update without it leaves a connector whose sign-in is broken;
- create is idempotent: the description carries ``[connector-sync:<api>/<target>]`` and a run that
  died between create and ledger write adopts that connector instead of creating a second one;
- the definition is read back through ``apiDefinitions.originalSwaggerUrl`` (never
  ``properties.swagger``, which is the RP's rewritten runtime copy), with a bounded wait because
  updates propagate with delay.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunparse

import httpx

from sync import decode_turn, write_progress
from sync.adapters import stored_definitions
from sync.adapters.http import as_transient, json_or_none, with_retries
from sync.adapters.pp_errors import raise_for_status
from sync.adapters.pp_target import (  # noqa: F401 - marker, verify, first_difference lived here
    MarkedConnectorTarget,
    first_difference,
    json_object,
    list_page,
    marker,
    next_page,
    verify,
)
from sync.adapters.pp_verdicts import AcceptedDefinitions
from sync.background import in_background
from sync.clouds import Cloud
from sync.errors import ConfigError, SyncError, TargetError
from sync.models import CurrentConnector
from sync.ports import SecretStore, TokenProvider
from sync.spec.canonical import (
    compact_bytes,
    compact_bytes_kept,
    compact_size,
    sha256_hex,
    with_member,
)
from sync.token_claims import unverified_claims

log = logging.getLogger(__name__)
PREVALIDATE_BUDGET_SECONDS = 10.0  # the early validateApiSwagger gives up sooner; write retries
QUICK_READ_BACK_SECONDS = 5.0  # the one-GET read-back gives up sooner; the full one follows
MAX_STORED_DEFINITION_BYTES = 8 * 1024 * 1024  # read-back cap: 8x the platform's limit

API_VERSION = "2016-11-01"
BASE_PATH = "providers/Microsoft.PowerApps"
SERVICE = "PowerApps API"
LIMIT_BYTES = 1_000_000 - 1  # "must be less than 1 MB", on the compact UTF-8 JSON
DEFAULT_BRAND_COLOR = "#007ee5"

# Members of ``properties`` that belong to the connector, not to the definition: sent back as read.
KEPT_PROPERTIES = (
    "connectionParameters",
    "connectionParameterSets",
    "policyTemplateInstances",
    "iconBrandColor",
    "iconUri",
    "capabilities",
    "scriptOperations",
    "publisher",
)
# Certification-only metadata the RP refuses on create/update (InvalidRequestContent).
NEVER_SENT = frozenset({"stackOwner"})


def service_url(definition: dict[str, Any]) -> str:
    """backendService.serviceUrl as paconn builds it: first scheme, host, basePath."""
    schemes = definition.get("schemes") or [""]
    return urlunparse(
        (
            str(schemes[0] or ""),
            str(definition.get("host") or ""),
            str(definition.get("basePath") or ""),
            "",
            "",
            "",
        )
    )


def oauth_settings(properties: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ``oAuthSettings`` object of the connection parameters (plain and parameter sets)."""
    found: list[dict[str, Any]] = []

    def scan(params: Any) -> None:
        if isinstance(params, dict):
            for value in params.values():
                if isinstance(value, dict) and isinstance(value.get("oAuthSettings"), dict):
                    found.append(value["oAuthSettings"])

    scan(properties.get("connectionParameters"))
    sets = properties.get("connectionParameterSets")
    if isinstance(sets, dict):
        for item in sets.get("values") or []:
            if isinstance(item, dict):
                scan(item.get("parameters"))
    return found


def token_claims(token: str) -> dict[str, Any]:
    """The access token's claims, unverified: only used to pick the oid and explain refusals."""
    return unverified_claims(token) or {}


def _strip_marker(text: str, tag: str) -> str:
    return text.replace(tag, "").strip()


class PowerAppsTarget(MarkedConnectorTarget):
    """One custom connector in one environment, through the PowerApps resource provider."""

    kind = "powerapps"
    service = SERVICE
    reports_body_sent = True  # an update's PATCH calls write_progress.body_sent once sent whole

    def __init__(
        self,
        *,
        api: str,
        name: str,
        params: dict[str, Any],
        cloud: Cloud,
        tokens: TokenProvider,
        secrets: SecretStore,
        client: httpx.Client,
        get_state_connector_id: Callable[[], str | None] | None = None,
        budget_seconds: float = 60,
        verify_seconds: float = 30,
        accepted: AcceptedDefinitions | None = None,
    ) -> None:
        """``accepted``: validateApiSwagger acceptances shared by the targets of one service (the
        bootstrap wires one per process); None asks the platform every time."""
        if not params.get("environment"):
            raise ConfigError("powerapps target needs 'environment'", path=f"{api}/{name}")
        self.environment: str | None = str(params["environment"])
        self.limit_bytes: int | None = LIMIT_BYTES
        self._secrets = secrets
        self._accepted = accepted
        self._written_at: tuple[str, str] | None = None  # (connector id, definition URL), write()
        super().__init__(
            api=api,
            name=name,
            params=params,
            cloud=cloud,
            tokens=tokens,
            client=client,
            get_state_connector_id=get_state_connector_id,
            budget_seconds=budget_seconds,
            verify_seconds=verify_seconds,
            where=f"{api}/{name} (powerapps {self.environment})",
        )

    # --- Target port ---------------------------------------------------------------------------

    def read(self) -> CurrentConnector:
        cid = self._resolve_id()
        if cid is None:
            return CurrentConnector(definition=None)
        registration = self._get_registration(cid)
        if registration is None:
            return CurrentConnector(definition=None)
        cid = self._connector_id or cid
        properties = registration.get("properties") or {}
        stored = self._download_definition(properties, cid)
        return CurrentConnector(
            definition=stored[0] if stored else None,
            properties=properties,
            connector_id=cid,
            definition_sha256=stored[1] if stored else None,
        )

    def verify(self, definition: dict[str, Any], sha256: str | None = None) -> None:
        """Read back what was written. First from the definition URL of the registration the
        write itself was based on (one blob GET): if the platform serves the new definition there,
        it holds it. If it does not (a stale copy, an expired SAS, a moved blob), the full
        read-back follows: registration, then its current URL, polled until it matches or time
        runs out. The URL is the one ``write`` used (under the lease), never one a concurrent
        item's read left on this shared target object."""
        remembered, self._written_at = self._written_at, None
        if remembered is not None and remembered[0] == self._connector_id:
            cid, url = remembered
            try:
                stored = self._download_definition(
                    {"apiDefinitions": {"originalSwaggerUrl": url}},
                    cid,
                    budget_seconds=QUICK_READ_BACK_SECONDS,
                    expect=(definition, sha256, self._encoded(definition)) if sha256 else None,
                )
            except SyncError as exc:
                log.debug("quick read-back of %s failed, reading in full: %s", self._where, exc)
                stored = None
            # the hash, not ==: Python's equality takes 1, 1.0 and true for one another
            if stored is not None and (
                stored[0] is definition or stored[1] == (sha256 or sha256_hex(definition))
            ):
                return
        super().verify(definition, sha256)

    def prevalidate(self, definition: dict[str, Any]) -> None:
        """Ask the platform about ``definition`` now, in the background, while the pipeline reads
        the connector and merges: when the merge leaves upstream as it is (no connector-side
        edit, the usual case) ``write`` finds the acceptance waiting (``pp_verdicts``) instead of
        spending a round trip on it. A different merged definition is validated by ``write`` as
        always; a refusal here is only logged, ``write`` asks again and reports it."""
        if self._accepted is None:  # nothing to share the answer through
            return
        try:
            encoded = self._encoded(definition)
        except ValueError:  # NaN/Infinity: not JSON; ``write`` meets it as before
            return
        if self.size_problem(definition, size=len(encoded)):
            return  # ``write`` refuses it without uploading anything

        def speculate() -> None:
            try:  # a short budget: a write waiting on this gate must not wait a whole retry run
                self._validate(encoded, budget_seconds=PREVALIDATE_BUDGET_SECONDS)
            except Exception as exc:  # reported by write's own call, if it comes
                log.debug("early validateApiSwagger for %s: %s", self._where, exc)

        in_background(speculate, name="pp-prevalidate")  # logs keep the item's run/api/target

    def _encoded(self, definition: dict[str, Any]) -> bytes:
        """Compact JSON of ``definition``, once: the pipeline hands ``prevalidate`` and ``write``,
        and every target of a fan-out, the same (never mutated) object, which its own size check
        has usually encoded already (``compact_bytes_kept``)."""
        return compact_bytes_kept(definition)

    def write(self, definition: dict[str, Any], current: CurrentConnector) -> str | None:
        encoded = self._encoded(definition)  # one encoding: size check, validation and the write
        if problem := self.size_problem(definition, size=len(encoded)):
            raise TargetError(problem, where=self._where)
        cid = current.connector_id or self._resolve_id()
        existing = current.properties if cid else None
        if cid and existing is None:
            registration = self._get_registration(cid)
            existing = (registration or {}).get("properties")
            cid = self._connector_id
        url = ((existing or {}).get("apiDefinitions") or {}).get("originalSwaggerUrl")
        self._written_at = None
        properties = self._properties(definition, existing, creating=cid is None)
        self._validate(encoded)
        body = b'{"properties":' + with_member(properties, "openApiDefinition", encoded) + b"}"
        if cid is None:
            # Not resent when unanswered: a create that timed out may have succeeded, and a second
            # POST would make a twin (the next attempt adopts the marked one instead).
            response = self._send("POST", self._url("apis"), content=body, resend_unanswered=False)
            cid = self._new_id(response)
            self._connector_id, self._id_source = cid, "created"
            log.info("created connector %s for %s", cid, self._where)
        else:

            def sent() -> None:  # the read-back compares with ``definition``: prepared
                # while the platform takes the write in, once the body has left; started before
                # the upload, its CPU competed with the upload (A/B on 2 cores: ~1.4 ms more wall)
                if url:
                    in_background(
                        lambda: stored_definitions.expect_soon(definition), name="pp-expect"
                    )
                write_progress.body_sent()  # the version's record, likewise (sync.early_record)

            self._send("PATCH", self._url(f"apis/{cid}"), content=body, on_sent=sent)
            self._written_at = (cid, url) if url else None
            log.info("updated connector %s for %s", cid, self._where)
        return cid

    def read_back(self) -> dict[str, Any] | None:
        cid = self._resolve_id()
        if cid is None:
            return None
        registration = self._get_registration(cid)
        if registration is None:
            return None
        stored = self._download_definition(registration.get("properties") or {}, cid)
        return stored[0] if stored else None

    def portal_url(self) -> str | None:
        """The maker portal's custom-connector list of the environment (per-cloud host)."""
        return f"{self._cloud.maker_portal}/environments/{self.environment}/customconnectors"

    # --- extras other code may call -----------------------------------------------------------

    def probe(self) -> str:
        """Read-only check for ``doctor``: read the connector and ask the platform to validate
        its current definition (validateApiSwagger writes nothing)."""
        current = self.read()
        if current.definition is None:
            return f"environment {self.environment}: no connector yet (created on first sync)"
        self._validate(compact_bytes(current.definition), remember=False)
        operations = sum(
            1
            for item in (current.definition.get("paths") or {}).values()
            for key in (item or {})
            if key in {"get", "put", "post", "delete", "patch", "head", "options"}
        )
        return (
            f"connector {current.connector_id}: readable, {operations} operations, "
            "validateApiSwagger accepted its definition"
        )

    def size_problem(self, definition: dict[str, Any], *, size: int | None = None) -> str | None:
        size = compact_size(definition) if size is None else size
        if size > LIMIT_BYTES:
            return (
                f"definition is {size:,} bytes (compact UTF-8 JSON); target {self.name} "
                f"(powerapps) accepts less than {LIMIT_BYTES + 1:,} bytes"
            )
        return None

    # --- internals ---------------------------------------------------------------------------

    def _url(self, path: str, *, env_filter: bool = True) -> str:
        query: dict[str, str] = {"api-version": API_VERSION}
        if env_filter:
            query["$filter"] = f"environment eq '{self.environment}'"
        return (
            f"{self._cloud.powerapps_url.rstrip('/')}/{BASE_PATH}/{path}?"
            f"{urlencode(query, quote_via=quote)}"
        )

    def _token(self) -> str:
        return self._tokens.token(self._cloud.powerapps_scope)

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token()}",
            "Accept": "application/json",
            "x-ms-origin": "connector-sync",
        }

    def _hint(self, status: int, code: str | None) -> str | None:
        if status not in (401, 403):
            return None
        claims = token_claims(self._token())
        if claims.get("idtyp") == "app" or ("scp" not in claims and "roles" in claims):
            return (
                "The token is app-only (service principal or managed identity); the PowerApps API "
                "accepts delegated (user) tokens for custom connectors. Use a 'delegated' "
                "credential for this target, or a Dataverse target with an application user"
            )
        if code == "InvalidAuthenticationToken":
            return f"Check that the credential requests {self._cloud.powerapps_scope}"
        return None

    def _scope(self) -> str:
        return f"environment {self.environment}"

    def _marked_ids(self) -> list[str]:
        first = self._url("apis")
        url: str | None = first
        seen = {first}
        matches: list[str] = []
        while url:
            items, page = list_page(self._send("GET", url), where=self._where)
            for item in items:
                props = item.get("properties") or {}
                if not isinstance(props, dict):
                    raise TargetError(
                        "the list answer has a connector whose 'properties' is not an object",
                        where=self._where,
                    )
                if self.marker in str(props.get("description") or ""):
                    matches.append(str(item.get("name")))
            link = page.get("nextLink") or page.get("@odata.nextLink")
            url = next_page(link, first, seen, where=self._where)
        return matches

    def _get_registration(self, cid: str) -> dict[str, Any] | None:
        """The ApiRegistration; None when a remembered (ledger) id is gone and no marked connector
        exists, so the caller creates one. A configured id that is gone is an error: the map is
        wrong and creating a second connector would hide that."""
        try:
            response = self._send("GET", self._url(f"apis/{cid}"))
        except TargetError as exc:
            if exc.status != 404:
                raise
            adopted = self._replace_missing(cid, exc)
            if adopted is None:
                return None
            return self._get_registration(adopted)
        decode_turn.wait_for_turn()  # 512 KB of JSON: decoded once the item's thread waits
        body = json_or_none(response)
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            raise TargetError(
                f"connector {cid}: the answer has no 'properties' object", where=self._where
            )
        return body

    def _download_definition(
        self,
        properties: dict[str, Any],
        cid: str,
        *,
        budget_seconds: float | None = None,
        expect: tuple[dict[str, Any], str, bytes] | None = None,
    ) -> tuple[dict[str, Any], str] | None:
        """GET the SAS URL of the original definition, without our token (it is a blob URL).
        Returns the document and its canonical sha256 (``stored_definitions``: the same bytes
        are parsed and hashed once; ``expect``, the definition just written with its sha256 and
        compact JSON, spares the hash when the bytes hold exactly that)."""
        definitions = properties.get("apiDefinitions") or {}
        if not isinstance(definitions, dict):
            raise TargetError(
                f"connector {cid}: apiDefinitions is not an object", where=self._where
            )
        url = definitions.get("originalSwaggerUrl")
        if not url:
            return None
        try:
            shown = urlsplit(url)._replace(query="").geturl()  # the SAS signature is a credential
            httpx.URL(url)  # what the GET below builds; InvalidURL is not an httpx.HTTPError
        except (TypeError, AttributeError, ValueError, httpx.InvalidURL):
            raise TargetError(
                f"connector {cid}: apiDefinitions.originalSwaggerUrl is not a URL",
                where=self._where,
            ) from None
        known = stored_definitions.SHARED.unchanged_since(shown)

        def attempt() -> tuple[bytes | None, str | None]:
            request = self._client.build_request("GET", url)
            request.headers.pop("Authorization", None)
            if known is not None:  # Blob Storage answers 304 while the blob was not written
                request.headers["If-None-Match"] = known[0]
            response = self._client.send(request, follow_redirects=True, stream=True)
            try:
                if response.status_code == 304 and known is not None:
                    response.read()  # empty; read, the connection goes back to the pool
                    return None, known[0]
                if response.status_code >= 400:
                    response.read()
                    raise_for_status(
                        response,
                        service="connector definition blob",
                        where=f"{self._where} {shown}",
                    )
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_STORED_DEFINITION_BYTES:  # the platform keeps < 1 MB
                        raise TargetError(
                            f"connector {cid}: the stored definition at {shown} is larger than "
                            f"{MAX_STORED_DEFINITION_BYTES:,} bytes; not read",
                            where=self._where,
                        )
                return bytes(body), response.headers.get("ETag")
            finally:
                response.close()

        budget = self._budget if budget_seconds is None else min(budget_seconds, self._budget)
        try:
            content, etag = with_retries(attempt, budget_seconds=budget)
        except httpx.HTTPError as exc:  # still failing when the budget ran out: name it
            # (a raw httpx error escaped the pipeline's handling, and the quick read-back's
            # fall-through to the full one, which catches SyncError)
            raise as_transient(exc, where=f"{self._where} {shown}") from None
        if content is None:
            assert known is not None
            return known[1]  # not written since we read those bytes: they are what it holds

        def parse(raw: bytes) -> dict[str, Any]:
            what = f"connector {cid}: the stored definition at {shown}"
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise TargetError(f"{what} is not JSON ({exc})", where=self._where) from None
            return json_object(text, what=what, where=self._where)

        return stored_definitions.SHARED.parsed(
            content, parse, source=shown, etag=etag, expect=expect
        )

    def _properties(
        self, definition: dict[str, Any], existing: dict[str, Any] | None, *, creating: bool
    ) -> dict[str, Any]:
        existing = existing or {}
        props: dict[str, Any] = {k: existing[k] for k in KEPT_PROPERTIES if k in existing}
        props = json.loads(json.dumps(props))  # never mutate the caller's CurrentConnector
        script = existing.get("scriptDefinitionUrl")
        if isinstance(script, str) and script:
            props["scriptDefinitionUrl"] = script  # keep custom code; "" would delete it
        props.setdefault("connectionParameters", {})
        props.setdefault("iconBrandColor", DEFAULT_BRAND_COLOR)
        props.setdefault("capabilities", [])
        self._inject_oauth_secret(props)

        info = definition.get("info") or {}
        props["openApiDefinition"] = definition
        props["backendService"] = {"serviceUrl": service_url(definition)}
        props["environment"] = {"name": self.environment}
        old_description = str(existing.get("description") or "")
        ours = creating or self.marker in old_description
        base = str(info.get("description") or _strip_marker(old_description, self.marker))
        props["description"] = f"{base} {self.marker}".strip() if ours else base
        display = self._params.get("displayName")
        if creating:
            props["displayName"] = display or info.get("title") or self.api
        elif display:
            props["displayName"] = display
        for key in NEVER_SENT:
            props.pop(key, None)
        return props

    def _inject_oauth_secret(self, props: dict[str, Any]) -> None:
        settings = oauth_settings(props)
        if not settings:
            return
        ref = self._params.get("oauthSecret")
        if ref == "none":
            return
        if not ref:
            raise TargetError(
                "the connector uses OAuth but the target has no oauthSecret: an update without the "
                "client secret breaks sign-in. Set powerapps.oauthSecret to 'kv:<secret-name>', or "
                "to 'none' if the identity provider needs no client secret",
                where=self._where,
            )
        if not str(ref).startswith("kv:") or len(str(ref)) <= 3:
            raise ConfigError(
                "powerapps.oauthSecret must be 'kv:<name>' or 'none' (the value is not shown: it "
                "may be a secret pasted in by mistake)",
                path=f"{self.api}/{self.name}.powerapps.oauthSecret",
            )
        secret = self._secrets.get(str(ref)[3:])
        for item in settings:
            item["clientSecret"] = secret

    def _validate(
        self, encoded: bytes, *, remember: bool = True, budget_seconds: float | None = None
    ) -> None:
        """The platform's own check (user need 12: fail before the write, with its message).
        An acceptance of the very same bytes is remembered for a few minutes (``pp_verdicts``):
        the other targets of a fan-out do not upload the same definition again."""
        oid = token_claims(self._token()).get("oid")
        if not oid:
            raise TargetError(
                "the PowerApps token has no 'oid' claim, needed for validateApiSwagger; "
                "use a user (delegated) credential",
                where=self._where,
            )
        url = self._url(f"objectIds/{oid}/validateApiSwagger", env_filter=False)

        def ask() -> None:
            self._send(
                "POST",
                url,
                content=encoded,
                where=f"{self._where} validateApiSwagger",
                budget_seconds=budget_seconds,
            )

        if not remember or self._accepted is None:
            ask()
            return
        key = (self._cloud.powerapps_url, str(oid), hashlib.sha256(encoded).hexdigest())
        if not self._accepted.check(key, ask):
            log.debug("validateApiSwagger: same definition accepted moments ago (%s)", self._where)

    def _new_id(self, response: httpx.Response) -> str:
        try:
            cid = response.json().get("name")
        except (ValueError, AttributeError, RecursionError):
            cid = None
        if not cid:
            raise TargetError(
                f"create answered HTTP {response.status_code} without a connector 'name'",
                where=self._where,
            )
        return str(cid)
