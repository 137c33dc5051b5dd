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

A read-back of what was just written need not be parsed at all when its bytes are the written
definition as the store spells JSON (``Spelling``): the platform may keep the very bytes it was
sent, or write the document out again in one fixed way. The spelling is read off the first
read-back that parsed to what was written (``sniff_spelling``), the next definition is spelled
that way while its write is in flight (``expect_soon``), and the read-back then costs one byte
comparison instead of a parse and a comparison of values (~3 ms at 340 KB, on the item's thread).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sync.lru import Lru
from sync.spec.canonical import compact_bytes, sha256_hex

MAX_ENTRIES = 4  # a few parsed definitions (a 512 KB one is a few MB of objects)
MAX_SOURCES = 512  # blob URL -> (ETag, key): small tuples, one per connector a worker serves
MAX_SPELLING_MISSES = 3  # read-backs in a row not spelled as guessed: stop guessing


@dataclass(frozen=True)
class Spelling:
    """How a store writes a JSON document out, as the ``json.dumps`` arguments that reproduce
    its bytes: what the bytes of a definition it keeps will be, before they are downloaded."""

    item_separator: str
    key_separator: str
    ensure_ascii: bool

    def encode(self, document: Any) -> bytes:
        """``document`` spelled this way; ValueError for what is not JSON (NaN, lone surrogates)."""
        return json.dumps(
            document,
            separators=(self.item_separator, self.key_separator),
            ensure_ascii=self.ensure_ascii,
            allow_nan=False,
        ).encode()


def sniff_spelling(raw: bytes) -> Spelling | None:
    """The spelling ``raw`` looks written in, from the separator after its first member name and
    whether it is all ASCII; None where no ``Spelling`` can reproduce it (a byte order mark,
    leading whitespace, indentation). Only a guess: a byte comparison confirms or refutes it."""
    if not raw.startswith(b'{"'):
        return None
    end = _string_end(raw, 1)
    if end is None:
        return None
    after = raw[end + 1 : end + 3]
    if after == b": ":
        item, key = ", ", ": "
    elif after[:1] == b":":
        item, key = ",", ":"
    else:
        return None
    return Spelling(item, key, ensure_ascii=raw.isascii())


def _string_end(raw: bytes, start: int) -> int | None:
    """Index of the quote closing the JSON string whose opening quote is at ``start``."""
    at = start + 1
    while True:
        end = raw.find(b'"', at)
        if end < 0:
            return None
        escapes = 0
        while raw[end - 1 - escapes] == 0x5C:  # a backslash: an odd run escapes the quote
            escapes += 1
        if escapes % 2 == 0:
            return end
        at = end + 1


class StoredDefinitions:
    """raw bytes -> (parsed document, sha256 of its canonical JSON); safe across threads."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_sources: int = MAX_SOURCES) -> None:
        self._items = Lru(max_entries)
        self._sources = Lru(max_sources)
        self._spelling: Spelling | None = None  # guessed from the last read-back that parsed
        self._misses = 0  # read-backs in a row whose bytes the guess did not reproduce

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
        1, 1.0 and true for one another where the canonical hashes differ. Bytes that are the
        written document's compact JSON, or its encoding in the store's ``Spelling``, are not
        parsed at all: parsing them gives a document with that very compact JSON (its keys are
        strings, as those of every document with a canonical hash are: no two keys of the
        written one can become the same key in the JSON)."""
        key = hashlib.sha256(raw).hexdigest()
        pair = self._items.get(key)
        if pair is None:
            spelling = self._spelling
            if expect is not None and self._spelled_as_written(raw, expect, spelling):
                pair = (expect[0], expect[1])
                self._misses = 0
            else:
                document = parse(raw)
                if expect is not None and _same_json(document, expect):
                    pair = (expect[0], expect[1])
                    self._learn(raw, tried=spelling)
                else:
                    pair = (document, sha256_hex(document))
            self._items.put(key, pair)
        if source:
            if etag:
                self._sources.put(source, (etag, key))
            else:  # no ETag this time: an older one must not stand for these bytes
                self._sources.pop(source)
        return pair

    def spelled(self, document: dict[str, Any]) -> bytes | None:
        """``document`` in the spelling guessed for this store (made once per document object,
        see ``expect_soon``), or None: no guess yet, or not JSON."""
        spelling = self._spelling
        if spelling is None:
            return None
        try:
            return _spelled(document, spelling)
        except (TypeError, ValueError):  # not JSON: the read-back's own comparison decides
            return None

    def _spelled_as_written(
        self, raw: bytes, expect: tuple[dict[str, Any], str, bytes], spelling: Spelling | None
    ) -> bool:
        written, _, compact = expect
        if raw == compact:  # the store kept the bytes it was sent
            return True
        if spelling is None:
            return False
        try:
            return raw == _spelled(written, spelling)
        except (TypeError, ValueError):  # not JSON: the parse settles it
            return False

    def _learn(self, raw: bytes, *, tried: Spelling | None) -> None:
        """After a read-back that parsed to what was written: guess the store's spelling from its
        bytes for the next one. A guess that was tried and missed counts; after
        ``MAX_SPELLING_MISSES`` in a row nothing is guessed any more (nor encoded in vain)."""
        if tried is not None:
            self._misses += 1
        if self._misses >= MAX_SPELLING_MISSES:
            self._spelling = None
            return
        self._spelling = sniff_spelling(raw)

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
_SPELLED = Lru(MAX_ENTRIES)  # document -> (spelling, its bytes in that spelling)


def expect_soon(document: dict[str, Any], store: StoredDefinitions | None = None) -> None:
    """Prepare the read-back's comparison while the write of ``document`` is in flight: its
    bytes in the store's guessed spelling (the read-back then compares bytes), else its marshal
    form (the read-back then marshals only what it downloaded). The write's wait for the platform
    is idle time for this process; after it, ~3 ms per 340 KB is not. The targets of a fan-out
    write one document object: it is prepared once."""
    if (store or SHARED).spelled(document) is not None:
        return
    with contextlib.suppress(ValueError):  # marshal refuses it: _same_json uses the JSON then
        _marshaled(document)


def _spelled(document: dict[str, Any], spelling: Spelling) -> bytes:
    """``spelling.encode(document)``, kept per document object (and its spelling) for a while."""
    known = _SPELLED.get(id(document))
    if known is not None and known[0] is document and known[1] == spelling:
        return known[2]
    data = spelling.encode(document)
    _SPELLED.put(id(document), (document, spelling, data))
    return data


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
