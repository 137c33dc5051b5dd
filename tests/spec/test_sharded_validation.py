"""The structural check in parts (path items and definitions checked one by one, each content once)
passes exactly the documents the whole-document validator passes."""

from __future__ import annotations

import copy
import importlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.lru import Lru
from tests.spec.corpus import connector, connector_cases
from tests.spec.test_compiled_cache import check  # validator passes doc?

validate_module = importlib.import_module("sync.spec.validate")


def whole_passes(doc: Any) -> bool:
    return check(validate_module._fast_validator().root, doc)


def parts_pass(doc: Any) -> bool:
    return check(validate_module._fast_validator().check, doc)


def good() -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": "Pets", "version": "1"},
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "ListPets",
                    "responses": {
                        "200": {"description": "ok", "schema": {"$ref": "#/definitions/Pet"}}
                    },
                },
                "x-ms-notes": {"any": ["thing"]},
            },
            "/pets/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True, "type": "string"}],
                "delete": {"responses": {"204": {"description": "gone"}}},
            },
            "x-paths-extension": {"not": "a path item"},
        },
        "definitions": {
            "Pet": {"type": "object", "properties": {"name": {"type": "string"}}},
            "Owner": {"type": "object", "required": ["id"]},
        },
    }


def test_the_parts_are_in_use() -> None:
    # a fastjsonschema that renames its generated functions would silently check whole again
    assert [member for member, _, _ in validate_module._fast_validator().parts] == [
        "paths",
        "definitions",
    ]


@pytest.mark.parametrize("case", connector_cases())
@pytest.mark.parametrize("side", ["before", "after"])
def test_corpus_definitions_get_the_same_verdict(case: str, side: str) -> None:
    doc = connector(case, side)
    assert parts_pass(doc) == whole_passes(doc)
    assert parts_pass(doc) == whole_passes(doc)  # second time from what was remembered


@pytest.mark.parametrize(
    "breaks",
    [
        lambda d: d["paths"]["/pets"]["get"].pop("responses"),
        lambda d: d["paths"]["/pets"].update(gett={}),
        lambda d: d["paths"].update(pets={}),  # a path must start with "/"
        lambda d: d["paths"].update({"/cats": []}),  # a path item must be an object
        lambda d: d["definitions"]["Pet"].update(type="whatever"),
        lambda d: d["definitions"].update(Cat=[]),
        lambda d: d.update(definitions=[]),
        lambda d: d.update(paths="nope"),
        lambda d: d["info"].pop("version"),
    ],
)
def test_a_broken_entry_or_shell_fails_like_the_whole_check(breaks) -> None:
    doc = good()
    assert parts_pass(doc) and whole_passes(doc)
    breaks(doc)
    assert not whole_passes(doc)
    assert not parts_pass(doc)


def test_content_that_passed_as_a_schema_is_not_taken_for_a_valid_path_item() -> None:
    content = {"type": "string"}  # a fine schema; "type" is no member of a path item
    doc = good()
    doc["definitions"]["Name"] = copy.deepcopy(content)
    assert parts_pass(doc)
    doc["paths"]["/names"] = copy.deepcopy(content)
    assert not whole_passes(doc)
    assert not parts_pass(doc)


def test_each_entry_content_is_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_module, "_VERIFIED", Lru(64))
    real = validate_module._fast_validator()
    checked: list[str] = []

    def counting(member: str, function: Any) -> Any:
        def check(entry: Any, **kwargs: Any) -> None:
            checked.append(kwargs["name_prefix"])
            function(entry, **kwargs)

        return check

    parts = tuple((m, prefix, counting(m, f)) for m, prefix, f in real.parts)
    validator = validate_module._FastValidator(real.root, parts)
    doc = good()
    validator.check(doc)
    assert sorted(checked) == [
        "data.definitions.Owner",
        "data.definitions.Pet",
        "data.paths./pets",
        "data.paths./pets/{id}",
    ]
    checked.clear()
    validator.check(copy.deepcopy(doc))  # same content, other objects
    assert checked == []
    doc["paths"]["/pets"]["get"]["summary"] = "List pets"
    doc["definitions"]["Renamed"] = doc["definitions"].pop("Owner")  # same content, new name
    validator.check(doc)
    assert checked == ["data.paths./pets"]


def test_a_failed_entry_is_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_module, "_VERIFIED", Lru(64))
    doc = good()
    doc["definitions"]["Pet"]["type"] = "whatever"
    assert not parts_pass(doc)
    assert not parts_pass(doc)  # still checked, still refused


def test_without_the_parts_the_whole_document_is_checked() -> None:
    calls: list[Any] = []
    validator = validate_module._FastValidator(lambda doc: calls.append(doc))
    doc = good()
    validator.check(doc)
    assert calls == [doc]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from(["", "x", "/p", "string", "#/definitions/Pet"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["type", "get", "responses", "description", "x-a", "$ref", "items", "/q"]
            ),
            inner,
            max_size=3,
        )
    ),
    max_leaves=6,
)


def locations(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += locations(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += locations(value, (*path, index))
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_damage_gets_the_same_verdict(data: st.DataObject) -> None:
    doc = good()
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(locations(doc)[1:]))
        value = data.draw(JSON)
        parent = doc
        for step in where[:-1]:
            parent = parent[step]
        parent[where[-1]] = value
    assert parts_pass(doc) == whole_passes(doc)


# -- entries verified by earlier processes ---------------------------------------------------------


@pytest.fixture
def new_process(tmp_path, monkeypatch):
    """A private cache of its own, and a way to forget everything in memory as a new process."""
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))

    def start() -> None:
        monkeypatch.setattr(validate_module, "_compiled", None)
        monkeypatch.setattr(validate_module, "_VERIFIED", Lru(8192))

    start()
    return start


def entry_keys(doc: dict[str, Any]) -> list[tuple[str, bytes]]:
    import hashlib
    import json

    return [
        (member, hashlib.sha256(json.dumps(entry, separators=(",", ":")).encode()).digest())
        for member in ("paths", "definitions")
        for name, entry in doc[member].items()
        if isinstance(entry, dict) and (member == "definitions" or name.startswith("/"))
    ]


def test_the_next_process_starts_from_the_entries_this_one_verified(new_process, tmp_path):
    doc = good()
    assert parts_pass(doc)
    [kept] = (tmp_path / "connector-sync-validators").glob("verified_*.bin")
    assert kept.stat().st_size == 33 * len(entry_keys(doc))
    new_process()
    validate_module._fast_validator()  # loads what was kept
    assert all(validate_module._VERIFIED.get(key) for key in entry_keys(doc))


def test_a_refused_entry_is_not_kept_for_the_next_process(new_process):
    doc = good()
    doc["definitions"]["Pet"]["type"] = "whatever"
    assert not parts_pass(doc)
    new_process()
    validate_module._fast_validator()
    pet = next(k for k in entry_keys(doc) if k[0] == "definitions")
    assert validate_module._VERIFIED.get(pet) is None
    assert not parts_pass(doc)


def test_a_damaged_file_of_kept_entries_is_ignored(new_process, tmp_path):
    assert parts_pass(good())
    [kept] = (tmp_path / "connector-sync-validators").glob("verified_*.bin")
    kept.write_bytes(b"x" * 40 + b"\x00")  # unknown tags, a torn last record
    new_process()
    assert parts_pass(good())  # checked again, nothing taken from the file
    broken = good()
    broken["paths"]["/pets"]["get"].pop("responses")
    assert not parts_pass(broken)


def test_a_key_that_is_not_a_string_is_left_to_the_shell():
    doc = good()  # parsers always give string keys; a document built in code may not
    doc["definitions"][1] = {"type": "object"}
    assert parts_pass(doc) == whole_passes(doc)


def test_validate_hashes_the_entries_with_the_size_checks_encoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A document no caller encoded before (the CLI's ``validate``, a merge's result) was
    encoded whole for the size check, then entry by entry again for the keys of the check in
    parts; now one encoding in parts gives both, and the verdict and the size are unchanged."""
    from sync.spec.canonical import compact_bytes
    from sync.spec.validate import validate

    monkeypatch.setattr(validate_module, "_VERIFIED", Lru(64))
    validate_module._fast_validator()  # loaded (its cache key hashes the schema) before counting
    encoded_again: list[Any] = []
    real_dumps = validate_module.json.dumps

    def counting_dumps(value: Any, **kwargs: Any) -> str:
        encoded_again.append(value)
        return real_dumps(value, **kwargs)

    monkeypatch.setattr(validate_module.json, "dumps", counting_dumps)
    doc = good()
    report = validate(doc)
    assert report.ok and encoded_again == []
    assert f"(root): {len(compact_bytes(doc))} bytes compact JSON" in report.info
    broken = good()
    broken["definitions"]["Pet"]["type"] = "whatever"
    assert validate(broken).warnings  # refused by the check in parts, as before
