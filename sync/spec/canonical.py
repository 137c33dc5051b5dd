"""Canonical JSON: one byte form per document, so hashes and "unchanged" checks are exact."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_bytes(doc: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (not ASCII-escaped)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(doc: Any) -> str:
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()


def compact_bytes(doc: Any) -> bytes:
    """The compact UTF-8 JSON a platform receives (the size limits apply to this); also a request
    body, so a large definition is encoded once however many requests carry it."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


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
