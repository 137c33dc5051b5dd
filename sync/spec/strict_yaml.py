"""The YAML half of ``sync.spec.parse``: a strict safe loader and the alias-bomb guard.

Kept apart so that a process that only ever reads JSON (the CLI on a JSON map and spec, most
workers) never imports PyYAML; ``parse.load_document`` imports this on the first YAML document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

from sync.errors import SpecError
from sync.spec.parse import MAX_DEPTH, MAX_EXPANDED_NODES, unreadable_number

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):
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


def _key_text(loader: Any, key_node: yaml.Node, deep: bool = False) -> str:
    """A mapping key as the document's dict holds it: always a string, as JSON's are."""
    key = loader.construct_object(key_node, deep=deep)
    if isinstance(key, (dict, list)):
        raise SpecError(f"line {key_node.start_mark.line + 1}: a mapping key must be a scalar")
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        # a key reads as written: YAML 1.1 makes 010 the octal 8 and 0x1f 31, and an API
        # named 010 was stored as "8" (200 stays "200" either way)
        return str(key_node.value)
    key = "null" if key is None else key
    return str(key).lower() if isinstance(key, bool) else str(key)


def _construct_mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> dict[str, Any]:
    loader.flatten_mapping(node)
    result: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = _key_text(loader, key_node, deep=deep)
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


def _child(loader: Any, node: yaml.Node, part: str | int) -> yaml.Node | None:
    """The node under ``node`` at one step of a key path (a mapping key or a list index)."""
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        loader.flatten_mapping(node)  # merge keys (<<) count, as in the loaded document
        return next((v for k, v in node.value if _key_text(loader, k) == part), None)
    if (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and 0 <= part < len(node.value)
    ):
        found: yaml.Node = node.value[part]
        return found
    return None


def written_scalar(text: str, path: Sequence[str | int]) -> str | None:
    """The scalar at ``path`` as the document spells it, or None when there is none.

    Why: a loaded value can differ from what was written (YAML 1.1 reads ``010`` as 8, ``0x1f``
    as 31, ``true`` as a boolean), and an error about it must show what the user wrote. Called on
    the error path only; composing nodes expands no alias, and any failure is just "unknown"."""
    loader = _StrictLoader(text)
    try:
        node: yaml.Node | None = loader.get_single_node()
        for part in path:
            node = None if node is None else _child(loader, node, part)
        return str(node.value) if isinstance(node, yaml.ScalarNode) else None
    except (yaml.YAMLError, SpecError, ValueError, RecursionError):
        return None
    finally:
        loader.dispose()


def load_yaml(text: str, source: str) -> Any:
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError("empty document", where=source)
        _expanded_size(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid JSON or YAML: {exc}".replace("\n", " "), where=source) from None
    except ValueError as exc:  # an integer past sys.get_int_max_str_digits()
        raise SpecError(unreadable_number(exc), where=source) from None
    finally:
        loader.dispose()
