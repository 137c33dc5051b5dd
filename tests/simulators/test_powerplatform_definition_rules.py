"""The simulator's rules on a connector definition and on a Dataverse create, each proven on the
wire and through a client that meets it (the project's targets, the real paconn 0.0.21):

- OpenAPI 2.0 only, less than 1 MB, at most 256 operations (reference 4.1), on validateApiSwagger,
  create and PATCH alike;
- an OAuth ``application`` / ``password`` flow is stored as ``accessCode`` (reference 2.2, issue
  #708), so its read-back differs from what was sent;
- a Dataverse create carries connectorid, name, displayname, openapidefinition and connectortype
  (reference 3.2), and its openapidefinition is Swagger 2.0.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.adapters.dataverse import DataverseTarget
from sync.adapters.powerapps import LIMIT_BYTES, PowerAppsTarget
from sync.errors import TargetError
from sync.spec.canonical import compact_size
from tests.powerplatform.conftest import ENV, USER_OID, mint, new_guid
from tests.powerplatform.samples import DEFINITION
from tests.powerplatform.test_paconn_contract import download, load, run, update_args
from tests.simulators.powerplatform import DEFINITION_LIMIT_BYTES, MAX_OPERATIONS, Simulator

CID = "shared_contoso-20invoicing-5f0629412a7d1fe83e-5f6f049093c9b7a698"
RP = "/providers/Microsoft.PowerApps"
ENV_QUERY = f"api-version=2016-11-01&%24filter=environment%20eq%20%27{ENV}%27"
PROPERTIES: dict[str, Any] = {
    "connectionParameters": {},
    "iconBrandColor": "#da3b01",
    "capabilities": [],
}
NOT_SWAGGER_2 = "The 'swagger' property must have the string value \"2.0\"."
TOO_MANY_OPERATIONS = (
    "The total number of operations in the swagger exceeds the maximum allowed value of '256'."
)
OPENAPI_3: dict[str, Any] = {
    "openapi": "3.0.0",
    "info": {"title": "Contoso Invoicing", "description": "Invoices.", "version": "1.0"},
    "servers": [{"url": "https://contoso-invoicing.azurewebsites.net/api"}],
    "paths": {"/invoices": {"get": {"responses": {"200": {"description": "OK"}}}}},
}
SECURITY: dict[str, Any] = {
    "cc": {
        "type": "oauth2",
        "flow": "application",
        "tokenUrl": "https://idp.example/token",
        "scopes": {"read": "Read"},
    },
    "ropc": {
        "type": "oauth2",
        "flow": "password",
        "tokenUrl": "https://idp.example/ropc",
        "scopes": {},
    },
    "code": {
        "type": "oauth2",
        "flow": "accessCode",
        "authorizationUrl": "https://idp.example/authorize",
        "tokenUrl": "https://idp.example/token",
        "scopes": {},
    },
    "implicit": {
        "type": "oauth2",
        "flow": "implicit",
        "authorizationUrl": "https://idp.example/authorize",
        "scopes": {},
    },
    "key": {"type": "apiKey", "name": "X-Key", "in": "header"},
}
Make = Callable[..., PowerAppsTarget]
MakeDataverse = Callable[..., DataverseTarget]


def client_json(doc: Any) -> bytes:
    """What the project's client sends: compact UTF-8 JSON."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def paconn_json(doc: Any) -> bytes:
    """What paconn sends: ``json.dumps`` defaults, ASCII-escaped with spaces (reference 1.2)."""
    return json.dumps(doc).encode()


class Rp:
    """Raw PowerApps RP calls, so a rule is seen on the wire without any client's checks."""

    def __init__(self, sim: Simulator, http: httpx.Client) -> None:
        self.sim, self.http = sim, http

    def _headers(self) -> dict[str, str]:
        token = mint("https://service.powerapps.com/")
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def validate(self, definition: Any, encode: Callable[[Any], bytes] = client_json) -> Any:
        body = definition if isinstance(definition, bytes) else encode(definition)
        url = f"{self.sim.url}{RP}/objectIds/{USER_OID}/validateApiSwagger?api-version=2016-11-01"
        return self.http.post(url, content=body, headers=self._headers())

    def _body(self, definition: Any, *, creating: bool) -> dict[str, Any]:
        properties = {
            **PROPERTIES,
            "openApiDefinition": definition,
            "backendService": {"serviceUrl": "https://contoso-invoicing.azurewebsites.net/api"},
            "environment": {"name": ENV},
            "description": "Invoices.",
        }
        if creating:
            properties["displayName"] = "Contoso Invoicing"
        return {"properties": properties}

    def create(self, definition: Any, encode: Callable[[Any], bytes] = client_json) -> Any:
        body = encode(self._body(definition, creating=True))
        url = f"{self.sim.url}{RP}/apis?{ENV_QUERY}"
        return self.http.post(url, content=body, headers=self._headers())

    def patch(self, cid: str, definition: Any, encode: Callable[[Any], bytes] = client_json) -> Any:
        body = encode(self._body(definition, creating=False))
        url = f"{self.sim.url}{RP}/apis/{cid}?{ENV_QUERY}"
        return self.http.patch(url, content=body, headers=self._headers())

    def stored(self, cid: str) -> Any:
        """The definition as a reader gets it: registration, then its unauthenticated SAS URL."""
        url = f"{self.sim.url}{RP}/apis/{cid}?{ENV_QUERY}"
        registration = self.http.get(url, headers=self._headers()).json()
        blob = registration["properties"]["apiDefinitions"]["originalSwaggerUrl"]
        return self.http.get(blob).json()


@pytest.fixture
def rp(sim: Simulator, http: httpx.Client) -> Rp:
    return Rp(sim, http)


def refusal(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    return dict(response.json()["error"])


def padded(size: int) -> dict[str, Any]:
    """DEFINITION grown to ``size`` bytes of compact UTF-8 JSON (the client's measure) with 'é':
    2 bytes in UTF-8, 1 character, 6 bytes in paconn's ASCII-escaped body."""
    doc = copy.deepcopy(DEFINITION)
    doc["x-padding"] = ""
    need = size - compact_size(doc)
    doc["x-padding"] = "é" * (need // 2) + "a" * (need % 2)
    assert compact_size(doc) == size
    return doc


def with_operations(count: int) -> dict[str, Any]:
    """DEFINITION with ``count`` operations, two per path item beside path-level parameters."""
    doc = copy.deepcopy(DEFINITION)
    paths: dict[str, Any] = {}
    for i in range(count):
        item = paths.setdefault(f"/items{i // 2}", {"parameters": []})
        item[("get", "post")[i % 2]] = {
            "operationId": f"Operation{i}",
            "responses": {"200": {"description": "OK"}},
        }
    doc["paths"] = paths
    return doc


def with_security(security: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(DEFINITION)
    doc["securityDefinitions"] = copy.deepcopy(security)
    return doc


# --- OpenAPI 2.0 only ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        OPENAPI_3,
        {**DEFINITION, "swagger": 2.0},
        {k: v for k, v in DEFINITION.items() if k != "swagger"},
    ],
    ids=["openapi-3.0.0", "swagger-as-a-number", "no-swagger-member"],
)
def test_a_definition_that_is_not_swagger_2_is_refused_by_validate_create_and_patch(
    document: dict[str, Any], rp: Rp, sim: Simulator, make_powerapps: Make
) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, PROPERTIES)
    for response in (rp.validate(document), rp.create(document), rp.patch(CID, document)):
        assert refusal(response) == {"code": "SwaggerValidationFailed", "message": NOT_SWAGGER_2}
    assert sim.powerapps_ids(ENV) == [CID]
    assert sim.powerapps_connector(ENV, CID)["definition"] == DEFINITION

    # the project's client: its validateApiSwagger is refused, nothing is written
    sim.clear_requests()
    target = make_powerapps({"connector": CID})
    with pytest.raises(TargetError, match=r"SwaggerValidationFailed: The 'swagger' property must"):
        target.write(document, target.read())
    assert sim.requests_to("PATCH") == []


# --- less than 1 MB --------------------------------------------------------------------------


def test_the_size_limit_is_one_megabyte_measured_as_the_client_measures_it(
    rp: Rp, sim: Simulator, make_powerapps: Make
) -> None:
    assert LIMIT_BYTES + 1 == DEFINITION_LIMIT_BYTES, "client and simulator must refuse alike"
    below, at = padded(DEFINITION_LIMIT_BYTES - 1), padded(DEFINITION_LIMIT_BYTES)
    sim.seed_powerapps(ENV, CID, DEFINITION, PROPERTIES)
    too_big = {
        "code": "SwaggerValidationFailed",
        "message": "The OpenAPI definition is 1,000,000 bytes; it must be less than 1 MB "
        "(1,000,000 bytes).",
    }
    # paconn's body spells each 'é' in 6 bytes: the size is the document's, not the body's
    for encode in (client_json, paconn_json):
        ids = sim.powerapps_ids(ENV)
        assert refusal(rp.validate(at, encode)) == too_big
        assert refusal(rp.create(at, encode)) == too_big
        assert refusal(rp.patch(CID, at, encode)) == too_big
        assert sim.powerapps_ids(ENV) == ids
        assert sim.powerapps_connector(ENV, CID)["definition"] != at
        assert rp.validate(below, encode).status_code == 200
        created = rp.create(below, encode)
        assert created.status_code == 201
        assert rp.stored(created.json()["name"]) == below
        assert rp.patch(CID, below, encode).status_code == 200
        assert rp.stored(CID) == below

    # the project's client refuses the same size itself, and writes the largest allowed whole
    sim.seed_powerapps(ENV, CID, DEFINITION, PROPERTIES)
    sim.clear_requests()
    target = make_powerapps({"connector": CID})
    assert target.size_problem(below) is None
    with pytest.raises(TargetError, match=r"1,000,000 bytes .* accepts less than 1,000,000"):
        target.write(at, target.read())
    assert sim.requests_to("PATCH") == []
    target.write(below, target.read())
    assert target.read_back() == below


def test_a_float_counts_as_the_client_encodes_it_not_as_it_was_spelled(rp: Rp) -> None:
    # "1e15" is 1000000000000000.0 once parsed and encoded again: under the limit as sent,
    # over it as measured (the simulator's shortcut for small bodies must not miss this)
    head = client_json(DEFINITION)[:-1]
    body = head + b',"x-numbers":[' + b",".join([b"1e15"] * 60_000) + b"]}"
    assert len(body) < DEFINITION_LIMIT_BYTES <= compact_size(json.loads(body))
    assert "must be less than 1 MB" in refusal(rp.validate(body))["message"]


# --- at most 256 operations ------------------------------------------------------------------


def test_more_than_256_operations_are_refused(rp: Rp, sim: Simulator, make_powerapps: Make) -> None:
    most, over = with_operations(MAX_OPERATIONS), with_operations(MAX_OPERATIONS + 1)
    sim.seed_powerapps(ENV, CID, DEFINITION, PROPERTIES)
    for response in (rp.validate(over), rp.create(over), rp.patch(CID, over)):
        assert refusal(response) == {
            "code": "SwaggerValidationFailed",
            "message": TOO_MANY_OPERATIONS,
        }
    assert sim.powerapps_ids(ENV) == [CID]
    assert sim.powerapps_connector(ENV, CID)["definition"] == DEFINITION
    statuses = [r.status_code for r in (rp.validate(most), rp.create(most), rp.patch(CID, most))]
    assert statuses == [200, 201, 200]

    # the project's client: refused at its validateApiSwagger, nothing written
    sim.clear_requests()
    target = make_powerapps({"connector": CID})
    with pytest.raises(TargetError, match=r"exceeds the maximum allowed value of '256'"):
        target.write(over, target.read())
    assert sim.requests_to("PATCH") == []
    assert sim.powerapps_connector(ENV, CID)["definition"] == most


# --- OAuth application / password flows are stored as accessCode ------------------------------


def reverted(security: dict[str, Any]) -> dict[str, Any]:
    """``security`` as the RP stores it: application and password flows become accessCode, with
    the tokenUrl as authorizationUrl."""
    out = copy.deepcopy(security)
    for scheme in out.values():
        if scheme.get("flow") in ("application", "password"):
            scheme["flow"] = "accessCode"
            scheme["authorizationUrl"] = scheme["tokenUrl"]
    return out


def test_application_and_password_flows_are_stored_as_access_code(rp: Rp, sim: Simulator) -> None:
    sent = with_security(SECURITY)
    expected = with_security(reverted(SECURITY))
    assert expected["securityDefinitions"]["cc"]["flow"] == "accessCode"
    assert expected["securityDefinitions"]["code"] == SECURITY["code"]

    assert rp.validate(sent).status_code == 200, "rewritten on save, not refused"
    created = rp.create(sent)
    assert created.status_code == 201
    assert rp.stored(created.json()["name"]) == expected
    runtime = created.json()["properties"]["swagger"]  # the runtime copy is built from it
    assert runtime["securityDefinitions"] == expected["securityDefinitions"]

    # an update is reverted as well (the case of issue #708)
    sim.seed_powerapps(ENV, CID, DEFINITION, PROPERTIES)
    assert rp.patch(CID, sent).status_code == 200
    assert rp.stored(CID) == expected

    # without a tokenUrl (not valid Swagger 2.0 either) there is no URL to fill in
    bare = with_security({"cc": {"type": "oauth2", "flow": "application", "scopes": {}}})
    assert rp.patch(CID, bare).status_code == 200
    assert rp.stored(CID)["securityDefinitions"]["cc"] == {
        "type": "oauth2",
        "flow": "accessCode",
        "scopes": {},
    }


def test_a_client_credentials_definition_written_by_the_powerapps_target_reads_back_as_access_code(
    sim: Simulator, make_powerapps: Make
) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, PROPERTIES)
    target = make_powerapps({"connector": CID}, verify_seconds=0.3)
    definition = with_security({"cc": SECURITY["cc"]})
    definition["security"] = [{"cc": ["read"]}]

    assert target.write(definition, target.read()) == CID
    stored = target.read().definition
    assert stored is not None
    assert stored["securityDefinitions"]["cc"] == reverted({"cc": SECURITY["cc"]})["cc"]
    with pytest.raises(
        TargetError,
        match=r"read-back does not match .*first difference at /securityDefinitions/cc/",
    ):
        target.verify(definition)


# --- Dataverse ---------------------------------------------------------------------------------


def dv_headers(sim: Simulator, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(sim.url)}", **extra}


def dv_row() -> dict[str, Any]:
    return {
        "connectorid": new_guid(),
        "name": "cs_contosoprod",
        "displayname": "Contoso Invoicing",
        "openapidefinition": json.dumps(DEFINITION),
        "connectortype": 1,
    }


def test_a_dataverse_create_needs_the_documented_columns(
    sim: Simulator, http: httpx.Client, make_dataverse: MakeDataverse
) -> None:
    url = f"{sim.url}/api/data/v9.2/connectors"
    required = ("connectorid", "name", "displayname", "openapidefinition", "connectortype")
    cases = [({k: v for k, v in dv_row().items() if k != column}, column) for column in required]
    cases.append(({**dv_row(), "displayname": ""}, "displayname"))
    for body, column in cases:
        assert refusal(http.post(url, json=body, headers=dv_headers(sim))) == {
            "code": "0x80040203",
            "message": f"A value for the required attribute '{column}' of 'connector' was not "
            "provided.",
        }
    assert sim.dataverse_ids() == []

    complete = dv_row()
    assert http.post(url, json=complete, headers=dv_headers(sim)).status_code == 204
    # an upserting PATCH names the row in its key: the body need not repeat it
    key = new_guid()
    body = {k: v for k, v in dv_row().items() if k != "connectorid"}
    assert http.patch(f"{url}({key})", json=body, headers=dv_headers(sim)).status_code == 204
    assert sim.dataverse_ids() == sorted([complete["connectorid"], key])

    # the project's client sends them all
    target = make_dataverse()
    created = target.write(DEFINITION, target.read())
    assert created is not None
    assert json.loads(sim.dataverse_row(created)["openapidefinition"]) == DEFINITION


def test_dataverse_refuses_a_definition_that_is_not_swagger_2(
    sim: Simulator, http: httpx.Client
) -> None:
    url = f"{sim.url}/api/data/v9.2/connectors"
    created = {**dv_row(), "openapidefinition": json.dumps(OPENAPI_3)}
    not_2 = {"code": "0x80040203", "message": NOT_SWAGGER_2}
    assert refusal(http.post(url, json=created, headers=dv_headers(sim))) == not_2
    assert sim.dataverse_ids() == []

    cid = new_guid()
    sim.seed_dataverse(cid, name="cs_contosoprod", definition=DEFINITION)
    update = {"openapidefinition": json.dumps(OPENAPI_3)}
    headers = dv_headers(sim, **{"If-Match": "*"})
    assert refusal(http.patch(f"{url}({cid})", json=update, headers=headers)) == not_2
    assert json.loads(sim.dataverse_row(cid)["openapidefinition"]) == DEFINITION


# --- the real paconn 0.0.21 --------------------------------------------------------------------


def paconn_update(
    paconn: Path, home: Path, folder: Path, sim: Simulator, definition: dict[str, Any]
) -> Any:
    (folder / "apiDefinition.swagger.json").write_text(json.dumps(definition, indent=2))
    (folder / "apiProperties.json").write_text(json.dumps({"properties": PROPERTIES}))
    return run(
        paconn,
        home,
        folder,
        *update_args(sim, "apiProperties.json", "apiDefinition.swagger.json", CID),
    )


@pytest.mark.contract
@pytest.mark.slow
def test_paconn_update_with_flow_application_downloads_access_code(
    sim: Simulator, paconn: Path, home: Path, tmp_path: Path
) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, PROPERTIES)
    done = paconn_update(paconn, home, tmp_path, sim, with_security({"cc": SECURITY["cc"]}))
    assert done.returncode == 0, done.stderr

    done = download(paconn, home, tmp_path, sim)
    assert done.returncode == 0, done.stderr
    downloaded = load(tmp_path / "out" / "apiDefinition.swagger.json")
    assert downloaded["securityDefinitions"] == reverted({"cc": SECURITY["cc"]})


@pytest.mark.contract
@pytest.mark.slow
def test_paconn_update_over_256_operations_stops_at_validation(
    sim: Simulator, paconn: Path, home: Path, tmp_path: Path
) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, PROPERTIES)
    done = paconn_update(paconn, home, tmp_path, sim, with_operations(MAX_OPERATIONS + 1))
    assert done.returncode == 1
    assert TOO_MANY_OPERATIONS in done.stderr  # paconn prints the JSON error body
    assert "400 Client Error" in done.stderr
    assert "Traceback" not in done.stderr
    assert sim.requests_to("PATCH") == []
    assert sim.powerapps_connector(ENV, CID)["definition"] == DEFINITION
