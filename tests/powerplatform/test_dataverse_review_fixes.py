"""Review fixes of the Dataverse target, each against the simulated connector table and real httpx:

* ``displayname`` (200) and ``description`` (1000) are counted by Dataverse in UTF-16 code units,
  so a title or description with astral characters (emoji) must be cut by units, never inside a
  surrogate pair, or every create answers 400; a configured ``displayName`` over the limit is a
  ``ConfigError`` at map load instead of a PATCH that fails on every run.
* ``write()`` without a connector id from ``read()`` PATCHes the marked connector that replaced a
  stale ledger id, not the id it just found gone.
* The marker search escapes the brackets of ``[connector-sync:…]``: Dataverse's ``contains`` is a
  SQL LIKE where ``[…]`` is a character set.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from sync.adapters import dataverse
from sync.adapters.dataverse import DataverseTarget, utf16_length
from sync.config import load_map_file
from sync.errors import ConfigError
from sync.models import CurrentConnector
from tests.powerplatform.conftest import mint, new_guid
from tests.powerplatform.samples import DEFINITION, changed
from tests.simulators.powerplatform import Simulator

Make = Callable[..., DataverseTarget]
MARKER = "[connector-sync:contoso/dv]"


# --- 1. UTF-16 column lengths ------------------------------------------------------------------


def test_utf16_prefix_cuts_by_units_and_keeps_surrogate_pairs_whole() -> None:
    cut = dataverse.utf16_prefix
    assert cut("abc", 2) == "ab"
    assert cut("a\U0001f9fe", 2) == "a"  # the emoji needs 2 units; only 1 is left
    assert cut("a\U0001f9fe", 3) == "a\U0001f9fe"
    assert cut("\U0001f9fe" * 150, 200) == "\U0001f9fe" * 100
    assert cut("short", 200) == "short"
    assert cut("abc", 0) == ""


def test_create_cuts_an_emoji_description_to_1000_utf16_units(
    sim: Simulator, make_dataverse: Make
) -> None:
    doc = copy.deepcopy(DEFINITION)
    doc["info"]["description"] = "Invoices \U0001f9fe " * 200  # 2,200 code points
    target = make_dataverse()
    created = target.write(doc, target.read())

    description = sim.dataverse_row(created)["description"]
    assert description.endswith(f" {MARKER}")
    assert utf16_length(description) <= 1000
    assert description.encode("utf-8")  # no lone surrogate half
    assert doc["info"]["description"].startswith(description.removesuffix(f" {MARKER}"))
    assert make_dataverse().read().connector_id == created  # the marker is found again


def test_create_cuts_an_emoji_title_to_200_utf16_units_without_splitting_a_pair(
    sim: Simulator, make_dataverse: Make
) -> None:
    doc = copy.deepcopy(DEFINITION)
    doc["info"]["title"] = "a" + "\U0001f4b6" * 150  # 151 code points, 301 UTF-16 units
    target = make_dataverse()
    created = target.write(doc, target.read())
    assert sim.dataverse_row(created)["displayname"] == "a" + "\U0001f4b6" * 99  # 199 units


def _map_with_display_name(tmp_path: Path, display_name: str) -> Path:
    path = tmp_path / "map.json"
    path.write_text(
        json.dumps(
            {
                "apis": {
                    "contoso": {
                        "spec": {"url": "https://contoso.example/swagger.json"},
                        "targets": [
                            {
                                "name": "dv",
                                "dataverse": {
                                    "org": "https://contoso.crm.dynamics.com",
                                    "credential": "pp",
                                    "displayName": display_name,
                                },
                            }
                        ],
                    }
                },
                "credentials": {"pp": {"managedIdentity": {}}},
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    return path


def test_a_configured_display_name_over_200_utf16_units_is_a_config_error_naming_the_path(
    tmp_path: Path,
) -> None:
    # 120 code points pass the schema's maxLength (code points) but are 240 UTF-16 units
    with pytest.raises(ConfigError) as info:
        load_map_file(_map_with_display_name(tmp_path, "\U0001f9fe" * 120))
    message = str(info.value)
    assert "apis.contoso.targets[0].dataverse.displayName" in message
    assert "240" in message and "200" in message and "UTF-16" in message


def test_a_configured_display_name_of_exactly_200_utf16_units_loads_and_is_written(
    tmp_path: Path, sim: Simulator, make_dataverse: Make
) -> None:
    name = "\U0001f9fe" * 100
    sync_map = load_map_file(_map_with_display_name(tmp_path, name))
    params = sync_map.api("contoso").target("dv").params
    assert params["displayName"] == name

    cid = new_guid()
    sim.seed_dataverse(cid, name="n", definition=DEFINITION)
    target = make_dataverse({"connector": cid, "displayName": name})
    target.write(changed(DEFINITION), target.read())
    assert sim.dataverse_row(cid)["displayname"] == name


# --- 2. write() after a stale ledger id ----------------------------------------------------------


def test_write_patches_the_marked_connector_that_replaced_a_stale_state_id(
    sim: Simulator, make_dataverse: Make
) -> None:
    marked = new_guid()
    sim.seed_dataverse(marked, name="n", definition=DEFINITION, description=f"x {MARKER}")
    stale = new_guid()  # the ledger remembers a connector deleted by hand
    target = make_dataverse(state_id=stale)

    assert target.write(changed(DEFINITION), CurrentConnector(definition=None)) == marked

    assert json.loads(sim.dataverse_row(marked)["openapidefinition"]) == changed(DEFINITION)
    assert sim.dataverse_ids() == [marked]  # nothing created
    assert sim.requests_to("PATCH", rf"connectors\({stale}\)") == []
    assert len(sim.requests_to("PATCH", rf"connectors\({marked}\)")) == 1


# --- 4. the marker search's LIKE pattern --------------------------------------------------------


def _query(sim: Simulator, http: httpx.Client, odata_filter: str) -> list[str]:
    response = http.get(
        f"{sim.url}/api/data/v9.2/connectors?$select=connectorid,description"
        f"&$filter={quote(odata_filter, safe='')}",
        headers={"Authorization": f"Bearer {mint(sim.url)}"},
    )
    assert response.status_code == 200, response.text
    return sorted(row["description"] for row in response.json()["value"])


def test_simulator_contains_is_a_like_pattern_as_documented(
    sim: Simulator, http: httpx.Client
) -> None:
    """learn.microsoft.com/power-apps/developer/data-platform/wildcard-characters: contains,
    startswith and endswith take % _ [] [^] as wildcards; a bracketed character is literal."""
    for text in ("a [x] b", "a x b", "abc", "50%", "500", "y"):
        sim.seed_dataverse(new_guid(), name="n", definition=None, description=text)
    assert _query(sim, http, "contains(description,'[[]x]')") == ["a [x] b"]
    assert _query(sim, http, "contains(description,'[xy]')") == ["a [x] b", "a x b", "y"]
    assert _query(sim, http, "contains(description,'a_c')") == ["abc"]
    assert _query(sim, http, "contains(description,'50[%]')") == ["50%"]
    assert _query(sim, http, "contains(description,'[^abc0-9 %[]')") == [
        "a [x] b",
        "a x b",
        "y",
    ]


def test_like_literal_brackets_every_wildcard() -> None:
    assert dataverse.like_literal(MARKER) == "[[]connector-sync:contoso/dv]"
    assert dataverse.like_literal("50%_off") == "50[%][_]off"


def test_the_marker_search_lists_only_marked_rows(
    sim: Simulator, make_dataverse: Make, http: httpx.Client
) -> None:
    marked = new_guid()
    sim.seed_dataverse(marked, name="m", definition=DEFINITION, description=f"x {MARKER}")
    for text in ("Contoso orders", "sync connector", "[connector-sync:contoso/other]"):
        sim.seed_dataverse(new_guid(), name="o", definition=DEFINITION, description=text)
    listed: list[str] = []

    def keep_list_answers(response: httpx.Response) -> None:
        if "$filter" in response.request.url.params:
            response.read()
            listed.extend(row["connectorid"] for row in response.json()["value"])

    http.event_hooks["response"] = [keep_list_answers]
    assert make_dataverse().read().connector_id == marked
    assert listed == [marked]  # the unmarked rows never crossed the wire
    searches = [r for r in sim.requests_to("GET") if "$filter" in r.query]
    assert searches[0].query["$filter"] == "contains(description,'[[]connector-sync:contoso/dv]')"
