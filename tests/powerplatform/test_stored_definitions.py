"""Connector definitions are parsed and hashed once per distinct byte string."""

from __future__ import annotations

import json

import pytest

from sync.adapters.stored_definitions import (
    Spelling,
    StoredDefinitions,
    expect_soon,
    sniff_spelling,
)
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
    module.expect_soon(written, StoredDefinitions())  # a store with no spelling guessed yet
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
    module.expect_soon(weird, StoredDefinitions())
    assert module._MARSHALED.get(id(weird)) is None


def test_a_fan_outs_shared_definition_is_marshaled_once(monkeypatch) -> None:
    import sync.adapters.stored_definitions as module

    written = json.loads(json.dumps(DEFINITION))
    marshaled = counting_marshal(monkeypatch)
    store = StoredDefinitions()
    for _ in range(20):  # every target of the fan-out writes this very object
        module.expect_soon(written, store)
    module.expect_soon(json.loads(json.dumps(DEFINITION)), store)  # an equal copy is another one
    assert len(marshaled) == 2


# --- read-backs compared as bytes --------------------------------------------------------------


def refusing_parse(raw: bytes) -> dict:
    raise AssertionError("parsed bytes that a byte comparison settles")


def compact_of(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def test_a_store_that_keeps_the_bytes_it_was_sent_is_not_parsed() -> None:
    written = json.loads(json.dumps(DEFINITION))
    expect = (written, "w", compact_of(written))
    assert StoredDefinitions().parsed(compact_of(written), refusing_parse, expect=expect) == (
        written,
        "w",
    )


@pytest.mark.parametrize(
    ("raw", "sniffed"),
    [
        (b'{"a": 1, "b": [1, 2]}', Spelling(", ", ": ", True)),
        (b'{"a":1,"b":[1,2]}', Spelling(",", ":", True)),
        ('{"a":"caf\u00e9 ☕"}'.encode(), Spelling(",", ":", False)),
        (rb'{"a\\":1}', Spelling(",", ":", True)),  # the name ends in an escaped backslash
        (rb'{"a\": x":1}', Spelling(",", ":", True)),  # an escaped quote inside the name
        (rb'{"a\\\": x": 1}', Spelling(", ", ": ", True)),  # a backslash, then an escaped quote
        (b'{\n  "a": 1\n}', None),  # indented
        (b'\xef\xbb\xbf{"a":1}', None),  # a byte order mark
        (b' {"a":1}', None),
        (b'{"a" : 1}', None),  # a space before the colon: no json.dumps spelling
        (b'{"unterminated', None),
        (b"[1, 2]", None),
    ],
)
def test_the_spelling_is_read_off_the_bytes(raw: bytes, sniffed: Spelling | None) -> None:
    assert sniff_spelling(raw) == sniffed


def test_a_read_back_spelled_like_the_last_one_is_compared_as_bytes() -> None:
    """The simulator writes definitions out with ``json.dumps`` defaults, as some store might:
    the first read-back is parsed, after it the next definition is prepared in that spelling
    during its write and its read-back is a byte comparison."""
    store, calls = StoredDefinitions(), []
    first = json.loads(json.dumps(DEFINITION))
    store.parsed(
        json.dumps(first).encode(), counting_parse(calls), expect=(first, "1", compact_of(first))
    )
    assert len(calls) == 1
    second = changed(first)
    expect_soon(second, store)
    assert store.spelled(second) == json.dumps(second).encode()
    raw = json.dumps(second).encode()
    assert store.parsed(raw, refusing_parse, expect=(second, "2", compact_of(second))) == (
        second,
        "2",
    )


def test_bytes_in_the_spelling_of_another_document_are_parsed_and_hashed() -> None:
    """A spelling only stands for the document it spells: a store that altered the definition
    serves other bytes, which are parsed and hashed as they are."""
    store = StoredDefinitions()
    first = json.loads(json.dumps(DEFINITION))
    store.parsed(json.dumps(first).encode(), counting_parse([]), expect=(first, "1", b""))
    written = changed(first)
    altered = {**written, "host": "rewritten.example.com"}
    calls: list[bytes] = []
    doc, sha = store.parsed(
        json.dumps(altered).encode(),
        counting_parse(calls),
        expect=(written, sha256_hex(written), compact_of(written)),
    )
    assert len(calls) == 1 and doc == altered and sha == sha256_hex(altered)


def test_a_spelling_that_keeps_missing_is_no_longer_guessed(monkeypatch) -> None:
    """A store that puts a space after commas but none after colons parses to what was written,
    but the guess from its bytes (no spaces) does not reproduce them: after three misses in a
    row no definition is spelled in vain any more."""
    import sync.adapters.stored_definitions as module

    store = StoredDefinitions()
    encoded: list[object] = []
    real = Spelling.encode
    monkeypatch.setattr(
        Spelling, "encode", lambda self, doc: encoded.append(doc) or real(self, doc)
    )
    document = json.loads(json.dumps(DEFINITION))
    for round_ in range(6):
        written = {**document, "x-round": round_}
        module.expect_soon(written, store)
        calls: list[bytes] = []
        got, sha = store.parsed(
            json.dumps(written, separators=(", ", ":")).encode(),
            counting_parse(calls),
            expect=(written, f"r{round_}", compact_of(written)),
        )
        assert (got, sha, len(calls)) == (written, f"r{round_}", 1)
    assert len(encoded) == module.MAX_SPELLING_MISSES  # rounds 1-3 guessed; 4 and 5 did not
    assert store.spelled(document) is None


def test_a_hit_resets_the_count_of_misses() -> None:
    store = StoredDefinitions()
    document = json.loads(json.dumps(DEFINITION))
    for round_, odd in enumerate([False, True, False, False, True, False, False]):
        written = {**document, "x-round": round_}
        store.parsed(
            json.dumps(written, separators=(", ", ":") if odd else None).encode(),
            counting_parse([]),
            expect=(written, f"r{round_}", compact_of(written)),
        )
    assert store.spelled(document) is not None  # two misses at most between hits
