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


def compact_size(doc: Any) -> int:
    """Bytes of the compact UTF-8 JSON a platform receives (the size limits apply to this)."""
    return len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())
