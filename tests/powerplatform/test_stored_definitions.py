"""Connector definitions are parsed and hashed once per distinct byte string."""

from __future__ import annotations

import json

import pytest

from sync.adapters.stored_definitions import StoredDefinitions
from sync.errors import TargetError
from sync.spec.canonical import sha256_hex
from tests.powerplatform.conftest import ENV
from tests.powerplatform.samples import APIKEY_PROPERTIES, DEFINITION, changed
from tests.simulators.powerplatform import Simulator

CIDS = [f"shared_contoso-{i}-5f0629412a7d1fe83e-5f6f049093c9b7a698" for i in range(2)]


def counting_parse(calls: list[bytes]):
    def parse(raw: bytes) -> dict:
        calls.append(raw)
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise TargetError("not a JSON object", where="test")
        return doc

    return parse


def test_the_same_bytes_are_parsed_and_hashed_once() -> None:
    store, calls = StoredDefinitions(), []
    raw = json.dumps(DEFINITION, indent=2).encode()
    doc, sha = store.parsed(raw, counting_parse(calls))
    again, sha_again = store.parsed(bytes(raw), counting_parse(calls))
    assert again is doc and sha_again == sha == sha256_hex(DEFINITION)
    assert len(calls) == 1


def test_other_bytes_of_the_same_document_are_parsed_again() -> None:
    store, calls = StoredDefinitions(), []
    compact = json.dumps(DEFINITION).encode()
    pretty = json.dumps(DEFINITION, indent=2).encode()
    first, sha1 = store.parsed(compact, counting_parse(calls))
    second, sha2 = store.parsed(pretty, counting_parse(calls))
    assert first == second and first is not second and sha1 == sha2
    assert len(calls) == 2


def test_a_refusal_is_not_remembered_and_the_store_is_bounded() -> None:
    store, calls = StoredDefinitions(max_entries=2), []
    for _ in range(2):
        with pytest.raises(TargetError):
            store.parsed(b"[1, 2]", counting_parse(calls))
    assert len(calls) == 2
    for i in range(3):
        store.parsed(json.dumps({"n": i}).encode(), counting_parse(calls))
    store.parsed(json.dumps({"n": 0}).encode(), counting_parse(calls))  # pushed out by n=2
    assert len(calls) == 2 + 3 + 1


def test_connectors_serving_the_same_definition_share_one_parse(
    sim: Simulator, make_powerapps, monkeypatch
) -> None:
    """Two connectors, same stored definition: the second read is neither parsed nor hashed,
    and the target hands the pipeline the hash it already knows."""
    import sync.adapters.stored_definitions as module

    monkeypatch.setattr(module, "SHARED", StoredDefinitions())
    parsed: list[int] = []
    real_loads = json.loads

    def loads(text, *args, **kwargs):
        if isinstance(text, str) and len(text) > 500:
            parsed.append(len(text))
        return real_loads(text, *args, **kwargs)

    new = changed(DEFINITION)
    for cid in CIDS:
        sim.seed_powerapps(ENV, cid, new, APIKEY_PROPERTIES)
    monkeypatch.setattr("sync.adapters.powerapps.json.loads", loads)
    first = make_powerapps({"connector": CIDS[0]}, name="a").read()
    second = make_powerapps({"connector": CIDS[1]}, name="b").read()
    assert first.definition == new and second.definition is first.definition
    assert first.definition_sha256 == second.definition_sha256 == sha256_hex(new)
    assert len(parsed) == 1


def test_a_read_back_of_what_was_written_takes_the_known_hash_and_document(monkeypatch) -> None:
    import sync.adapters.stored_definitions as module

    store, calls = StoredDefinitions(), []
    hashed: list[object] = []
    monkeypatch.setattr(module, "sha256_hex", lambda doc: hashed.append(doc) or "computed")
    written = json.loads(json.dumps(DEFINITION))
    raw = json.dumps(written, indent=2).encode()  # the platform's own serialization of it
    compact = json.dumps(written, separators=(",", ":"), ensure_ascii=False).encode()
    doc, sha = store.parsed(raw, counting_parse(calls), expect=(written, "known-sha", compact))
    assert doc is written and sha == "known-sha" and hashed == []
    assert store.parsed(raw, counting_parse(calls)) == (written, "known-sha")  # remembered
    assert len(calls) == 1


def test_bytes_that_do_not_hold_what_was_written_are_hashed_as_they_are() -> None:
    store = StoredDefinitions()
    written = json.loads(json.dumps(DEFINITION))
    other = changed(written)
    raw = json.dumps(other).encode()
    compact = json.dumps(written, separators=(",", ":"), ensure_ascii=False).encode()
    doc, sha = store.parsed(raw, counting_parse([]), expect=(written, sha256_hex(written), compact))
    assert doc == other and doc is not written
    assert sha == sha256_hex(other) != sha256_hex(written)


def test_numbers_python_calls_equal_are_not_taken_for_what_was_written() -> None:
    """1.0 == 1 == True in Python, but not in JSON: a platform that rewrote a number keeps its
    own canonical hash (drift is seen the same way in every process)."""
    store = StoredDefinitions()
    written = json.loads(json.dumps(DEFINITION))
    written["info"]["x-ratio"] = 1.0
    written["info"]["x-flag"] = True
    rewritten = json.loads(json.dumps(written))
    rewritten["info"]["x-ratio"] = 1
    rewritten["info"]["x-flag"] = 1
    assert rewritten == written  # what plain equality would have accepted
    compact = json.dumps(written, separators=(",", ":"), ensure_ascii=False).encode()
    doc, sha = store.parsed(
        json.dumps(rewritten).encode(), counting_parse([]), expect=(written, "w", compact)
    )
    assert doc is not written and sha == sha256_hex(rewritten) != sha256_hex(written)


def test_what_was_written_is_known_by_its_values_not_by_how_python_holds_them(monkeypatch) -> None:
    """Strings the pipeline made from literals are interned, the platform's parsed copies are
    not: the quick comparison must not care (no JSON encoded). A tuple where the read-back has a
    list is the same JSON too: the JSON comparison settles it."""
    import sync.adapters.stored_definitions as module

    encoded: list[object] = []
    real = module.compact_bytes
    monkeypatch.setattr(module, "compact_bytes", lambda doc: encoded.append(doc) or real(doc))
    written = json.loads(json.dumps(DEFINITION))
    written["x-ms-made-here"] = "literal"  # interned, as the converter's keys and values are
    compact = json.dumps(written, separators=(",", ":"), ensure_ascii=False).encode()
    raw = json.dumps(written).encode()
    assert (
        StoredDefinitions().parsed(raw, counting_parse([]), expect=(written, "w", compact))[1]
        == "w"
    )
    assert encoded == []
    with_tuple = {**written, "schemes": tuple(written.get("schemes") or ["https"])}
    compact = json.dumps(with_tuple, separators=(",", ":"), ensure_ascii=False).encode()
    raw = json.dumps(with_tuple).encode()
    doc, sha = StoredDefinitions().parsed(
        raw, counting_parse([]), expect=(with_tuple, "t", compact)
    )
    assert (doc, sha) == (with_tuple, "t") and len(encoded) == 1


def counting_marshal(monkeypatch) -> list[object]:
    """The documents ``stored_definitions`` marshals from now on (its ``marshal`` module wrapped)."""
    import marshal

    import sync.adapters.stored_definitions as module

    marshaled: list[object] = []
    real = marshal.dumps
    monkeypatch.setattr(
        module,
        "marshal",
        type("M", (), {"dumps": staticmethod(lambda d, v: marshaled.append(d) or real(d, v))}),
    )
    return marshaled


def test_a_form_prepared_during_the_write_is_used_by_the_read_back(monkeypatch) -> None:
    """``expect_soon`` (called while the PATCH is in flight) leaves one marshal for after it; a
    form made for another object, or for a changed copy, is never taken for the written one."""
    import sync.adapters.stored_definitions as module

    written = json.loads(json.dumps(DEFINITION))
    module.expect_soon(written)
    marshaled = counting_marshal(monkeypatch)
    compact = json.dumps(written, separators=(",", ":"), ensure_ascii=False).encode()
    raw = json.dumps(written).encode()
    doc, sha = StoredDefinitions().parsed(raw, counting_parse([]), expect=(written, "w", compact))
    assert (doc, sha) == (written, "w")
    assert len(marshaled) == 1 and marshaled[0] is not written  # only the downloaded copy

    other = changed(written)  # same shape, never prepared: marshaled on the spot, and it differs
    marshaled.clear()
    doc, sha = StoredDefinitions().parsed(
        raw, counting_parse([]), expect=(other, sha256_hex(other), json.dumps(other).encode())
    )
    assert sha != sha256_hex(other) and len(marshaled) == 2


def test_a_definition_marshal_cannot_write_is_not_prepared() -> None:
    import sync.adapters.stored_definitions as module

    weird = {"swagger": "2.0", "x-obj": object()}  # marshal refuses it (ValueError): no raise
    module.expect_soon(weird)
    assert module._MARSHALED.get(id(weird)) is None


def test_a_fan_outs_shared_definition_is_marshaled_once(monkeypatch) -> None:
    import sync.adapters.stored_definitions as module

    written = json.loads(json.dumps(DEFINITION))
    marshaled = counting_marshal(monkeypatch)
    for _ in range(20):  # every target of the fan-out writes this very object
        module.expect_soon(written)
    module.expect_soon(json.loads(json.dumps(DEFINITION)))  # an equal copy is another object
    assert len(marshaled) == 2
