"""Remember, across processes, that an exact sync map passed an exact schema.

Why: checking the map with jsonschema (Draft 2020-12) costs ~40 ms of import plus ~10 ms of
validation in every new process, and the map rarely changes between CLI calls or cold starts.
After a map passes, a small marker named after a key is written to the private per-user cache
(``sync.private_cache``); a later process that computes the same key skips jsonschema.

The key covers everything the verdict depends on: the SHA-256 of the parsed map's canonical JSON
(so any edit, even one that keeps the file's size and time, is validated again), the SHA-256 of
the schema file and the jsonschema version. Only passes are remembered, so an invalid map always
reports its errors from jsonschema itself. Any problem with the cache means "not known", never
"valid".
"""

from __future__ import annotations

import hashlib
import logging
from functools import cache
from pathlib import Path
from typing import Any

from sync import private_cache
from sync.spec.canonical import canonical_bytes

log = logging.getLogger(__name__)

_PREFIX = "syncmap_"
KEEP = 256  # markers kept (newest first); tests and edits each add one


@cache
def _schema_identity(schema_path: Path) -> str:
    """The schema file's digest and the validator's version (read once per process)."""
    from importlib.metadata import version

    digest = hashlib.sha256(schema_path.read_bytes()).hexdigest()
    return f"schema sha256 {digest}\njsonschema {version('jsonschema')}"


def marker_key(raw: dict[str, Any], schema_path: Path) -> str | None:
    """The key for "``raw`` passed the schema at ``schema_path``"; None when it cannot be formed
    (a value JSON cannot encode, an unreadable schema, jsonschema not installed)."""
    try:
        document = hashlib.sha256(canonical_bytes(raw)).hexdigest()
        identity = _schema_identity(schema_path)
    except (TypeError, ValueError, OSError, ImportError) as exc:
        # PackageNotFoundError is an ImportError
        log.debug("no schema marker key (%s); validating", type(exc).__name__)
        return None
    return hashlib.sha256(f"map sha256 {document}\n{identity}".encode()).hexdigest()


def passed_before(key: str) -> bool:
    """Whether a marker for ``key`` is in the private cache (and says exactly that key)."""
    try:
        return private_cache.read_bytes(_PREFIX + key) == key.encode()
    except (OSError, ValueError) as exc:
        log.debug("schema marker cache unavailable (%s); validating", exc)
        return False


def remember_pass(key: str) -> None:
    """Record that the map behind ``key`` passed; failures only cost the next process time."""
    try:
        private_cache.write_bytes(_PREFIX + key, key.encode())
        private_cache.prune(_PREFIX, KEEP)
    except (OSError, ValueError) as exc:
        log.debug("schema marker not written (%s)", exc)
