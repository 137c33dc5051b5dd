"""Connector definitions read from the platform, remembered by the hash of their exact bytes.

The 20 connectors of a fan-out usually serve the same definition, byte for byte (the platform
serializes what it stores the same way), and a warm worker reads back exactly what the next
update will read first. Parsing 512 KB of JSON and hashing its canonical form costs ~6 ms each
time; remembered by the sha256 of the raw bytes (~0.5 ms), the same bytes are parsed and hashed
once. The parsed document is shared: like every document in the pipeline it is never mutated.

The ETag each blob answered with is remembered too, by the blob's URL without its SAS query:
the next read of that blob asks with ``If-None-Match``, and Blob Storage's 304 (the blob was not
written since; every write gives a new ETag) stands for the very bytes remembered, so a target
whose connector nobody touched since our read-back downloads nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
from collections.abc import Callable
from typing import Any

from sync.lru import Lru
from sync.spec.canonical import compact_bytes, sha256_hex

MAX_ENTRIES = 4  # a few parsed definitions (a 512 KB one is a few MB of objects)
MAX_SOURCES = 512  # blob URL -> (ETag, key): small tuples, one per connector a worker serves


class StoredDefinitions:
    """raw bytes -> (parsed document, sha256 of its canonical JSON); safe across threads."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_sources: int = MAX_SOURCES) -> None:
        self._items = Lru(max_entries)
        self._sources = Lru(max_sources)

    def parsed(
        self,
        raw: bytes,
        parse: Callable[[bytes], dict[str, Any]],
        *,
        source: str | None = None,
        etag: str | None = None,
        expect: tuple[dict[str, Any], str, bytes] | None = None,
    ) -> tuple[dict[str, Any], str]:
        """``parse(raw)`` and its canonical sha256, or the remembered pair for the same bytes.
        ``parse`` raising (not JSON, not an object) is never remembered. ``source`` (a blob URL
        without its query) answered ``raw`` with ``etag``: remembered for ``unchanged_since``.
        ``expect``: a document, its sha256 and its compact JSON as the caller knows them (a
        read-back expects what was just written): bytes that parse to a document with the very
        same compact JSON get that pair, with no canonical hashing (~5 ms at 512 KB, against ~3 to
        encode) and no second copy kept. The same compact JSON, not Python equality, which takes
        1, 1.0 and true for one another where the canonical hashes differ."""
        key = hashlib.sha256(raw).hexdigest()
        pair = self._items.get(key)
        if pair is None:
            document = parse(raw)
            if expect is not None and _same_json(document, expect):
                pair = (expect[0], expect[1])
            else:
                pair = (document, sha256_hex(document))
            self._items.put(key, pair)
        if source:
            if etag:
                self._sources.put(source, (etag, key))
            else:  # no ETag this time: an older one must not stand for these bytes
                self._sources.pop(source)
        return pair

    def unchanged_since(self, source: str) -> tuple[str, tuple[dict[str, Any], str]] | None:
        """The ETag ``source`` last answered with and what it served then, while the document is
        still remembered (the condition is only worth sending when a 304 can be answered)."""
        seen = self._sources.get(source)
        if seen is None:
            return None
        pair = self._items.get(seen[1])
        return (seen[0], pair) if pair is not None else None


SHARED = StoredDefinitions()

_MARSHALED = Lru(MAX_ENTRIES)  # document -> its marshal form (Lru.for_object), see expect_soon


def expect_soon(document: dict[str, Any]) -> None:
    """Make the marshal form of a definition being written, while the write is in flight: the
    read-back that follows (``expect``) then marshals only what it downloaded. The write's wait
    for the platform is idle time for this process; after it, ~0.9 ms per 512 KB is not. The
    targets of a fan-out write one document object: it is marshaled once."""
    with contextlib.suppress(ValueError):  # marshal refuses it: _same_json uses the JSON then
        _marshaled(document)


def _marshaled(document: dict[str, Any]) -> bytes:
    return _MARSHALED.for_object(document, lambda doc: marshal.dumps(doc, 2))


def _same_json(document: dict[str, Any], expect: tuple[dict[str, Any], str, bytes]) -> bool:
    """Whether ``document`` has the compact JSON ``expect`` names. First by ``marshal`` (version
    2, which records neither interning nor shared references, so its bytes depend on the values
    alone): the same bytes mean the same types, values and key order, so the same JSON, and two
    documents of 512 KB marshal in ~1.6 ms where encoding one as JSON takes ~4. Any difference
    (a tuple for a list, say) is then settled by the JSON itself."""
    written, _, compact = expect
    try:
        if marshal.dumps(document, 2) == _marshaled(written):
            return True
    except ValueError:  # a value marshal cannot write: the JSON decides
        pass
    try:
        return compact_bytes(document) == compact
    except ValueError:  # NaN/Infinity: not what anyone wrote as JSON
        return False
