"""Canonical JSON: one byte form per document, so hashes and "unchanged" checks are exact."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from sync.lru import Lru


def canonical_bytes(doc: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (not ASCII-escaped)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(doc: Any) -> str:
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()


_KEPT = Lru(4)  # sha256 hex -> (the document hashed, its canonical bytes), see sha256_hex_kept


def sha256_hex_kept(doc: Any) -> str:
    """``sha256_hex`` that also keeps the canonical bytes for a while: a spec hashed when it
    arrives is stored by the ledger moments later in exactly this form (``kept_bytes``), and
    encoding 512 KB again costs ~4 ms.

    A never-changed document (the pipeline's specs) is encoded in parts (``_encode_in_parts``):
    its compact JSON is kept too, and the canonical bytes are assembled from the canonical form
    of each path item and definition, which a warm worker has mostly made for earlier versions.
    Preconditions: the document does not change after this call, and its keys are strings, as
    every parsed document's are (compact JSON spells ``{1: x}`` as ``{"1": x}`` but the sort
    orders them otherwise, so entries with other keys would not equal their whole encoding)."""
    forms = _forms(doc)
    data = _canonical_from_parts(doc, forms) if forms is not None else canonical_bytes(doc)
    digest = hashlib.sha256(data).hexdigest()
    _KEPT.put(digest, (doc, data))
    return digest


def kept_bytes(sha: str | None, doc: Any) -> bytes | None:
    """The canonical bytes ``sha256_hex_kept`` kept for ``sha``, only if they were made from this
    very object (documents are never changed once parsed): a claim naming other bytes, or the
    same content in another object, gets None and is encoded as usual."""
    kept = None if sha is None else _KEPT.get(sha)
    return kept[1] if kept is not None and kept[0] is doc else None


def compact_bytes(doc: Any) -> bytes:
    """The compact UTF-8 JSON a platform receives (the size limits apply to this); also a request
    body, so a large definition is encoded once however many requests carry it."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


PARTED = ("paths", "definitions")  # the members a new version of an API changes entry by entry
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_ENCODE_SORTED = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode


@dataclass(frozen=True)
class _Forms:
    """A document's compact JSON, made entry by entry, with each entry's sha256 on the way."""

    doc: Any  # held, so the id it is kept by cannot be reused meanwhile
    compact: bytes
    digests: dict[tuple[str, str], bytes]  # (member, name) -> sha256 of the entry's compact JSON


_FORMS = Lru(4)  # id(document) -> _Forms, see compact_bytes_kept
_CANONICAL_PARTS = Lru(2)  # documents recently hashed: {entry digest: the entry's canonical bytes}
_HASHED = itertools.count()  # keys of _CANONICAL_PARTS


def _parted(key: str, value: Any) -> bool:
    """Whether a member is encoded entry by entry; the compact and the canonical assembly must
    agree on it (the canonical one looks up the entries' hashes the compact one made)."""
    return key in PARTED and isinstance(value, dict) and all(isinstance(n, str) for n in value)


def _encode_in_parts(doc: Any) -> _Forms | None:
    """``compact_bytes(doc)`` built from the compact JSON of each member, and of each entry of
    ``paths`` and ``definitions``: the same bytes (one encoder, keys encoded as it encodes them,
    members in order) for about the same CPU, and the entries' hashes come with them. None for
    what the parts cannot spell exactly (not an object, or a key that is not a string)."""
    if not isinstance(doc, dict) or not all(isinstance(key, str) for key in doc):
        return None
    members: list[bytes] = []
    digests: dict[tuple[str, str], bytes] = {}
    for key, value in doc.items():
        if _parted(key, value):
            entries: list[bytes] = []
            for name, entry in value.items():
                encoded = _ENCODE(entry).encode()
                digests[(key, name)] = hashlib.sha256(encoded).digest()
                entries.append(_ENCODE(name).encode() + b":" + encoded)
            body = b"{" + b",".join(entries) + b"}"
        else:
            body = _ENCODE(value).encode()
        members.append(_ENCODE(key).encode() + b":" + body)
    return _Forms(doc, b"{" + b",".join(members) + b"}", digests)


def _forms(doc: Any) -> _Forms | None:
    """The parts of a never-changed document, kept by identity; None when it has none (see
    ``_encode_in_parts``) or holds NaN/Infinity (which ``compact_bytes`` refuses)."""
    known = _FORMS.get(id(doc))
    if known is not None and known.doc is doc:
        return known
    try:
        forms = _encode_in_parts(doc)
    except ValueError:
        return None
    if forms is not None:
        _FORMS.put(id(doc), forms)
    return forms


def _canonical_from_parts(doc: dict[str, Any], forms: _Forms) -> bytes:
    """``canonical_bytes(doc)``, each entry of ``paths``/``definitions`` taken from the canonical
    bytes made for the same content (the same compact JSON, so the same value) in the documents
    hashed lately, else encoded. Equal content, equal bytes: a key order the sort undoes, a
    number spelled as before."""
    earlier = _CANONICAL_PARTS.values()  # looking does not refresh: the oldest still goes first
    made: dict[bytes, bytes] = {}
    members: list[bytes] = []
    for key in sorted(doc):
        value = doc[key]
        if _parted(key, value):
            entries: list[bytes] = []
            for name in sorted(value):
                digest = forms.digests[(key, name)]
                encoded = made.get(digest)
                for known in earlier:
                    if encoded is not None:
                        break
                    encoded = known.get(digest)
                if encoded is None:
                    encoded = _ENCODE_SORTED(value[name]).encode()
                made[digest] = encoded
                entries.append(_ENCODE(name).encode() + b":" + encoded)
            body = b"{" + b",".join(entries) + b"}"
        else:
            body = _ENCODE_SORTED(value).encode()
        members.append(_ENCODE(key).encode() + b":" + body)
    _CANONICAL_PARTS.put(next(_HASHED), made)
    return b"{" + b",".join(members) + b"}"


def compact_bytes_kept(doc: Any) -> bytes:
    """``compact_bytes`` of a document that is never changed once built (the pipeline's specs
    and merged definitions), remembered by identity for a while: the size check of the local
    validation, the platform's validation and the write all send the same bytes, and 512 KB
    costs ~3 ms to encode. The entry holds the document, so its id cannot be reused meanwhile.
    Raises ``ValueError`` for NaN/Infinity like ``compact_bytes``."""
    forms = _forms(doc)
    return forms.compact if forms is not None else compact_bytes(doc)


def encoded_in_parts(doc: Any) -> tuple[bytes, dict[tuple[str, str], bytes]] | None:
    """``compact_bytes(doc)`` and the sha256 of each ``paths``/``definitions`` entry, made in one
    pass and kept nowhere (the document may still change): for a caller that needs both once.
    None where the parts cannot spell it; ``ValueError`` for NaN/Infinity."""
    forms = _encode_in_parts(doc)
    return None if forms is None else (forms.compact, forms.digests)


def entry_digests(doc: Any) -> dict[tuple[str, str], bytes] | None:
    """The sha256 of each ``paths``/``definitions`` entry's compact JSON, when this very document
    was encoded in parts (``compact_bytes_kept``): the validator keys what it verified by them."""
    known = _FORMS.get(id(doc))
    return known.digests if known is not None and known.doc is doc else None


def compact_size(doc: Any) -> int:
    """Bytes of the compact UTF-8 JSON a platform receives. Unlike ``compact_bytes`` it measures
    a non-finite number (YAML ``.inf``) instead of raising: validation must report, not crash."""
    return len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())


def with_member(doc: dict[str, Any], name: str, encoded: bytes) -> bytes:
    """``doc`` plus the member ``name`` whose value is already ``encoded`` (compact JSON): the
    bytes ``compact_bytes({**doc, name: value})`` would give, without encoding the value again."""
    rest = compact_bytes({k: v for k, v in doc.items() if k != name})
    member = compact_bytes(name) + b":" + encoded
    return b"{" + member + b"}" if rest == b"{}" else rest[:-1] + b"," + member + b"}"


def same_json(a: Any, b: Any) -> bool:
    """JSON equality: Python's ``==`` plus the types it ignores (``1 == 1.0 == True``).

    ``==`` runs first, at C speed, and says no to nearly every pair on the merge's way down; only
    where it says yes are the types looked at (``_same_types``). Identity first: a side passed
    twice (``merge3(doc, doc, new)``) costs nothing. The merge and the diff both compare by it."""
    return a is b or (a == b and _same_types(a, b))


def _same_types(a: Any, b: Any) -> bool:
    """Whether two values that are ``==`` also agree on every JSON type (precondition: ``a == b``).

    Only a number can equal a value of another type (``1``, ``1.0``, ``true``), so only numbers
    are compared; a string that is ``==`` is a string on both sides, so strings (most of a
    definition) are skipped without a lookup. Objects are paired by key, not by position: a key
    order the other side does not share (a merge base stored as canonical JSON has its keys
    sorted) changes nothing. A plain loop over the values, ~1 ms for two 300 KB definitions (3-4
    times the ``==``): serializing both sides to compare them (``marshal``) cost more and needs
    one key order, and no cheaper C-speed comparison that sees types exists."""
    if type(a) is not type(b):
        return False
    if not isinstance(a, (dict, list)):
        return True  # equal numbers of one type, strings, null
    stack: list[tuple[Any, Any]] = [(a, b)]
    pop = stack.pop
    push = stack.append
    while stack:
        x, y = pop()
        if type(x) is dict or (type(x) is not list and isinstance(x, dict)):
            for key, v in x.items():
                kind = type(v)
                if kind is str:
                    continue
                w = y[key]  # present: x == y
                if kind is not type(w):
                    return False
                if kind is dict or kind is list or isinstance(v, (dict, list)):
                    push((v, w))
        else:
            for v, w in zip(x, y, strict=True):  # equal lengths: x == y
                kind = type(v)
                if kind is str:
                    continue
                if kind is not type(w):
                    return False
                if kind is dict or kind is list or isinstance(v, (dict, list)):
                    push((v, w))
    return True
