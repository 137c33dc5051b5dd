"""DataverseTarget against the simulated connector table: only openapidefinition changes, the
500,000-character column limit, idempotent create in a solution, and OData errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from sync.adapters.dataverse import LIMIT_CHARS, DataverseTarget, utf16_length
from sync.errors import ConfigError, TargetError
from tests.powerplatform.conftest import FakeTokens, new_guid
from tests.powerplatform.samples import DEFINITION, OAUTH_PROPERTIES, changed
from tests.simulators.powerplatform import Simulator

Make = Callable[..., DataverseTarget]
COLUMNS = {
    "connectionparameters": json.dumps(OAUTH_PROPERTIES["connectionParameters"]),
    "policytemplateinstances": json.dumps(OAUTH_PROPERTIES["policyTemplateInstances"]),
    "scriptoperations": json.dumps(["ListInvoices"]),
    "customcodeblobcontent": "cHVibGljIGNsYXNzIFNjcmlwdA==",
    "iconbrandcolor": "#da3b01",
    "displayname": "Invoicing (maker name)",
}


def test_update_writes_only_the_definition(sim: Simulator, make_dataverse: Make) -> None:
    cid = new_guid()
    sim.seed_dataverse(cid, name="cr736_invoicing", definition=DEFINITION, columns=COLUMNS)
    before = sim.dataverse_row(cid)
    target = make_dataverse({"connector": cid})
    current = target.read()
    assert current.definition == DEFINITION
    assert current.connector_id == cid
    new = changed(DEFINITION)
    assert target.write(new, current) == cid

    after = sim.dataverse_row(cid)
    assert json.loads(after["openapidefinition"]) == new
    for column, value in before.items():
        if column not in ("openapidefinition", "modifiedon", "versionnumber"):
            assert after[column] == value, column
    patch = sim.requests_to("PATCH")[0]
    assert set(patch.json) == {"openapidefinition"}
    assert patch.headers["if-match"] == "*"
    assert patch.json["openapidefinition"] == json.dumps(
        new, separators=(",", ":"), ensure_ascii=False
    )
    assert target.read_back() == new
    target.verify(new)


def test_configured_display_name_is_written(sim: Simulator, make_dataverse: Make) -> None:
    cid = new_guid()
    sim.seed_dataverse(cid, name="cr736_invoicing", definition=DEFINITION)
    target = make_dataverse({"connector": cid, "displayName": "Invoicing"})
    target.write(DEFINITION, target.read())
    assert sim.dataverse_row(cid)["displayname"] == "Invoicing"


def test_token_scope_is_the_org(sim: Simulator, make_dataverse: Make) -> None:
    cid = new_guid()
    sim.seed_dataverse(cid, name="n", definition=DEFINITION)
    tokens = FakeTokens(idtyp="app")
    make_dataverse({"connector": cid}, tokens=tokens).read()
    assert set(tokens.scopes) == {f"{sim.url}/.default"}


def test_wrong_token_gives_a_401_with_empty_body_described(
    sim: Simulator, make_dataverse: Make
) -> None:
    cid = new_guid()
    sim.seed_dataverse(cid, name="n", definition=DEFINITION)

    class OtherOrg(FakeTokens):
        def token(self, scope: str) -> str:
            return super().token("https://other.crm.dynamics.com/.default")

    with pytest.raises(TargetError, match=r"Dataverse Web API answered HTTP 401: empty body"):
        make_dataverse({"connector": cid}, tokens=OtherOrg()).read()


def test_create_in_solution_then_adopt_after_crash(sim: Simulator, make_dataverse: Make) -> None:
    first = make_dataverse({"solution": "ContosoConnectors"})
    assert first.read().definition is None
    created = first.write(DEFINITION, first.read())
    row = sim.dataverse_row(created)
    assert row["connectortype"] == 1
    assert row["displayname"] == "Contoso Invoicing"
    assert row["description"].endswith("[connector-sync:contoso/dv]")
    assert json.loads(row["openapidefinition"]) == DEFINITION
    assert sim.dataverse_solution(created) == "ContosoConnectors"
    assert (
        first.portal_url()
        == f"{sim.url}/main.aspx?pagetype=entityrecord&etn=connector&id={created}"
    )

    second = make_dataverse({"solution": "ContosoConnectors"}, state_id=None)
    current = second.read()
    assert current.connector_id == created
    second.write(changed(DEFINITION), current)
    assert sim.dataverse_ids() == [created]
    assert len(sim.requests_to("POST")) == 1
    get = [r for r in sim.requests_to("GET") if "$filter" in r.query]
    # "[" bracketed: Dataverse's contains is a SQL LIKE, where "[...]" is a character set
    assert (
        get and get[0].query["$filter"] == "contains(description,'[[]connector-sync:contoso/dv]')"
    )


def test_create_colliding_with_an_unmarked_earlier_create_adopts(
    sim: Simulator, make_dataverse: Make
) -> None:
    target = make_dataverse()
    created = target.write(DEFINITION, target.read())
    row = sim.dataverse_row(created)
    # Someone removed the marker from the description; the stable id still prevents a duplicate.
    sim.seed_dataverse(created, name=row["name"], definition=DEFINITION, description="edited")
    again = make_dataverse()
    assert again.write(changed(DEFINITION), again.read()) == created
    assert sim.dataverse_ids() == [created]
    assert json.loads(sim.dataverse_row(created)["openapidefinition"]) == changed(DEFINITION)


def test_over_500000_characters_is_refused_naming_limit_and_size(
    sim: Simulator, make_dataverse: Make
) -> None:
    cid = new_guid()
    sim.seed_dataverse(cid, name="n", definition=DEFINITION)
    target = make_dataverse({"connector": cid})
    big = changed(DEFINITION)
    big["info"]["description"] = "é" * 300_000  # 300k characters, 600k bytes: under the limit
    target.write(big, target.read())
    bigger = changed(DEFINITION)
    bigger["info"]["description"] = "😀" * 250_001  # 2 UTF-16 units each
    with pytest.raises(
        TargetError, match=r"500,\d{3} characters.*dv \(dataverse.*at most 500,000 characters"
    ):
        target.write(bigger, target.read())
    assert len(sim.requests_to("PATCH")) == 1
    assert target.limit_chars == LIMIT_CHARS and target.limit_bytes is None
    assert utf16_length("😀") == 2


def test_simulator_refuses_an_oversized_column_like_dataverse(sim: Simulator, http) -> None:
    # Bypass the adapter: the simulator itself enforces the column length.
    from tests.powerplatform.conftest import mint

    cid = new_guid()
    sim.seed_dataverse(cid, name="n", definition=DEFINITION)
    response = http.patch(
        f"{sim.url}/api/data/v9.2/connectors({cid})",
        json={"openapidefinition": json.dumps({"x": "a" * 500_001})},
        headers={"Authorization": f"Bearer {mint(sim.url)}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80044331"


def test_configured_connector_missing_names_it(sim: Simulator, make_dataverse: Make) -> None:
    cid = new_guid()
    with pytest.raises(
        TargetError,
        match=rf"connector {cid} was not found in .* connector With Id = {cid} Does Not Exist",
    ):
        make_dataverse({"connector": cid}).read()


def test_unparseable_stored_definition_is_a_clear_error(
    sim: Simulator, make_dataverse: Make
) -> None:
    cid = new_guid()
    sim.seed_dataverse(cid, name="n", definition=None, columns={"openapidefinition": "{not json"})
    with pytest.raises(TargetError, match=rf"connector {cid}: openapidefinition is not JSON"):
        make_dataverse({"connector": cid}).read()


def test_empty_definition_reads_as_none(sim: Simulator, make_dataverse: Make) -> None:
    cid = new_guid()
    sim.seed_dataverse(cid, name="n", definition=None)
    assert make_dataverse({"connector": cid}).read().definition is None


def test_org_must_be_a_url(cloud, http) -> None:
    with pytest.raises(ConfigError, match=r"dataverse\.org"):
        DataverseTarget(
            api="a",
            name="b",
            params={"org": "contoso"},
            cloud=cloud,
            tokens=FakeTokens(),
            client=http,
        )


def post_row(sim: Simulator, http, **columns: str) -> Any:
    """A POST of a minimal valid connector row to the simulator's Dataverse, plus ``columns``."""
    from tests.powerplatform.conftest import mint

    return http.post(
        f"{sim.url}/api/data/v9.2/connectors",
        json={
            "connectorid": new_guid(),
            "name": "n",
            "displayname": "N",
            "openapidefinition": json.dumps(DEFINITION),
            "connectortype": 1,
            **columns,
        },
        headers={"Authorization": f"Bearer {mint(sim.url)}"},
    )


def stored_column(sim: Simulator, response: Any, column: str) -> str:
    """``column`` of the row a 204 ``post_row`` created."""
    assert response.status_code == 204, response.text
    cid = response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
    value: str = sim.dataverse_row(cid)[column]
    return value


def test_simulator_blanks_secrets_like_dataverse(sim: Simulator, http) -> None:
    params = json.loads(json.dumps(OAUTH_PROPERTIES["connectionParameters"]))
    params["token"]["oAuthSettings"]["clientSecret"] = "should-not-be-stored"
    response = post_row(sim, http, connectionparameters=json.dumps(params))
    stored_text = stored_column(sim, response, "connectionparameters")
    assert "should-not-be-stored" not in stored_text
    # reference 3.2: "replaced with an empty string" (until 2026-12-07 the key was removed)
    assert json.loads(stored_text)["token"]["oAuthSettings"]["clientSecret"] == ""


def test_simulator_blanks_secrets_in_parameter_sets_too(sim: Simulator, http) -> None:
    """Found in review on 2026-12-07: a secret in ``connectionparametersets`` was stored and
    served back as sent, so a client writing that column would pass here and fail for real."""
    oauth = {"type": "oauthSetting", "oAuthSettings": {"clientId": "c", "clientSecret": "s3cr3t"}}
    sets = {"uiDefinition": {}, "values": [{"name": "oauth", "parameters": {"token": oauth}}]}
    response = post_row(sim, http, connectionparametersets=json.dumps(sets))
    stored = json.loads(stored_column(sim, response, "connectionparametersets"))
    assert stored["values"][0]["parameters"]["token"]["oAuthSettings"] == {
        "clientId": "c",
        "clientSecret": "",
    }


@pytest.mark.parametrize("column", ["connectionparameters", "connectionparametersets"])
def test_simulator_answers_bad_parameter_json_with_a_400(sim: Simulator, http, column: str) -> None:
    """Found in review on 2026-12-07: the handler crashed and dropped the connection, which a
    client retries as a transport failure instead of reporting the 400."""
    response = post_row(sim, http, **{column: "{not json"})
    assert response.status_code == 400
    assert f"The '{column}' value is not valid JSON." in response.text


def test_simulator_refuses_unknown_columns(sim: Simulator, http) -> None:
    from tests.powerplatform.conftest import mint

    response = http.post(
        f"{sim.url}/api/data/v9.2/connectors",
        json={"name": "n", "connectortype": 1, "openApiDefinition": "{}"},
        headers={"Authorization": f"Bearer {mint(sim.url)}"},
    )
    assert response.status_code == 400
    assert "Invalid property 'openApiDefinition'" in response.json()["error"]["message"]


def test_stale_state_id_falls_back_to_create(sim: Simulator, make_dataverse: Make) -> None:
    gone = new_guid()
    target = make_dataverse(state_id=gone)
    assert target.read().definition is None
    created = target.write(DEFINITION, target.read())
    assert created != gone
    assert sim.dataverse_ids() == [created]
    assert len(sim.requests_to("GET", rf"connectors\({gone}\)")) == 1
    assert sim.requests_to("PATCH") == []
