"""merge3() and operations upstream moved: matched by operationId, as the diff calls them "moved".

Flows bind to an action's operationId, so an operation at a new path is the same action: the
connector's portal edits (summaries, x-ms-visibility, x-ms-summary on inputs) must follow it.
Before, the merge paired operations by path and method only, so such an edit was dropped with an
"edited on the connector and deleted upstream" conflict and the action arrived as upstream wrote it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sync.spec.diff import diff, index_operations
from sync.spec.merge import merge3
from tests.spec import corpus

OK = {"200": {"description": "ok"}}
PET_ID = {"name": "petId", "in": "path", "required": True, "type": "string"}


def upstream() -> dict[str, Any]:
    """Pets v1: ListPets, and GetPet in a path item with a path-level parameter."""
    list_pets = {"operationId": "ListPets", "summary": "List pets", "responses": OK}
    fields = {"name": "fields", "in": "query", "type": "string"}
    get = {"operationId": "GetPet", "summary": "Get a pet", "parameters": [fields], "responses": OK}
    paths = {"/pets": {"get": list_pets}, "/pets/{petId}": {"parameters": [PET_ID], "get": get}}
    return copy.deepcopy(
        {"swagger": "2.0", "info": {"title": "Pets", "version": "1"}, "paths": paths}
    )


def moved(doc: dict[str, Any], to: str = "/animals/{petId}") -> dict[str, Any]:
    """Upstream's next version: the ``/pets/{petId}`` item (GetPet, its path parameter) at ``to``."""
    theirs = copy.deepcopy(doc)
    theirs["paths"][to] = theirs["paths"].pop("/pets/{petId}")
    return theirs


def get_pet(doc: dict[str, Any], path: str = "/pets/{petId}") -> dict[str, Any]:
    op: dict[str, Any] = doc["paths"][path]["get"]
    return op


def renamed(doc: dict[str, Any], path: str = "/pets/{petId}") -> dict[str, Any]:
    """The connector's copy of ``doc``, GetPet's summary edited in the portal."""
    ours = copy.deepcopy(doc)
    get_pet(ours, path)["summary"] = "Find a pet by id"
    return ours


def test_a_portal_summary_and_visibility_follow_an_operation_upstream_moved() -> None:
    base = upstream()
    ours = renamed(base)
    get_pet(ours)["x-ms-visibility"] = "important"
    theirs = moved(base)
    theirs["info"]["version"] = "2"
    get_pet(theirs, "/animals/{petId}")["parameters"].append(
        {"name": "expand", "in": "query", "type": "boolean"}
    )
    merged, conflicts = merge3(base, ours, theirs)
    assert conflicts == []
    assert list(merged["paths"]) == ["/pets", "/animals/{petId}"]  # the old location is gone
    op = get_pet(merged, "/animals/{petId}")
    assert op["summary"] == "Find a pet by id" and op["x-ms-visibility"] == "important"
    assert [p["name"] for p in op["parameters"]] == ["fields", "expand"]
    assert merged["paths"]["/animals/{petId}"]["parameters"] == [PET_ID]
    assert merged["info"]["version"] == "2"


def test_an_input_x_ms_summary_follows_the_move_on_the_operation_and_on_its_path_item() -> None:
    base = upstream()
    ours = copy.deepcopy(base)
    get_pet(ours)["parameters"][0]["x-ms-summary"] = "Fields"
    ours["paths"]["/pets/{petId}"]["parameters"][0]["x-ms-summary"] = "Pet"
    merged, conflicts = merge3(base, ours, moved(base))
    assert conflicts == []
    item = merged["paths"]["/animals/{petId}"]
    assert item["get"]["parameters"][0]["x-ms-summary"] == "Fields"
    assert item["parameters"] == [{**PET_ID, "x-ms-summary": "Pet"}]
    assert "/pets/{petId}" not in merged["paths"]


def test_an_operation_moved_into_another_path_item_keeps_each_items_parameters() -> None:
    """DeletePet leaves ``/pets/{petId}`` (GetPet stays, with the path parameter) for ``/pets``
    (no path parameters): its edit follows it, the path parameter's edit stays where it is, and
    ``/pets`` gets no path-level parameters it did not have."""
    base = upstream()
    base["paths"]["/pets/{petId}"]["delete"] = {"operationId": "DeletePet", "responses": OK}
    ours = copy.deepcopy(base)
    ours["paths"]["/pets/{petId}"]["delete"]["summary"] = "Remove a pet"
    ours["paths"]["/pets/{petId}"]["parameters"][0]["x-ms-summary"] = "Pet"
    theirs = copy.deepcopy(base)
    gone = theirs["paths"]["/pets/{petId}"].pop("delete")
    gone["parameters"] = [{**PET_ID, "in": "query"}]
    theirs["paths"]["/pets"]["delete"] = gone
    merged, conflicts = merge3(base, ours, theirs)
    assert conflicts == []
    assert merged["paths"]["/pets"] == {
        "get": base["paths"]["/pets"]["get"],
        "delete": {**gone, "summary": "Remove a pet"},
    }
    assert merged["paths"]["/pets/{petId}"] == {
        "parameters": [{**PET_ID, "x-ms-summary": "Pet"}],
        "get": get_pet(base),
    }


@pytest.mark.parametrize("whole_item", [True, False], ids=["item-deleted", "operation-deleted"])
def test_an_operation_the_connector_deleted_stays_deleted_when_upstream_moves_it(
    whole_item: bool,
) -> None:
    base = upstream()
    ours = copy.deepcopy(base)
    if whole_item:  # the portal drops a path item with its last operation
        del ours["paths"]["/pets/{petId}"]
    else:
        del ours["paths"]["/pets/{petId}"]["get"]
    theirs = moved(base)
    new_item = theirs["paths"]["/animals/{petId}"]
    new_item["delete"] = {"operationId": "DeletePet", "responses": OK}
    merged, conflicts = merge3(base, ours, theirs)
    assert conflicts == []
    assert merged["paths"]["/animals/{petId}"] == {
        "parameters": [PET_ID],
        "delete": new_item["delete"],
    }
    assert "/pets/{petId}" not in merged["paths"]
    get_pet(theirs, "/animals/{petId}")["summary"] = "Get one pet"  # upstream changed it too
    merged, conflicts = merge3(base, ours, theirs)
    assert "get" not in merged["paths"]["/animals/{petId}"]
    assert conflicts == [
        "paths./animals/{petId}.get (moved upstream from paths./pets/{petId}.get): deleted on the "
        "connector and changed upstream; kept deleted"
    ]


def test_a_move_whose_old_location_upstream_gives_to_a_new_operation_is_followed() -> None:
    """GetPet moves from GET to POST and a new GetPetV2 takes the GET: the connector's edits are
    GetPet's, not the newcomer's. Found in review on 2026-12-07: the move check asked for a
    vacated location as well, so only a release that also removed something else was followed,
    and otherwise the edits landed silently on GetPetV2."""
    base = upstream()
    ours = renamed(base)
    get_pet(ours)["x-ms-visibility"] = "internal"
    theirs = copy.deepcopy(base)
    item = theirs["paths"]["/pets/{petId}"]
    item["post"] = item.pop("get")
    item["get"] = {"operationId": "GetPetV2", "summary": "Get a pet (v2)", "responses": OK}
    merged, conflicts = merge3(base, ours, theirs)
    assert conflicts == []
    merged_item = merged["paths"]["/pets/{petId}"]
    assert merged_item["get"] == item["get"]  # the new operation as upstream wrote it
    assert merged_item["post"]["operationId"] == "GetPet"
    assert merged_item["post"]["summary"] == "Find a pet by id"
    assert merged_item["post"]["x-ms-visibility"] == "internal"


def test_a_conflict_inside_a_moved_operation_names_both_locations() -> None:
    theirs = moved(upstream())
    get_pet(theirs, "/animals/{petId}")["summary"] = "Get one pet"
    merged, conflicts = merge3(upstream(), renamed(upstream()), theirs)
    expected = (
        "paths./animals/{petId}.get.summary (moved upstream from paths./pets/{petId}.get): "
        "changed on both sides; connector value kept"
    )
    summary = get_pet(merged, "/animals/{petId}")["summary"]
    assert (summary, conflicts) == ("Find a pet by id", [expected])


def test_duplicate_operation_ids_fall_back_to_matching_by_path() -> None:
    """An operationId held twice names no single operation: the merge pairs by path, as before."""
    base = upstream()
    base["paths"]["/pets"]["get"]["operationId"] = "GetPet"  # two GetPets in base
    ours = renamed(base)
    merged, conflicts = merge3(base, ours, moved(base))
    assert get_pet(merged, "/animals/{petId}") == get_pet(base)
    assert conflicts == [
        "paths./pets/{petId}: edited on the connector and deleted upstream; upstream wins"
    ]
    theirs = moved(upstream())
    theirs["paths"]["/pets"]["get"]["operationId"] = "GetPet"  # two GetPets upstream
    ours = renamed(upstream())
    merged, conflicts = merge3(upstream(), ours, theirs)
    assert get_pet(merged, "/animals/{petId}")["summary"] == "Get a pet"
    assert conflicts == [
        "paths./pets/{petId}: edited on the connector and deleted upstream; upstream wins"
    ]


def test_an_operation_without_an_operation_id_is_matched_by_path() -> None:
    base = upstream()
    del get_pet(base)["operationId"]
    ours = renamed(base)
    merged, conflicts = merge3(base, ours, moved(base))
    assert get_pet(merged, "/animals/{petId}")["summary"] == "Get a pet"
    assert len(conflicts) == 1 and "deleted upstream" in conflicts[0]


def test_both_sides_moved_it_to_the_same_place() -> None:
    """The connector followed the API to the new path (and curated); upstream changed the
    operation meanwhile: base's version is the common ancestor of both, so no conflict."""
    base = upstream()
    ours = renamed(moved(base), "/animals/{petId}")
    theirs = moved(base)
    get_pet(theirs, "/animals/{petId}")["responses"] = {"200": {"description": "the pet"}}
    merged, conflicts = merge3(base, ours, theirs)
    assert conflicts == []
    op = get_pet(merged, "/animals/{petId}")
    assert op["summary"] == "Find a pet by id"
    assert op["responses"] == {"200": {"description": "the pet"}}
    assert list(merged["paths"]) == ["/pets", "/animals/{petId}"]


def test_both_sides_moved_it_elsewhere_upstream_location_wins() -> None:
    base = upstream()
    ours = moved(base, "/pets/{petId}/details")
    get_pet(ours, "/pets/{petId}/details")["x-ms-visibility"] = "advanced"
    merged, conflicts = merge3(base, ours, moved(base))
    assert list(merged["paths"]) == ["/pets", "/animals/{petId}"]
    assert get_pet(merged, "/animals/{petId}")["x-ms-visibility"] == "advanced"
    assert conflicts == [
        "paths./animals/{petId}.get (moved upstream from paths./pets/{petId}.get): moved on the "
        "connector to paths./pets/{petId}/details.get; upstream location wins"
    ]


def test_operations_moving_along_a_chain_each_keep_their_edits() -> None:
    """GetPet takes ListPets' place and ListPets goes to a new path, in one release."""
    base = upstream()
    ours = renamed(base)
    ours["paths"]["/pets"]["get"]["x-ms-visibility"] = "important"
    theirs = copy.deepcopy(base)
    theirs["paths"]["/all-pets"] = theirs["paths"].pop("/pets")
    theirs["paths"]["/pets"] = {"get": theirs["paths"]["/pets/{petId}"].pop("get")}
    del theirs["paths"]["/pets/{petId}"]
    theirs["paths"]["/pets"]["get"]["parameters"].append({**PET_ID, "in": "query"})
    merged, conflicts = merge3(base, ours, theirs)
    assert conflicts == []
    assert merged["paths"]["/pets"]["get"]["summary"] == "Find a pet by id"
    assert merged["paths"]["/all-pets"]["get"]["x-ms-visibility"] == "important"
    assert list(merged["paths"]) == ["/all-pets", "/pets"]  # /pets/{petId} went, as upstream


def test_the_move_leaves_the_inputs_alone_and_shares_like_the_copying_merge() -> None:
    base = upstream()
    ours = renamed(base)
    theirs = moved(base)
    snapshot = copy.deepcopy((base, ours, theirs))
    assert merge3(base, ours, theirs, share=True) == merge3(base, ours, theirs)
    assert (base, ours, theirs) == snapshot


MOVE_CASES = ["Almabase", "Microsoft-Bookings", "Morf", "envoy", "monday"]  # corpus README


@pytest.mark.parametrize("case", MOVE_CASES)
def test_corpus_edits_follow_the_operations_upstream_moved(case: str) -> None:
    """A real release that moved operations: the portal edits made on the before-definition (a
    summary, x-ms-visibility, an input's x-ms-summary) are on each moved action afterwards."""
    before, after = corpus.connector(case, "before"), corpus.connector(case, "after")
    moves = [
        oc.operation_id
        for oc in diff(before, after).changed
        if any(c.kind == "moved" for c in oc.changes)
    ]
    assert moves, f"{case}: the corpus README lists a moved operation"
    ours = copy.deepcopy(before)
    ours_ops = index_operations(ours)
    for key in moves:
        op = ours_ops[key][2]
        op["summary"] = f"Curated {key}"
        op["x-ms-visibility"] = "advanced"
        for param in op.get("parameters") or []:
            if isinstance(param, dict) and "name" in param:
                param["x-ms-summary"] = f"Input {param['name']}"
    merged, conflicts = merge3(before, ours, after)
    assert not [c for c in conflicts if "deleted upstream" in c], conflicts
    assert list(merged["paths"]) == list(after["paths"])
    merged_ops = index_operations(merged)
    for key in moves:
        method, path, op = merged_ops[key]
        assert (method, path) == index_operations(after)[key][:2]
        assert op["summary"] == f"Curated {key}" and op["x-ms-visibility"] == "advanced"
        curated = {p["name"]: p for p in ours_ops[key][2].get("parameters") or [] if "name" in p}
        for param in op.get("parameters") or []:
            if isinstance(param, dict) and param.get("name") in curated:
                assert param["x-ms-summary"] == f"Input {param['name']}"
