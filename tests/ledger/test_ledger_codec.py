"""The pure packing rules: round trip, chunk sizes, and corruption never passing silently."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import pytest

from sync.adapters import ledger_codec as codec
from sync.errors import PermanentError
from sync.spec.canonical import sha256_hex
from tests.ledger.docs import noisy_spec, small_spec


def _unpack(pair: codec.PackedPair, payload: bytes | None = None, **overrides):
    args = {
        "upstream_len": pair.upstream_len,
        "applied_len": pair.applied_len,
        "upstream_sha256": pair.upstream_sha256,
        "applied_sha256": pair.applied_sha256,
        "where": "test",
        **overrides,
    }
    return codec.unpack_pair(pair.payload if payload is None else payload, **args)


def test_pair_round_trips_and_hashes_match_canonical():
    up, ap = small_spec(), small_spec(title="Invoicing (edited)")
    pair = codec.pack_pair(up, ap)
    assert pair.upstream_sha256 == sha256_hex(up)
    assert pair.applied_sha256 == sha256_hex(ap)
    assert _unpack(pair) == (up, ap)


@pytest.mark.parametrize(("up", "ap"), [(None, small_spec()), (small_spec(), None), (None, None)])
def test_absent_documents_stay_absent(up, ap):
    pair = codec.pack_pair(up, ap)
    assert _unpack(pair) == (up, ap)


def test_flipped_byte_is_detected():
    pair = codec.pack_pair(small_spec(), small_spec("B"))
    raw = bytearray(zlib.decompress(pair.payload))
    raw[20] ^= 0x01
    with pytest.raises(codec.LedgerCorruptError, match="sha256"):
        _unpack(pair, zlib.compress(bytes(raw)))


def test_garbage_payload_is_detected():
    pair = codec.pack_pair(small_spec(), None)
    with pytest.raises(codec.LedgerCorruptError, match="decompress"):
        _unpack(pair, b"not zlib at all")


def test_length_mismatch_is_detected():
    pair = codec.pack_pair(small_spec(), small_spec("B"))
    with pytest.raises(codec.LedgerCorruptError, match="bytes"):
        _unpack(pair, upstream_len=pair.upstream_len + 1)


def test_missing_hash_is_corruption_not_a_pass():
    pair = codec.pack_pair(small_spec(), None)
    with pytest.raises(codec.LedgerCorruptError):
        _unpack(pair, upstream_sha256=None)


def test_chunks_respect_the_property_limit_and_rejoin():
    payload = codec.pack_pair(noisy_spec(200_000, 1), None).payload
    chunks = codec.chunk_properties(payload)
    assert len(chunks) == -(-len(payload) // codec.CHUNK_BYTES) > 1
    assert all(len(c) <= codec.CHUNK_BYTES < 64 * 1024 for c in chunks.values())
    assert codec.join_chunks(chunks, len(chunks), where="t") == payload
    missing = dict(chunks)
    missing.pop("Def01")
    with pytest.raises(codec.LedgerCorruptError, match="Def01"):
        codec.join_chunks(missing, len(chunks), where="t")


def test_json_property_switches_to_compressed_form_when_too_long():
    suffix, value = codec.encode_json_property({"a": 1})
    assert (suffix, value) == ("", '{"a":1}')
    big = {"ops": ["x" * 40 for _ in range(2000)]}
    suffix, value = codec.encode_json_property(big)
    assert suffix == "Z"
    assert isinstance(value, bytes)
    assert codec.decode_json_property({"SummaryZ": value}, "Summary", where="t") == big


def test_json_property_too_big_even_compressed_is_refused():
    with pytest.raises(PermanentError, match="property limit"):
        codec.encode_json_property(noisy_spec(120_000, 3))


def test_unreadable_json_property_is_corruption():
    with pytest.raises(codec.LedgerCorruptError, match="SummaryZ"):
        codec.decode_json_property({"SummaryZ": b"\x00\x01"}, "Summary", where="t")
    with pytest.raises(codec.LedgerCorruptError, match="Summary"):
        codec.decode_json_property({"Summary": "{nope"}, "Summary", where="t")


UNREADABLE_PROPERTY = {
    "text-a-number": ({"Summary": 5}, "property Summary is int, not JSON text"),
    "text-a-bool": ({"Summary": True}, "property Summary is bool, not JSON text"),
    "text-a-time": ({"Summary": datetime(2026, 1, 1, tzinfo=UTC)}, "property Summary is datetime"),
    "text-as-binary": ({"Summary": b'{"a": 1}'}, "property Summary is bytes, not JSON text"),
    "packed-as-text": ({"SummaryZ": "eJyrrgUAAXUA+Q=="}, "property SummaryZ is str, not binary"),
    "text-nested-too-deep": (
        {"Summary": "[" * 16_000 + "]" * 16_000},
        "property Summary is not JSON: nested past the recursion limit",
    ),
    "packed-nested-too-deep": (
        {"SummaryZ": zlib.compress(b"[" * 100_000 + b"]" * 100_000)},
        "property SummaryZ is unreadable: nested past the recursion limit",
    ),
}


@pytest.mark.parametrize(
    ("entity", "message"), UNREADABLE_PROPERTY.values(), ids=UNREADABLE_PROPERTY.keys()
)
def test_a_json_property_of_another_type_or_nested_too_deep_is_corruption(entity, message):
    """json.loads raised TypeError on a value that is not text, and RecursionError on nesting
    past the limit (a Summary holds 32,000 characters, a SummaryZ far more once inflated); a
    SummaryZ that is not binary was skipped, reading the value as absent."""
    with pytest.raises(codec.LedgerCorruptError, match=message):
        codec.decode_json_property(entity, "Summary", where="t")


def test_applied_equal_to_upstream_is_stored_once_and_read_as_two_objects():
    up = noisy_spec(100_000, 3)
    sha = sha256_hex(up)
    pair = codec.pack_pair(up, dict(up), shas=(sha, sha))
    alone = codec.pack_pair(up, None)
    assert pair.applied_len == codec.SAME_AS_UPSTREAM
    assert len(pair.payload) == len(alone.payload)
    assert pair.applied_sha256 == pair.upstream_sha256 == sha
    got_up, got_ap = _unpack(pair)
    assert got_up == got_ap == up
    assert got_up is not got_ap  # changing one must not change the other


def test_the_same_object_is_stored_once_without_claims():
    up = small_spec()
    pair = codec.pack_pair(up, up)
    assert pair.applied_len == codec.SAME_AS_UPSTREAM
    assert _unpack(pair) == (up, up)


def test_a_wrong_claim_is_not_trusted():
    up, ap = small_spec(), small_spec(title="Invoicing (edited)")
    wrong = sha256_hex(ap)
    pair = codec.pack_pair(up, ap, shas=(wrong, wrong))  # claims both are ``ap``
    assert pair.upstream_sha256 == sha256_hex(up)
    assert pair.applied_sha256 == sha256_hex(ap)
    assert _unpack(pair) == (up, ap)
    again = codec.pack_pair(up, ap, shas=(wrong, wrong))
    assert again is not pair  # never remembered under a claim that did not hold


def test_a_fan_out_packs_the_same_pair_once(monkeypatch):
    up, ap = noisy_spec(50_000, 5), small_spec(title="edited")
    shas = (sha256_hex(up), sha256_hex(ap))
    first = codec.pack_pair(up, ap, shas=shas)
    encoded: list[object] = []
    monkeypatch.setattr(codec, "canonical_bytes", lambda doc: encoded.append(doc) or b"")
    assert codec.pack_pair(up, ap, shas=shas) is first
    assert encoded == []


def test_same_as_upstream_without_an_upstream_is_corruption():
    pair = codec.pack_pair(small_spec(), None)
    with pytest.raises(codec.LedgerCorruptError, match="missing upstream"):
        _unpack(pair, upstream_len=-1, applied_len=codec.SAME_AS_UPSTREAM)


def test_the_bytes_hashed_on_arrival_are_the_ones_stored(monkeypatch):
    from sync.spec.canonical import sha256_hex_kept

    up, ap = noisy_spec(30_000, 11), small_spec(title="kept bytes")
    shas = (sha256_hex_kept(up), sha256_hex(ap))
    encoded: list[object] = []
    real = codec.canonical_bytes
    monkeypatch.setattr(codec, "canonical_bytes", lambda doc: encoded.append(doc) or real(doc))
    pair = codec.pack_pair(up, ap, shas=shas)
    assert encoded == [ap]  # upstream's bytes were the ones kept when it was hashed
    assert _unpack(pair) == (up, ap)


def test_kept_bytes_are_only_used_for_the_object_they_were_made_from(monkeypatch):
    from sync.spec.canonical import sha256_hex_kept

    up = noisy_spec(30_000, 12)
    twin = codec.json.loads(codec.json.dumps(up))  # same content, another object
    sha = sha256_hex_kept(up)
    encoded: list[object] = []
    real = codec.canonical_bytes
    monkeypatch.setattr(codec, "canonical_bytes", lambda doc: encoded.append(doc) or real(doc))
    pair = codec.pack_pair(twin, None, shas=(sha, None))
    assert encoded == [twin] and pair.upstream_sha256 == sha
