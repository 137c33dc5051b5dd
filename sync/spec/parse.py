"""Turn downloaded bytes into a JSON-shaped document, refusing what a hostile server could send.

Rules (shared by specs, overlays and the sync map):
- UTF-8 only, a leading BOM tolerated; invalid UTF-8 is an error naming the byte offset.
- JSON first when the text looks like JSON, YAML otherwise, with a safe loader that has no YAML 1.1
  timestamp resolver (dates stay strings, as OpenAPI expects) and YAML 1.2 booleans only
  (``on``/``yes``/``no`` stay strings), turns scalar keys into strings
  (``200:`` -> ``"200"``), rejects duplicate keys and refuses alias graphs that would expand past a
  node budget (YAML bombs).
- Nesting deeper than ``MAX_DEPTH`` is refused rather than left to blow the stack later.
- An integer Python will not convert (more than ``sys.get_int_max_str_digits()``, 4,300 digits)
  is refused rather than left to escape as a bare ``ValueError``.
- An unpaired surrogate escape (``\\ud800``) is refused: it has no UTF-8 form, so the document
  could not be hashed, sent or stored.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sync.errors import SpecError

MAX_DEPTH = 200
MAX_EXPANDED_NODES = 2_000_000
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # \ud800-\udfff, paired or not


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise SpecError(f"duplicate key {key!r}")
        result[key] = value
    return result


def nesting_depth(doc: Any) -> int:
    """Nesting depth, a scalar leaf counting as a level (``{"a": 1}`` is 2); stops counting past
    ``MAX_DEPTH``. Level by level over the containers only, and by exact type (the parsers here
    build plain dicts and lists): ~0.6 ms for 512 KB, where a stack of every value took ~2.6."""
    level = [doc] if isinstance(doc, (dict, list)) else []
    depth = 1
    while level:
        deeper: list[Any] = []
        append = deeper.append
        has_children = False
        for node in level:
            values = node.values() if type(node) is dict else node
            if values:
                has_children = True
                for value in values:
                    kind = type(value)
                    if kind is dict or kind is list:
                        append(value)
        if not has_children:
            break
        depth += 1
        if depth > MAX_DEPTH:
            break
        level = deeper
    return depth


def decode_text(raw: bytes, *, source: str = "document") -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not valid UTF-8 at byte {exc.start}", where=source) from None


def load_document(raw: bytes | str, *, source: str = "document") -> Any:
    """Parse JSON or YAML bytes into plain dicts/lists/scalars; raise ``SpecError`` naming ``source``."""
    text = decode_text(raw, source=source) if isinstance(raw, bytes) else raw.lstrip("\ufeff")
    stripped = text.lstrip()
    if not stripped:
        raise SpecError("empty document", where=source)
    try:
        if stripped[0] in "{[":
            try:
                doc = json.loads(text, object_pairs_hook=_reject_duplicates)
            except json.JSONDecodeError as exc:
                if stripped[0] == "[":
                    raise SpecError(f"not valid JSON: {exc}", where=source) from None
                doc = _load_yaml(text, source)  # flow-style YAML also starts with "{"
            except ValueError as exc:  # an integer past sys.get_int_max_str_digits()
                raise SpecError(unreadable_number(exc), where=source) from None
        else:
            doc = _load_yaml(text, source)
    except RecursionError:
        raise SpecError(
            f"document is nested deeper than {MAX_DEPTH} levels", where=source
        ) from None
    except SpecError as exc:
        if exc.where is None:
            exc.where = source
        raise
    if nesting_depth(doc) > MAX_DEPTH:
        raise SpecError(f"document is nested deeper than {MAX_DEPTH} levels", where=source)
    if unpaired_surrogate(doc, text, from_utf8=isinstance(raw, bytes)):
        raise SpecError(
            "holds an unpaired surrogate escape (\\ud800-\\udfff), which has no UTF-8 form",
            where=source,
        )
    return doc


def unreadable_number(exc: ValueError) -> str:
    """The message for a number Python refuses to convert (more than 4,300 digits by default),
    without its advice to raise the limit, which is no help to whoever wrote the document."""
    return f"holds a number that cannot be read: {str(exc).split(';')[0]}"


def unpaired_surrogate(doc: Any, text: str | None = None, *, from_utf8: bool = False) -> bool:
    """Whether ``doc`` holds an unpaired surrogate (U+D800-U+DFFF) in a key or a string. JSON
    lets one in as an escape (``"\\ud800"``), and it has no UTF-8 form: hashing, sending or
    storing the document raises UnicodeEncodeError, which is no ``SyncError``. ``text``, what
    ``doc`` was parsed from, rules it out cheaply for almost every document (no such escape, and
    no surrogate character as such, which text decoded from UTF-8 (``from_utf8``) cannot hold);
    the document is encoded only when one could be in it."""
    if text is not None:
        escaped = "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None
        if not escaped and (from_utf8 or text.isascii() or _utf8_encodable(text)):
            return False
    try:
        json.dumps(doc, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    except (TypeError, ValueError, RecursionError):  # not JSON-shaped: other checks say so
        return False
    return False


def _utf8_encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _load_yaml(text: str, source: str) -> Any:
    from sync.spec.strict_yaml import load_yaml  # PyYAML only when a document is YAML (~8 ms)

    return load_yaml(text, source)


def load_object(raw: bytes | str, *, source: str = "document") -> dict[str, Any]:
    """Like ``load_document`` but the top level must be a mapping (every spec, overlay, sync map)."""
    doc = load_document(raw, source=source)
    if not isinstance(doc, dict):
        raise SpecError(f"top level must be an object, got {type(doc).__name__}", where=source)
    return doc
