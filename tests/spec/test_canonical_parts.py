"""The byte forms built in parts (sync.spec.canonical) are exactly the forms built whole.

Why it matters: the canonical sha256 is the identity of a definition in the ledger and in drift
checks, and the compact JSON is what the platform receives. A form assembled from entries must
never differ from the one json.dumps makes of the whole document, whatever the entries held in
documents hashed before.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.spec import canonical
from sync.spec.canonical import (
    canonical_bytes,
    compact_bytes,
    compact_bytes_kept,
    entry_digests,
    kept_bytes,
    sha256_hex,
    sha256_hex_kept,
)
from tests.spec import corpus

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
entries = st.dictionaries(st.text(max_size=6), st.one_of(values, st.just({})), max_size=5)
documents = st.fixed_dictionaries(
    {},
    optional={
        "swagger": st.just("2.0"),
        "info": st.dictionaries(st.text(max_size=5), values, max_size=3),
        "paths": st.one_of(entries, values),
        "definitions": st.one_of(entries, values),
        "x-é": values,
    },
)


def same_forms(doc: Any) -> None:
    assert compact_bytes_kept(doc) == compact_bytes(doc)
    sha = sha256_hex_kept(doc)
    assert sha == sha256_hex(doc)
    assert kept_bytes(sha, doc) == canonical_bytes(doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=documents, second=documents, shared=st.booleans())
def test_forms_in_parts_equal_the_whole_forms(first: Any, second: Any, shared: bool) -> None:
    """Also after other documents left their entries behind: ``second`` may share entries
    with ``first`` (the usual next version), under the same or other names."""
    same_forms(first)
    if shared and isinstance(first.get("paths"), dict):
        second = {**second, "paths": {**first["paths"], "/extra": {"get": {}}}}
        second["definitions"] = dict(reversed(list(first["paths"].items())))
    same_forms(second)
    same_forms(copy.deepcopy(first))


def test_numbers_equal_in_python_but_not_in_json_keep_their_own_bytes() -> None:
    """1, 1.0 and true compare equal in Python; their entries must not share canonical bytes."""
    spelled = [1, 1.0, True, 0, -0.0, False, 10**20, 1e20]
    for value in spelled + list(reversed(spelled)):
        doc = {"paths": {"/a": {"x-n": value}}, "definitions": {"D": {"default": [value]}}}
        same_forms(doc)


def test_entry_digests_are_the_validators_own_hashes() -> None:
    doc = {"paths": {"/a": {"get": {"responses": {}}}}, "definitions": {"D": {"type": "string"}}}
    compact_bytes_kept(doc)
    digests = entry_digests(doc)
    assert digests is not None
    for (member, name), digest in digests.items():
        own = json.dumps(doc[member][name], separators=(",", ":"), ensure_ascii=False)
        assert digest == hashlib.sha256(own.encode()).digest()
    assert entry_digests(copy.deepcopy(doc)) is None  # by identity: a copy was never encoded


def test_nan_is_hashed_whole_and_refused_as_compact_json() -> None:
    doc = {"paths": {"/a": {"x": math.nan}}}  # YAML .nan: validation names it, hashing must not
    assert sha256_hex_kept(doc) == sha256_hex(doc)
    assert entry_digests(doc) is None
    with pytest.raises(ValueError, match="not JSON compliant"):
        compact_bytes_kept(doc)


def test_keys_that_are_not_strings_are_encoded_whole() -> None:
    """json.dumps turns an int key into "1"; the parts do not try to spell that themselves."""
    entry_named_by_int = {"paths": {2: {"get": {}}, 1: {}}, "definitions": {"D": {}}}
    same_forms(entry_named_by_int)
    digests = entry_digests(entry_named_by_int)
    assert digests is not None and set(digests) == {("definitions", "D")}  # paths went whole
    for doc in ({1: "one", "paths": {}}, [1, 2], "text"):
        assert canonical._encode_in_parts(doc) is None
        assert compact_bytes_kept(doc) == compact_bytes(doc)
    with pytest.raises(TypeError):  # mixed keys cannot be sorted: both ways refuse alike
        sha256_hex({1: "one", "paths": {}})
    with pytest.raises(TypeError):
        sha256_hex_kept({1: "one", "paths": {}})


@pytest.mark.parametrize("case", corpus.connector_cases())
def test_corpus_definitions_in_parts(case: str) -> None:
    before, after = corpus.connector(case, "before"), corpus.connector(case, "after")
    for doc in (before, after, before):
        same_forms(doc)


def test_two_versions_in_turn_encode_their_entries_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """v1, v2, v1', v2', ...: each new document finds its entries among the last two hashed."""
    monkeypatch.setattr(canonical, "_CANONICAL_PARTS", canonical.Lru(2))
    encoded: list[Any] = []
    real = canonical._ENCODE_SORTED
    monkeypatch.setattr(canonical, "_ENCODE_SORTED", lambda v: encoded.append(v) or real(v))
    one = {"paths": {f"/a{i}": {"get": {"x": i}} for i in range(5)}, "definitions": {}}
    two = {"paths": {f"/b{i}": {"get": {"x": -i - 1}} for i in range(5)}, "definitions": {}}
    for build in range(6):
        doc = copy.deepcopy(two if build % 2 else one)
        doc["info"] = {"x-build": build}
        encoded.clear()
        same_forms(doc)
        entries = [v for v in encoded if isinstance(v, dict) and "get" in v]
        assert len(entries) == (5 if build < 2 else 0), build
