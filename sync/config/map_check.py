"""A quick yes to "does this sync map pass its schema", without importing jsonschema.

Why: jsonschema (Draft 2020-12) costs ~40 ms of import plus ~10 ms of validation in every new
process, and the private cache's marker (``schema_marker``) only helps a machine that saw the map
before; a CI agent or a new Function App instance never has. The map's schema uses only keywords
whose meaning Draft 7 shares ($ref into $defs, type, properties, required, pattern, enum, oneOf,
items as one schema, propertyNames, lengths and counts), so fastjsonschema's Draft 7 code for it,
generated ahead and shipped (``map_validator.py``, written by scripts/generate_validator.py), says
yes in well under a millisecond.

Only a yes is taken from it. Anything else (a refusal, a shipped module generated from another
schema or fastjsonschema, any error in the check itself) falls back to jsonschema, which stays the
one judge of an invalid map and the one that words its errors. tests/test_map_quick_check.py
holds the two to the same verdict on valid maps and on thousands of damaged ones.
"""

from __future__ import annotations

import hashlib
import logging
import re
from functools import cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).with_name("sync-map.schema.json")
SHIPPED_MODULE = "sync.config.map_validator"
DRAFT7 = "http://json-schema.org/draft-07/schema#"
# How the code is generated, part of its key: defaults are never written into the caller's map
# (fastjsonschema's generated code assigns a property's ``default`` where it is missing).
_OPTIONS: dict[str, Any] = {"use_default": False}
_GENERATION = "draft7, use_default=False, validate alias"


def _draft7_schema() -> dict[str, Any]:
    import json

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    schema["$schema"] = DRAFT7  # the keywords it uses mean the same there (see the docstring)
    return schema


def generated_source() -> str:
    """The module fastjsonschema writes for the schema, with ``validate`` naming its root check."""
    import fastjsonschema

    source = fastjsonschema.compile_to_code(_draft7_schema(), **_OPTIONS)
    root = re.search(r"^def (\w+)\(", source, re.MULTILINE)
    if root is None:
        raise RuntimeError("fastjsonschema generated no function")
    return f"{source}\nvalidate = {root.group(1)}\n"


def source_key() -> str:
    """What ``generated_source`` depends on: the schema file, fastjsonschema's version and how
    the code is generated."""
    import fastjsonschema

    digest = hashlib.sha256(
        SCHEMA_PATH.read_bytes() + f"\n{fastjsonschema.VERSION}\n{_GENERATION}".encode()
    )
    return digest.hexdigest()[:16]


@cache
def _shipped_check() -> Any:
    """The shipped module's ``validate`` when it was generated from this schema, this
    fastjsonschema and this way, and is whole (``sync.shipped_code``); None otherwise."""
    from sync.shipped_code import shipped_code

    code = shipped_code(SHIPPED_MODULE, source_key())
    if code is None:
        return None
    namespace: dict[str, Any] = {"__name__": "_connector_sync_map_check"}
    exec(code, namespace)  # noqa: S102 - our own generated module, checked whole above
    check = namespace.get("validate")
    return check if callable(check) else None


def passes(raw: Any) -> bool:
    """True only when the shipped check accepts ``raw``; False means "ask jsonschema".

    ``raw`` is a map as the loader makes it: dicts, lists and JSON scalars (fastjsonschema takes
    a tuple for an array where jsonschema does not; no loader makes one)."""
    try:
        check = _shipped_check()
        if check is None:
            return False
        check(raw)
    except Exception:  # a refusal, or anything else: jsonschema decides
        return False
    return True
