"""diff(): operations keyed by operationId, each change classified breaking or not."""

from __future__ import annotations

import copy
import importlib
from typing import Any

import pytest

from sync.spec.diff import diff
from tests.spec import corpus


def base() -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "ListPets",
                    "parameters": [{"name": "limit", "in": "query", "type": "integer"}],
                    "responses": {
                        "200": {"description": "ok", "schema": {"$ref": "#/definitions/Pets"}}
                    },
                },
                "post": {
                    "operationId": "AddPet",
                    "parameters": [
                        {
                            "name": "body",
                            "in": "body",
                            "required": True,
                            "schema": {"$ref": "#/definitions/Pet"},
                        }
                    ],
                    "responses": {"201": {"description": "made"}},
                },
            },
            "/health": {"get": {"responses": {"200": {"description": "ok"}}}},
        },
        "definitions": {
            "Pet": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "tag": {"type": "string"},
                    "parent": {"$ref": "#/definitions/Pet"},
                },
            },
            "Pets": {"type": "array", "items": {"$ref": "#/definitions/Pet"}},
        },
    }


def kinds(result: Any, op: str) -> dict[str, bool]:
    for change in result.changed:
        if change.operation_id == op:
            return {c.kind: c.breaking for c in change.changes}
    return {}


def test_same_document_is_empty() -> None:
    result = diff(base(), base())
    assert result.is_empty and not result.breaking
    assert result.to_dict() == {"added": [], "removed": [], "changed": [], "breaking": False}


def test_old_none_means_all_added_not_breaking() -> None:
    result = diff(None, base())
    assert result.added == ["AddPet", "GET /health", "ListPets"]
    assert not result.breaking


def test_removed_operation_is_breaking_and_added_is_not() -> None:
    new = base()
    del new["paths"]["/pets"]["post"]
    new["paths"]["/cats"] = {
        "get": {"operationId": "ListCats", "responses": {"200": {"description": "ok"}}}
    }
    result = diff(base(), new)
    assert (result.added, result.removed, result.breaking) == (["ListCats"], ["AddPet"], True)
    assert (
        diff(
            base(), {**base(), "paths": {**base()["paths"], "/cats": new["paths"]["/cats"]}}
        ).breaking
        is False
    )


def test_moved_operation_is_changed_not_removed() -> None:
    new = base()
    new["paths"]["/animals"] = new["paths"].pop("/pets")
    result = diff(base(), new)
    assert result.added == [] and result.removed == []
    assert kinds(result, "ListPets") == {"moved": False}


def test_new_required_input_is_breaking_optional_is_not() -> None:
    new = base()
    params = new["paths"]["/pets"]["get"]["parameters"]
    params.append({"name": "owner", "in": "query", "type": "string", "required": True})
    params.append({"name": "sort", "in": "query", "type": "string"})
    result = diff(base(), new)
    assert kinds(result, "ListPets") == {"input-added-required": True, "input-added": False}
    assert result.breaking


def test_new_required_body_field_is_breaking() -> None:
    new = base()
    new["definitions"]["Pet"]["required"] = ["name", "tag"]
    result = diff(base(), new)
    assert kinds(result, "AddPet") == {"input-now-required": True}


def test_input_removed_retyped_moved_and_now_required() -> None:
    new = base()
    new["paths"]["/pets"]["get"]["parameters"] = [
        {"name": "limit", "in": "header", "type": "string", "required": True}
    ]
    result = diff(base(), new)
    assert kinds(result, "ListPets") == {
        "input-moved": False,
        "input-retyped": True,
        "input-now-required": True,
    }
    gone = base()
    gone["paths"]["/pets"]["get"]["parameters"] = []
    assert kinds(diff(base(), gone), "ListPets") == {"input-removed": True}


def test_input_moving_into_the_body_is_breaking() -> None:
    new = base()
    new["paths"]["/pets"]["get"]["parameters"] = [
        {"name": "limit", "in": "formData", "type": "integer"}
    ]
    assert kinds(diff(base(), new), "ListPets") == {"input-moved": True}


def test_response_fields_removed_retyped_added() -> None:
    new = base()
    props = new["definitions"]["Pet"]["properties"]
    del props["tag"]
    props["name"] = {"type": "integer"}
    props["age"] = {"type": "integer"}
    result = diff(base(), new)
    got = kinds(result, "ListPets")
    assert got == {"output-removed": True, "output-added": False, "output-retyped": True}
    messages = [
        c.message for oc in result.changed for c in oc.changes if oc.operation_id == "ListPets"
    ]
    assert "response field '[].tag' removed" in messages


def test_security_change_is_breaking() -> None:
    new = base()
    new["paths"]["/pets"]["get"]["security"] = [{"oauth": ["read"]}]
    assert kinds(diff(base(), new), "ListPets") == {"security-changed": True}


def test_to_dict_shape() -> None:
    new = base()
    del new["paths"]["/health"]
    data = diff(base(), new).to_dict()
    assert data == {"added": [], "removed": ["GET /health"], "changed": [], "breaking": True}


@pytest.mark.parametrize("case", corpus.connector_cases())
def test_corpus_added_and_removed_match_the_files(case: str) -> None:
    before, after = corpus.connector(case, "before"), corpus.connector(case, "after")
    old_keys, new_keys = corpus.operation_keys(before), corpus.operation_keys(after)
    result = diff(before, after)
    assert set(result.added) == new_keys - old_keys
    assert set(result.removed) == old_keys - new_keys
    if result.removed:
        assert result.breaking
    for change in result.changed:
        for item in change.changes:
            if item.kind in (
                "input-added-required",
                "input-now-required",
                "input-removed",
                "output-removed",
            ):
                assert item.breaking, item
    reverse = diff(after, before)
    assert set(reverse.removed) == set(result.added)
    if result.added:
        assert reverse.breaking
    assert diff(after, copy.deepcopy(after)).is_empty


def test_corpus_new_required_input_is_flagged() -> None:
    """At least one real upstream change adds a required input to an existing operation."""
    found = []
    for case in corpus.connector_cases():
        result = diff(corpus.connector(case, "before"), corpus.connector(case, "after"))
        found += [
            c for oc in result.changed for c in oc.changes if c.kind == "input-added-required"
        ]
    assert found and all(c.breaking for c in found)


@pytest.mark.parametrize("case", corpus.connector_cases())
def test_corpus_diff_with_hashes_reuses_descriptions_and_says_the_same(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warm worker diffs v1 -> v2, then v2 -> v3: with the hashes given, v2's operations are
    described once, and every answer equals the one computed from scratch."""
    diff_module = importlib.import_module("sync.spec.diff")
    from sync.spec.canonical import sha256_hex

    before, after = corpus.connector(case, "before"), corpus.connector(case, "after")
    third = copy.deepcopy(before)  # back to v1's operations, as new content
    third["info"] = {**(third.get("info") or {}), "x-build": "3"}
    shas = {id(d): sha256_hex(d) for d in (before, after, third)}
    plain = [diff(before, after).to_dict(), diff(after, third).to_dict()]
    described: list[str] = []
    real = diff_module._describe

    def counting(doc: Any, key: str, *rest: Any) -> Any:
        described.append(key)
        return real(doc, key, *rest)

    monkeypatch.setattr(diff_module, "_DESCRIBED", diff_module.Lru(4))
    monkeypatch.setattr(diff_module, "_describe", counting)
    first = diff(before, after, keys=(shas[id(before)], shas[id(after)])).to_dict()
    after_first = len(described)
    second = diff(after, third, keys=(shas[id(after)], shas[id(third)])).to_dict()
    assert [first, second] == plain
    common = len(corpus.operation_keys(before) & corpus.operation_keys(after))
    assert after_first == 2 * common
    assert len(described) - after_first == common  # v2's side came from the first diff
    described.clear()
    assert diff(before, after, keys=(shas[id(before)], shas[id(after)])).to_dict() == plain[0]
    assert described == []  # both sides known by their hashes


def test_diff_without_hashes_remembers_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Callers that may change a document between diffs (the CLI, tests) pass no hashes."""
    diff_module = importlib.import_module("sync.spec.diff")

    monkeypatch.setattr(diff_module, "_DESCRIBED", diff_module.Lru(4))
    old, new = base(), base()
    new["paths"]["/health"]["get"]["parameters"] = [
        {"name": "x", "in": "query", "type": "string", "required": True}
    ]
    assert diff(old, new).breaking
    new["paths"]["/health"]["get"]["parameters"][0]["required"] = False
    assert not diff(old, new).breaking
    assert diff_module._DESCRIBED.snapshot() == []


# --- review fixes, 2026-12-07 -------------------------------------------------------------------


def test_outputs_under_a_default_response_are_compared() -> None:
    """Without a 2xx the designer shows `default`'s schema as the outputs; they were never read,
    so a field retyped there (Planner's checklist ids) went unreported."""
    old, new = base(), base()
    for doc in (old, new):
        responses = doc["paths"]["/pets"]["get"]["responses"]
        responses["default"] = responses.pop("200")
    new["definitions"]["Pet"]["properties"]["name"] = {"type": "integer"}
    assert kinds(diff(old, new), "ListPets") == {"output-retyped": True}
    ranged = base()  # a 2xx still wins over default
    ranged["paths"]["/pets"]["get"]["responses"]["default"] = {
        "description": "error",
        "schema": {"type": "object", "properties": {"code": {"type": "integer"}}},
    }
    assert kinds(diff(base(), ranged), "ListPets") == {}


def test_an_internal_inputs_new_default_is_reported() -> None:
    """An internal input is sent with its default by every call, existing flows included
    (Notion-Version moving to a new API version went unreported)."""
    old, new = base(), base()
    header = {
        "name": "Api-Version",
        "in": "header",
        "type": "string",
        "required": True,
        "x-ms-visibility": "internal",
        "default": "2021-08-16",
    }
    old["paths"]["/pets"]["get"]["parameters"].append(dict(header))
    new["paths"]["/pets"]["get"]["parameters"].append({**header, "default": "2022-06-28"})
    result = diff(old, new)
    assert kinds(result, "ListPets") == {"input-default-changed": False}
    [message] = [c.message for oc in result.changed for c in oc.changes]
    assert "'Api-Version' now sends '2022-06-28' (was '2021-08-16')" in message
    visible = base()  # a visible input's default only pre-fills new actions: not news
    visible["paths"]["/pets"]["get"]["parameters"][0]["default"] = 10
    assert kinds(diff(base(), visible), "ListPets") == {}


def test_an_operation_made_internal_is_reported() -> None:
    new = base()
    new["paths"]["/pets"]["get"]["x-ms-visibility"] = "internal"
    assert kinds(diff(base(), new), "ListPets") == {"operation-hidden": False}
    assert kinds(diff(new, base()), "ListPets") == {"operation-shown": False}
