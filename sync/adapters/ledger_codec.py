"""How the ledger packs big JSON into Table Storage: zlib, split over binary properties, hashed.

A Table entity caps one binary property at 64 KiB and the whole entity at 1 MiB (on Azurite the
JSON request body, where binary travels as base64, so ~768 KiB of binary). A version row must hold
both the normalized upstream spec and the applied definition, which for a big API are hundreds of
KiB of JSON. zlib at level 1 brings the corpus's definitions above 20 KB down 3.5-12x (median
6.8x; level 6 gets 9.1x for three times the CPU, on the critical path of every update); the rest
is split into <= 60 KiB chunks, and a pair still above ``INLINE_LIMIT`` compressed goes to a blob instead. Each document is stored as its
canonical bytes (``sync.spec.canonical``), so the stored sha256 can be checked on the exact bytes
read back, with no re-serialization in between.

Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import Any

from sync.errors import PermanentError, ServerFault
from sync.lru import Lru
from sync.spec.canonical import canonical_bytes, kept_bytes

CHUNK_BYTES = 60 * 1024  # below the 64 KiB binary-property limit, with headroom
INLINE_LIMIT = 10 * CHUNK_BYTES  # 600 KiB compressed: keeps the entity well under 1 MiB
PAIR_LEVEL = 1  # zlib level of the definitions: 1.5 ms against 4.2 at 6 for 320 KB, 1.4x the bytes
CHUNK_PREFIX = "Def"  # Def00, Def01, ...
MAX_STRING_CHARS = 32_000  # a Table string property holds at most 32K UTF-16 characters


class LedgerCorruptError(ServerFault):
    """Stored bytes do not decompress or do not match their recorded sha256."""


@dataclass(frozen=True)
class PackedPair:
    """The upstream spec and applied definition as one compressed payload plus what verifies it."""

    payload: bytes  # zlib(upstream canonical bytes + applied canonical bytes)
    upstream_len: int  # -1 = absent
    applied_len: int  # -1 = absent, SAME_AS_UPSTREAM = the applied bytes are the upstream bytes
    upstream_sha256: str | None
    applied_sha256: str | None

    @property
    def inline(self) -> bool:
        return len(self.payload) <= INLINE_LIMIT


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


SAME_AS_UPSTREAM = -2  # no connector edits and no overrides: stored once, not twice
_PACKED = Lru(8)  # (upstream sha, applied sha) -> PackedPair, see pack_pair


def pack_pair(
    upstream: dict[str, Any] | None,
    applied: dict[str, Any] | None,
    *,
    shas: tuple[str | None, str | None] | None = None,
) -> PackedPair:
    """Compress both documents together: applied is mostly upstream, so zlib shares the work;
    when they are the same bytes, the payload holds them once.

    ``shas``: the documents' sha256 as the caller already knows them (the pipeline hashes them
    anyway) and vouches for. The packed pair of a fan-out's targets is then encoded and
    compressed once: a pair is remembered only when the hashes computed here equal the claim, and a
    later call with the same claim gets it without encoding anything. The claim is trusted for
    the applied side when it says applied == upstream (only upstream is hashed then): whatever
    is stored always matches the hashes stored with it, and the pipeline's claims are its own
    hashes of these very documents."""
    if shas is not None and shas[0] is not None and upstream is not None:
        known = _PACKED.get((shas[0], shas[1]))
        if known is not None:
            return known
    up = b""
    if upstream is not None:  # the bytes hashed when the spec arrived, if the claim names them
        up = kept_bytes(shas[0] if shas else None, upstream) or canonical_bytes(upstream)
    up_sha = _hex(up) if upstream is not None else None
    claimed_same = shas is not None and shas[0] == shas[1] == up_sha  # upstream's half is checked
    same = upstream is not None and applied is not None and (applied is upstream or claimed_same)
    ap = b"" if same or applied is None else canonical_bytes(applied)
    if same:
        ap_sha, applied_len = up_sha, SAME_AS_UPSTREAM
    else:
        ap_sha = _hex(ap) if applied is not None else None
        applied_len = len(ap) if applied is not None else -1
    pair = PackedPair(
        payload=zlib.compress(up + ap, PAIR_LEVEL),
        upstream_len=len(up) if upstream is not None else -1,
        applied_len=applied_len,
        upstream_sha256=up_sha,
        applied_sha256=ap_sha,
    )
    if shas is not None and up_sha is not None and shas == (up_sha, ap_sha):
        _PACKED.put(shas, pair)
    return pair


def _load(data: bytes, expected_sha: str | None, *, what: str, where: str) -> dict[str, Any]:
    actual = _hex(data)
    if expected_sha is None or actual != expected_sha:
        raise LedgerCorruptError(
            f"stored {what} has sha256 {actual}, the row records {expected_sha}", where=where
        )
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise LedgerCorruptError(f"stored {what} is not JSON: {exc}", where=where) from None
    if not isinstance(doc, dict):
        raise LedgerCorruptError(f"stored {what} is not a JSON object", where=where)
    return doc


def unpack_pair(
    payload: bytes,
    *,
    upstream_len: int,
    applied_len: int,
    upstream_sha256: str | None,
    applied_sha256: str | None,
    where: str,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Reassemble and verify; any mismatch is corruption, never silently "no definition"."""
    try:
        raw = zlib.decompress(payload)
    except zlib.error as exc:
        raise LedgerCorruptError(
            f"stored definitions do not decompress: {exc}", where=where
        ) from None
    same = applied_len == SAME_AS_UPSTREAM
    if same and upstream_len < 0:
        raise LedgerCorruptError("the applied definition refers to a missing upstream", where=where)
    expected = max(upstream_len, 0) + (0 if same else max(applied_len, 0))
    if len(raw) != expected:
        raise LedgerCorruptError(
            f"stored definitions are {len(raw)} bytes, the row records {expected}", where=where
        )
    up_end = max(upstream_len, 0)
    upstream = (
        _load(raw[:up_end], upstream_sha256, what="upstream spec", where=where)
        if upstream_len >= 0
        else None
    )
    applied: dict[str, Any] | None
    if same:  # a second object: callers may keep one and change the other
        applied = _load(raw[:up_end], applied_sha256, what="applied definition", where=where)
    else:
        applied = (
            _load(raw[up_end:], applied_sha256, what="applied definition", where=where)
            if applied_len >= 0
            else None
        )
    return upstream, applied


def chunk_properties(payload: bytes, prefix: str = CHUNK_PREFIX) -> dict[str, bytes]:
    """``{"Def00": ..., "Def01": ...}``, each <= ``CHUNK_BYTES``."""
    return {
        f"{prefix}{i // CHUNK_BYTES:02d}": payload[i : i + CHUNK_BYTES]
        for i in range(0, len(payload), CHUNK_BYTES)
    }


def join_chunks(
    entity: dict[str, Any], count: int, *, where: str, prefix: str = CHUNK_PREFIX
) -> bytes:
    """The ``count`` chunks rejoined; a missing one is corruption. The names are made one at a
    time: a row edited to 2**31 - 1 chunks fails at the first missing one instead of building
    two billion names first."""
    parts = []
    for i in range(count):
        name = f"{prefix}{i:02d}"
        part = entity.get(name)
        if not isinstance(part, bytes | bytearray):
            raise LedgerCorruptError(f"chunk {name} of {count} is missing", where=where)
        parts.append(bytes(part))
    return b"".join(parts)


def zlib_compress(data: bytes) -> bytes:
    return zlib.compress(data, 6)


def zlib_decompress(data: bytes, *, where: str) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error as exc:
        raise LedgerCorruptError(f"stored bytes do not decompress: {exc}", where=where) from None


def encode_json_property(doc: Any) -> tuple[str, str | bytes]:
    """A JSON value as a string property when it fits, else zlib in one binary property.

    Returns ``(suffix, value)``: suffix "" for the string form, "Z" for the compressed form, so a
    reader knows which property to look for (``Summary`` or ``SummaryZ``).
    """
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    encoded = text.encode()
    # the limit is 64 KiB of UTF-16 (Azurite counts UTF-8): code points undercount both for
    # non-ASCII text; UTF-8 bytes bound both, and equal the characters for ASCII
    if len(encoded) <= MAX_STRING_CHARS:
        return "", text
    packed = zlib.compress(encoded, 9)
    if len(packed) > CHUNK_BYTES:
        raise PermanentError(
            f"JSON value is {len(packed)} bytes compressed, above the {CHUNK_BYTES}-byte property limit",
            where="ledger",
        )
    return "Z", packed


def decode_json_property(entity: dict[str, Any], name: str, *, where: str) -> Any:
    """The JSON value ``encode_json_property`` stored: ``<name>Z`` (zlib bytes) if present,
    else ``<name>`` (text), else None. Anything else is a ``LedgerCorruptError`` naming the
    property: a value of another type (a hand edit, another tool), bytes that do not
    decompress, text that is not JSON or nests past the recursion limit. Callers then name the
    row; a TypeError or RecursionError would end the item without a reason."""
    packed = entity.get(name + "Z")
    if packed is not None:
        if not isinstance(packed, bytes | bytearray):
            raise LedgerCorruptError(
                f"property {name}Z is {type(packed).__name__}, not binary", where=where
            )
        try:
            return json.loads(zlib.decompress(bytes(packed)))
        except (zlib.error, ValueError, RecursionError) as exc:
            raise LedgerCorruptError(
                f"property {name}Z is unreadable: {_why(exc)}", where=where
            ) from None
    text = entity.get(name)
    if text is None:
        return None
    if not isinstance(text, str):
        raise LedgerCorruptError(
            f"property {name} is {type(text).__name__}, not JSON text", where=where
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise LedgerCorruptError(f"property {name} is not JSON: {_why(exc)}", where=where) from None


def _why(exc: BaseException) -> str:
    """The decoder's reason, short; a RecursionError's own text says nothing about the input."""
    if isinstance(exc, RecursionError):
        return "nested past the recursion limit"
    return str(exc)[:200]
