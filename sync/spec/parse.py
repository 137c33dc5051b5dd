"""Turn downloaded bytes into a JSON-shaped document, refusing what a hostile server could send.

Rules (shared by specs, overlays and the sync map):
- UTF-8 only, a leading BOM tolerated; invalid UTF-8 is an error naming the byte offset.
- JSON first when the text looks like JSON, YAML otherwise, with a safe loader that has no YAML 1.1
  timestamp resolver (dates stay strings, as OpenAPI expects) and YAML 1.2 booleans only
  (``on``/``yes``/``no`` stay strings), turns scalar keys into strings
  (``200:`` -> ``"200"``), rejects duplicate keys and refuses alias graphs that would expand past a
  node budget (YAML bombs).
- Nesting deeper than ``MAX_DEPTH`` is refused rather than left to blow the stack later.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from sync.errors import SpecError

MAX_DEPTH = 200
MAX_EXPANDED_NODES = 2_000_000

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """SafeLoader without timestamps, with string keys and without duplicate keys."""


_DROPPED = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool"}
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# YAML 1.2 booleans only: "on", "off", "yes", "no" stay strings (a sync map's ``on:`` key, an
# enum value "yes" in a spec), as JSON Schema and OpenAPI readers expect.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> dict[str, Any]:
    loader.flatten_mapping(node)
    result: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (dict, list)):
            raise SpecError(f"line {key_node.start_mark.line + 1}: a mapping key must be a scalar")
        key = "null" if key is None else key
        key = str(key).lower() if isinstance(key, bool) else str(key)
        if key in result:
            raise SpecError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        result[key] = loader.construct_object(value_node, deep=deep)
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _expanded_size(root: yaml.Node) -> int:
    """Nodes the document would have with every alias expanded, counted without expanding."""
    memo: dict[int, int] = {}
    depth_seen = 0
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        depth_seen = max(depth_seen, depth)
        if depth_seen > MAX_DEPTH:
            raise SpecError(f"document is nested deeper than {MAX_DEPTH} levels")
        if id(node) in memo:
            continue
        if isinstance(node, yaml.ScalarNode):
            memo[id(node)] = 1
            continue
        children: list[yaml.Node] = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        if done:
            total = 1 + sum(memo[id(c)] for c in children)
            if total > MAX_EXPANDED_NODES:
                raise SpecError(
                    f"document expands to more than {MAX_EXPANDED_NODES:,} nodes "
                    "(YAML aliases); refused"
                )
            memo[id(node)] = total
            continue
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in memo)
    return memo[id(root)]


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise SpecError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _depth(doc: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                break
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return deepest


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
    if _depth(doc) > MAX_DEPTH:
        raise SpecError(f"document is nested deeper than {MAX_DEPTH} levels", where=source)
    return doc


def _load_yaml(text: str, source: str) -> Any:
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError("empty document", where=source)
        _expanded_size(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid JSON or YAML: {exc}".replace("\n", " "), where=source) from None
    finally:
        loader.dispose()


def load_object(raw: bytes | str, *, source: str = "document") -> dict[str, Any]:
    """Like ``load_document`` but the top level must be a mapping (every spec, overlay, sync map)."""
    doc = load_document(raw, source=source)
    if not isinstance(doc, dict):
        raise SpecError(f"top level must be an object, got {type(doc).__name__}", where=source)
    return doc
