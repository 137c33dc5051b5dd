"""merge3(): the API's new shape, the connector's edits kept, conflicts reported by path."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from sync.spec.merge import merge3
from sync.spec.parse import load_document
from tests.spec import corpus


def upstream() -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": "Pets", "version": "1"},
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "ListPets",
                    "summary": "List pets",
                    "parameters": [
                        {"name": "limit", "in": "query", "type": "integer"},
                        {"name": "tag", "in": "query", "type": "string"},
                    ],
                    "responses": {"200": {"description": "ok"}},
                },
                "delete": {
                    "operationId": "DeleteAll",
                    "responses": {"204": {"description": "gone"}},
                },
            }
        },
    }


def curated(doc: dict[str, Any]) -> dict[str, Any]:
    """The connector-side edits people make in the portal."""
    ours = copy.deepcopy(doc)
    op = ours["paths"]["/pets"]["get"]
    op["summary"] = "Find pets"
    op["x-ms-visibility"] = "important"
    op["parameters"][0]["x-ms-summary"] = "Max results"
    op["parameters"][1]["x-ms-dynamic-values"] = {"operationId": "ListTags"}
    del ours["paths"]["/pets"]["delete"]  # deliberately removed from the connector
    return ours


def test_connector_edits_survive_an_upstream_change() -> None:
    base = upstream()
    ours = curated(base)
    theirs = upstream()
    theirs["info"]["version"] = "2"
    theirs["paths"]["/pets"]["get"]["parameters"].append(
        {"name": "owner", "in": "query", "type": "string"}
    )
    theirs["paths"]["/pets"]["get"]["responses"]["200"]["schema"] = {"type": "array"}
    merged, conflicts = merge3(base, ours, theirs)
    op = merged["paths"]["/pets"]["get"]
    assert conflicts == []
    assert merged["info"]["version"] == "2"
    assert op["summary"] == "Find pets" and op["x-ms-visibility"] == "important"
    assert [p["name"] for p in op["parameters"]] == ["limit", "tag", "owner"]
    assert op["parameters"][0]["x-ms-summary"] == "Max results"
    assert op["parameters"][1]["x-ms-dynamic-values"] == {"operationId": "ListTags"}
    assert op["responses"]["200"]["schema"] == {"type": "array"}
    assert "delete" not in merged["paths"]["/pets"]


def test_deleted_operation_stays_deleted_even_if_upstream_changed_it() -> None:
    base = upstream()
    ours = curated(base)
    theirs = upstream()
    theirs["paths"]["/pets"]["delete"]["summary"] = "Delete every pet"
    merged, conflicts = merge3(base, ours, theirs)
    assert "delete" not in merged["paths"]["/pets"]
    assert conflicts == [
        "paths./pets.delete: deleted on the connector and changed upstream; kept deleted"
    ]


def test_conflicts_name_the_path_shape_goes_to_theirs_curation_to_ours() -> None:
    base = upstream()
    ours = curated(base)
    ours["paths"]["/pets"]["get"]["parameters"][0]["type"] = "string"
    theirs = upstream()
    theirs["paths"]["/pets"]["get"]["summary"] = "List all pets"
    theirs["paths"]["/pets"]["get"]["parameters"][0]["type"] = "number"
    merged, conflicts = merge3(base, ours, theirs)
    op = merged["paths"]["/pets"]["get"]
    assert op["summary"] == "Find pets"
    assert op["parameters"][0]["type"] == "number"
    assert sorted(conflicts) == [
        "paths./pets.get.parameters.[limit(query)].type: changed on both sides; upstream value wins",
        "paths./pets.get.summary: changed on both sides; connector value kept",
    ]


def test_upstream_removal_of_an_edited_operation_is_reported() -> None:
    base = upstream()
    ours = curated(base)
    theirs = upstream()
    del theirs["paths"]["/pets"]["get"]
    merged, conflicts = merge3(base, ours, theirs)
    assert "get" not in merged["paths"]["/pets"]
    assert conflicts == [
        "paths./pets.get: edited on the connector and deleted upstream; upstream wins"
    ]


def test_base_none_adopts_ours_extensions_on_matching_operations() -> None:
    theirs = upstream()
    ours = curated(upstream())
    ours["x-ms-connector-metadata"] = [{"propertyName": "Website", "propertyValue": "https://x"}]
    merged, conflicts = merge3(None, ours, theirs)
    op = merged["paths"]["/pets"]["get"]
    assert conflicts == []
    assert op["x-ms-visibility"] == "important"
    assert op["parameters"][0]["x-ms-summary"] == "Max results"
    assert op["summary"] == "List pets"  # only x-ms-* is adopted without a base
    assert "delete" in merged["paths"]["/pets"]  # without a base a deletion cannot be told apart
    assert merged["x-ms-connector-metadata"] == ours["x-ms-connector-metadata"]


def test_ours_none_is_theirs() -> None:
    theirs = upstream()
    merged, conflicts = merge3(upstream(), None, theirs)
    assert merged == theirs and merged is not theirs and conflicts == []


def test_inputs_are_not_mutated() -> None:
    base, ours, theirs = upstream(), curated(upstream()), upstream()
    theirs["info"]["version"] = "3"
    snapshot = copy.deepcopy((base, ours, theirs))
    merged, _ = merge3(base, ours, theirs)
    merged["paths"]["/pets"]["get"]["parameters"][0]["name"] = "changed"
    assert (base, ours, theirs) == snapshot


@pytest.mark.parametrize("case", corpus.connector_cases())
def test_corpus_round_trip_loses_nothing(case: str) -> None:
    for side in ("before", "after"):
        raw = corpus.connector_bytes(case, side)
        doc = load_document(raw)
        merged, conflicts = merge3(doc, doc, doc)
        reparsed = load_document(json.dumps(merged, ensure_ascii=False))
        assert reparsed == load_document(raw)
        assert conflicts == []
        assert _x_ms(reparsed) == _x_ms(load_document(raw))
    before, after = corpus.connector(case, "before"), corpus.connector(case, "after")
    assert merge3(before, before, after) == (after, [])
    assert merge3(before, after, before) == (after, [])


def _x_ms(doc: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.startswith("x-ms-"):
                    found.append((f"{path}/{key}", json.dumps(value, sort_keys=True)))
                stack.append((value, f"{path}/{key}"))
        elif isinstance(node, list):
            stack.extend((v, f"{path}/{i}") for i, v in enumerate(node))
    return sorted(found)


def test_shared_merge_equals_the_copying_merge_and_leaves_the_inputs_alone():
    import copy

    from sync.spec.canonical import sha256_hex
    from sync.spec.merge import merge3

    base = {
        "swagger": "2.0",
        "info": {"title": "A", "version": "1"},
        "paths": {
            "/a": {
                "get": {
                    "operationId": "A",
                    "summary": "s",
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    ours = copy.deepcopy(base)
    ours["paths"]["/a"]["get"]["x-ms-visibility"] = "important"
    theirs = copy.deepcopy(base)
    theirs["paths"]["/b"] = {
        "post": {"operationId": "B", "responses": {"200": {"description": "ok"}}}
    }
    hashes = [sha256_hex(d) for d in (base, ours, theirs)]
    for b in (base, None):
        for o in (ours, None):
            assert merge3(b, o, theirs, share=True) == merge3(b, o, theirs)
    assert [sha256_hex(d) for d in (base, ours, theirs)] == hashes


def test_a_curation_key_edited_on_the_connector_survives_its_removal_upstream() -> None:
    """The connector's value of a curation key wins when both sides change it, and so when
    upstream drops it (the deletion branch came first and gave it to upstream: review
    2026-12-07, DocuSign's GetLoginAccounts)."""
    base = upstream()
    base["paths"]["/pets"]["get"]["x-ms-visibility"] = "internal"
    ours = copy.deepcopy(base)
    ours["paths"]["/pets"]["get"]["x-ms-visibility"] = "advanced"
    theirs = upstream()  # no x-ms-visibility any more
    merged, conflicts = merge3(base, ours, theirs)
    assert merged["paths"]["/pets"]["get"]["x-ms-visibility"] == "advanced"
    assert conflicts == [
        "paths./pets.get.x-ms-visibility: edited on the connector and deleted upstream; "
        "connector value kept"
    ]


def test_a_parameter_edited_on_the_connector_and_removed_upstream_is_reported() -> None:
    """A list item removed upstream went silently, edit and all, where a dict entry in the same
    situation is reported (review 2026-12-07, DocuSign's AddRecipientToEnvelope)."""
    base = upstream()
    ours = copy.deepcopy(base)
    ours["paths"]["/pets"]["get"]["parameters"][1]["x-ms-summary"] = "Tag"
    theirs = upstream()
    del theirs["paths"]["/pets"]["get"]["parameters"][1]
    merged, conflicts = merge3(base, ours, theirs)
    assert [p["name"] for p in merged["paths"]["/pets"]["get"]["parameters"]] == ["limit"]
    assert conflicts == [
        "paths./pets.get.parameters.[tag(query)]: edited on the connector and removed upstream; "
        "upstream wins"
    ]
    untouched = upstream()  # removed upstream, never edited on the connector: no news
    assert merge3(base, untouched, theirs)[1] == []
