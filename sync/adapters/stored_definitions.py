"""Connector definitions read from the platform, remembered by the hash of their exact bytes.

The 20 connectors of a fan-out usually serve the same definition, byte for byte (the platform
serializes what it stores the same way), and a warm worker reads back exactly what the next
update will read first. Parsing 512 KB of JSON and hashing its canonical form costs ~6 ms each
time; remembered by the sha256 of the raw bytes (~0.5 ms), the same bytes are parsed and hashed
once. The parsed document is shared: like every document in the pipeline it is never mutated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from sync.lru import Lru
from sync.spec.canonical import sha256_hex

MAX_ENTRIES = 4  # a few parsed definitions (a 512 KB one is a few MB of objects)


class StoredDefinitions:
    """raw bytes -> (parsed document, sha256 of its canonical JSON); safe across threads."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._items = Lru(max_entries)

    def parsed(
        self, raw: bytes, parse: Callable[[bytes], dict[str, Any]]
    ) -> tuple[dict[str, Any], str]:
        """``parse(raw)`` and its canonical sha256, or the remembered pair for the same bytes.
        ``parse`` raising (not JSON, not an object) is never remembered."""
        key = hashlib.sha256(raw).hexdigest()
        known = self._items.get(key)
        if known is not None:
            return known
        document = parse(raw)
        pair = (document, sha256_hex(document))
        self._items.put(key, pair)
        return pair


SHARED = StoredDefinitions()
