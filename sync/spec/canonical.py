"""Canonical JSON: one byte form per document, so hashes and "unchanged" checks are exact."""

from __future__ import annotations

import hashlib
import json
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
    encoding 512 KB again costs ~4 ms."""
    data = canonical_bytes(doc)
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


_COMPACT = Lru(4)  # id(document) -> (document, compact JSON), see compact_bytes_kept


def compact_bytes_kept(doc: Any) -> bytes:
    """``compact_bytes`` of a document that is never changed once built (the pipeline's specs
    and merged definitions), remembered by identity for a while: the size check of the local
    validation, the platform's validation and the write all send the same bytes, and 512 KB
    costs ~3 ms to encode. The entry holds the document, so its id cannot be reused meanwhile.
    Raises ``ValueError`` for NaN/Infinity like ``compact_bytes``."""
    known = _COMPACT.get(id(doc))
    if known is not None and known[0] is doc:
        return known[1]
    encoded = compact_bytes(doc)
    _COMPACT.put(id(doc), (doc, encoded))
    return encoded


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
