"""The ``$ref`` guard: the first thing every document meets, before any library sees it.

Why it exists: openapi-spec-validator (through jsonschema-path) and most converters follow ``$ref``s on
their own, over HTTP or from the local disk. A spec downloaded from a deployment is untrusted input, so
a ``$ref`` to ``http://169.254.169.254/...`` or ``file:///etc/passwd`` must be refused here, by a plain
walk that fetches nothing. Only local JSON Pointers (``#/...``) pass.

A chain of ``$ref``s that only point at further ``$ref``s and come back (``A -> B -> A``) has no
meaning and makes any resolver loop, so it is refused too. A *recursive schema* (a tree node whose
property refers back to the node) is legitimate and common; it is not a cycle in this sense.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sync.errors import SpecError
from sync.lru import Lru

SCANNED_KEYS = ("x-ms-visibility", "x-ms-trigger")  # values the validator checks on any node

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Scan:
    """What the rules about any node need from one walk over a document."""

    refs: list[tuple[Path, str]]  # every string ``$ref`` with its location, ``iter_refs`` order
    extensions: list[tuple[Path, str, Any]]  # (node, key, value) for the ``SCANNED_KEYS``


_KEPT = Lru(4)  # id(document) -> (document, Scan), see check_refs(keep=True)


def scan(doc: Any) -> Scan:
    """One walk, in ``iter_refs`` order, for the ``$ref`` guard and the validator alike (a walk
    over 512 KB costs ~2 ms)."""
    refs: list[tuple[Path, str]] = []
    extensions: list[tuple[Path, str, Any]] = []
    stack: list[tuple[Any, Path]] = [(doc, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                refs.append(((*path, "$ref"), ref))
            for key in SCANNED_KEYS:
                if key in node:
                    extensions.append((path, key, node[key]))
            for key, value in node.items():
                if isinstance(value, (dict, list)):
                    stack.append((value, (*path, key)))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, (dict, list)):
                    stack.append((value, (*path, index)))
    return Scan(refs, extensions)


def kept_scan(doc: Any) -> Scan | None:
    """The scan ``check_refs(doc, keep=True)`` made of this very object, if still kept."""
    kept = _KEPT.get(id(doc))
    return kept[1] if kept is not None and kept[0] is doc else None


def json_path(parts: tuple[str | int, ...] | list[str | int]) -> str:
    """Dotted path for messages: ``paths./pets.get.parameters[0].schema.$ref``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def iter_refs(doc: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string-valued ``$ref`` with its location, without recursion (deep documents exist).

    A *property named* ``$ref`` inside ``properties`` has an object value and is not a reference.
    """
    return iter(scan(doc).refs)


def is_local(ref: str) -> bool:
    return ref == "#" or ref.startswith("#/")


def unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def pointer(*tokens: str) -> str:
    """A local JSON Pointer ``#/a/b`` from raw tokens (escaping ``~`` and ``/``)."""
    return "#/" + "/".join(escape(t) for t in tokens) if tokens else "#"


def resolve(doc: Any, ref: str) -> Any:
    """The node a local ``#/...`` pointer names; ``KeyError`` if there is none."""
    if not is_local(ref):
        raise KeyError(ref)
    node = doc
    if ref == "#":
        return node
    for raw in ref[2:].split("/"):
        token = unescape(raw)
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(ref)
    return node


def check_refs(doc: Any, *, keep: bool = False) -> None:
    """Refuse any non-local ``$ref`` and any ``$ref``-only cycle; raise ``SpecError`` naming where.

    Unresolvable *local* refs are left to ``validate`` (they are a platform error, reported with the
    others, not a reason to stop reading the document).

    ``keep``: the document is never changed once parsed (the pipeline's specs): its scan is kept
    by identity for ``validate``, which then walks it no more (``kept_scan``).
    """
    found = scan(doc)
    refs = found.refs
    for path, ref in sorted(refs, key=lambda item: json_path(item[0])):
        if not is_local(ref):
            kind = _kind(ref)
            raise SpecError(
                f"{kind} $ref {ref[:200]!r} refused: only local references (#/...) are allowed",
                where=json_path(path),
            )
    _check_alias_cycles(doc, refs)
    if keep:
        _KEPT.put(id(doc), (doc, found))


def _kind(ref: str) -> str:
    lowered = ref.lower()
    if lowered.startswith(("http://", "https://")):
        return "remote"
    if lowered.startswith("file:"):
        return "file"
    if "://" in lowered or lowered.startswith("//"):
        return "external"
    return "relative external"


def _check_alias_cycles(doc: Any, refs: list[tuple[tuple[str | int, ...], str]]) -> None:
    """Follow each ref through nodes that are themselves bare ``$ref``s; a revisit is a cycle."""
    for path, ref in refs:
        seen = [ref]
        current = ref
        while True:
            try:
                target = resolve(doc, current)
            except KeyError:
                break
            nxt = target.get("$ref") if isinstance(target, dict) else None
            if not isinstance(nxt, str) or not is_local(nxt):
                break
            if nxt in seen:
                chain = " -> ".join([*seen, nxt])
                raise SpecError(
                    f"$ref cycle that resolves to nothing: {chain}", where=json_path(path)
                )
            seen.append(nxt)
            current = nxt
