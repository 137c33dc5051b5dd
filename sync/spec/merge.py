"""Three-way merge: the API's new shape with the connector's own edits kept.

Why three-way: a re-import of the raw spec erases the curation people do on a connector (summaries,
``x-ms-summary``, ``x-ms-visibility``, dynamic values, deleted operations). Comparing the connector's
current definition (*ours*) with the upstream it was built from (*base*) tells which values are
connector-side edits; comparing the new upstream (*theirs*) with base tells what the API changed.

Rules, applied recursively (see docs/spec-engine.md):
- ours == theirs -> that value; ours == base -> theirs (the API changed it); theirs == base -> ours
  (a connector edit).
- Equality is JSON equality, strict about types: ``1``, ``1.0`` and ``true`` differ, although
  Python's ``==`` calls them equal. Otherwise an API that turns ``default: 1`` into
  ``default: true`` (or ``enum: [0, 1]`` into ``[false, true]``) would look unchanged and the
  connector would keep the old type with no conflict. Lists of scalars merge as sets of typed
  values for the same reason (``_item_key``).
- Both changed: objects merge key by key; lists of named items (parameters by name+in, metadata by
  propertyName) merge item by item; lists of scalars merge as sets; anything else is a conflict.
- A conflict is reported as ``"<json path>: ..."``. The connector wins for curation keys (summary,
  description, title, ``x-ms-*``), theirs wins for everything else (the shape).
- An operation or path deleted on ours stays deleted; if the API changed it meanwhile, a conflict
  says so.
- An operation upstream moved (its operationId once in base and once in theirs, at another path or
  method) is merged from base's, ours' and theirs' versions and lands where theirs has it: flows
  bind to the operationId, so it is the same action and the connector's edits to it are kept
  (``_moves``). Duplicate or missing operationIds are matched by path and method.
- ``base is None`` (first sync of an existing connector): theirs, with ours' ``x-ms-*`` keys copied
  onto matching operations and parameters (the connector owns its extensions). ``ours is None``:
  theirs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sync.spec.canonical import same_json

# the diff's methods: the moves it reports and those the merge follows are found in the same places
from sync.spec.diff import METHODS, index_operations, iter_operations, operation_id
from sync.spec.refs import json_path

CURATION_KEYS = ("summary", "description", "title")
_MISSING: Any = object()
Path = tuple[str | int, ...]
Location = tuple[str, str]  # (path, method) of an operation


def is_curation_key(key: Any) -> bool:
    return isinstance(key, str) and (key in CURATION_KEYS or key.startswith("x-ms-"))


def merge3(
    base: dict[str, Any] | None,
    ours: dict[str, Any] | None,
    theirs: dict[str, Any],
    *,
    share: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """Merge; returns (document, conflicts). Inputs are not modified.

    ``share=True`` lets the result reuse unchanged subtrees of the inputs instead of deep-copying
    them (~20 ms on a 500 KB definition): only for callers that never mutate either side, like the
    pipeline, which treats every document as immutable.
    """
    own = (lambda doc: doc) if share else copy.deepcopy
    if ours is None:
        return own(theirs), []
    if base is None:
        return _adopt_extensions(ours, theirs), []
    conflicts = _Conflicts()
    moves = _moves(base, ours, theirs)
    if moves:
        base, ours = _follow_moves(base, ours, moves, conflicts)
    merged = _merge(base, ours, theirs, (), conflicts)
    if moves:
        merged = _without_emptied_items(merged, moves)
    return own(merged), conflicts.messages


@dataclass
class _Conflicts:
    """The merge's conflict messages, ``"<json path>: <what>; <who wins>"``. One inside an
    operation upstream moved names where it came from too: the connector's user knows the action
    by its old URL, and the path alone would point at something the connector never had."""

    messages: list[str] = field(default_factory=list)
    moved_from: dict[Path, str] = field(default_factory=dict)  # ("paths", p, m) -> old json path

    def add(self, path: Path, what: str) -> None:
        origin = self.moved_from.get(path[:3]) if self.moved_from else None
        where = (
            json_path(path)
            if origin is None
            else f"{json_path(path)} (moved upstream from {origin})"
        )
        self.messages.append(f"{where}: {what}")


def _is_operation_level(path: Path) -> bool:
    """``paths.<p>`` and ``paths.<p>.<method>``: where a deletion on ours is deliberate."""
    return (len(path) == 2 and path[0] == "paths") or (
        len(path) == 3 and path[0] == "paths" and path[2] in METHODS
    )


def _merge(b: Any, o: Any, t: Any, path: Path, conflicts: _Conflicts) -> Any:
    if same_json(o, t):
        return o
    if same_json(o, b):
        return t
    if same_json(t, b):
        return o
    if isinstance(o, dict) and isinstance(t, dict):
        base = b if isinstance(b, dict) else {}
        return _merge_dicts(base, o, t, path, conflicts)
    if isinstance(o, list) and isinstance(t, list):
        base_list = b if isinstance(b, list) else []
        merged = _merge_lists(base_list, o, t, path, conflicts)
        if merged is not _MISSING:
            return merged
    key = path[-1] if path else None
    if o is _MISSING or t is _MISSING:
        # A curation key (x-ms-visibility, x-ms-summary...) edited in the portal is the
        # connector's to keep, also when upstream drops it: the rule below for keys changed on
        # both sides, which this branch used to pre-empt (found by review 2026-12-07).
        curated = t is _MISSING and (is_curation_key(key) or _under_curation_key(path))
        keep_ours = (o is _MISSING and _is_operation_level(path)) or curated
        what = "deleted on the connector" if o is _MISSING else "edited on the connector"
        change = "deleted upstream" if t is _MISSING else "changed upstream"
        winner = (
            "connector value kept" if curated else "kept deleted" if keep_ours else "upstream wins"
        )
        conflicts.add(path, f"{what} and {change}; {winner}")
        return o if keep_ours else t
    if is_curation_key(key) or _under_curation_key(path):
        conflicts.add(path, "changed on both sides; connector value kept")
        return o
    conflicts.add(path, "changed on both sides; upstream value wins")
    return t


def _under_curation_key(path: Path) -> bool:
    return any(isinstance(p, str) and p.startswith("x-ms-") for p in path)


def _merge_dicts(
    b: dict[str, Any], o: dict[str, Any], t: dict[str, Any], path: Path, conflicts: _Conflicts
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = list(t) + [k for k in o if k not in t]
    keys += [k for k in b if k not in t and k not in o]
    for key in keys:
        value = _merge(
            b.get(key, _MISSING),
            o.get(key, _MISSING),
            t.get(key, _MISSING),
            (*path, key),
            conflicts,
        )
        if value is not _MISSING:
            out[key] = value
    return out


def _item_key(item: Any) -> Any:
    if isinstance(item, dict):
        if isinstance(item.get("$ref"), str):
            return ("$ref", item["$ref"])
        if "name" in item and isinstance(item.get("name"), str):
            return ("name", item["name"], str(item.get("in", "")))
        if isinstance(item.get("propertyName"), str):
            return ("propertyName", item["propertyName"])
        return None
    if isinstance(item, (str, int, float, bool)) or item is None:
        return ("value", type(item).__name__, item)
    return None


def _keyed(items: list[Any]) -> dict[Any, Any] | None:
    out: dict[Any, Any] = {}
    for item in items:
        key = _item_key(item)
        if key is None or key in out:
            return None
        out[key] = item
    return out


def _label(key: Any) -> Any:
    """How a list item shows in a conflict's path: its name (and where), or its value."""
    return key[1] if key[0] != "name" else f"{key[1]}({key[2]})" if key[2] else key[1]


def _merge_lists(
    b: list[Any], o: list[Any], t: list[Any], path: Path, conflicts: _Conflicts
) -> Any:
    """Item-wise merge when every item has an identity; ``_MISSING`` when they do not."""
    kb, ko, kt = _keyed(b), _keyed(o), _keyed(t)
    if kb is None or ko is None or kt is None:
        return _MISSING
    order = list(kt) + [k for k in ko if k not in kt and k not in kb]
    out = []
    for key in kb:  # removed upstream: gone, but an edit made to it on the connector is news
        if key in ko and key not in kt and not same_json(ko[key], kb[key]):
            conflicts.add(
                (*path, f"[{_label(key)}]"),
                "edited on the connector and removed upstream; upstream wins",
            )
    for key in order:
        label = _label(key)
        value = _merge(
            kb.get(key, _MISSING),
            ko.get(key, _MISSING),
            kt.get(key, _MISSING),
            (*path, f"[{label}]"),
            conflicts,
        )
        if value is not _MISSING:
            out.append(value)
    return out


# Operations upstream moved -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Move:
    """An operation upstream moved, known by its operationId, as the diff reports it "moved"."""

    old: Location  # in base
    new: Location  # in theirs
    ours: Location | None  # where the connector holds it; None: the connector deleted it


def _moves(base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]) -> list[_Move]:
    """The operations upstream moved that the merge follows; ``[]`` at once in the usual case.

    A move gives theirs a location base did not have; a release that only changes or removes
    operations does not, and saying so compares the key sets of the path items (4-16 us at
    500 KB) before any operation is read. The old location need not be vacated: upstream may
    put a new operation there (``GetItem`` moves from GET to POST and ``GetItemV2`` takes the
    GET), and the connector's edits then belong to the moved one, not to the newcomer. Two
    operations trading places are not seen (the same locations): matched by path, as before.
    """
    base_paths, their_paths = _paths(base), _paths(theirs)
    if not _vacates(their_paths, base_paths):
        return []
    now_at = _unique_locations(theirs)
    found = [
        (op_id, old, new)
        for op_id, old in _unique_locations(base).items()
        if old is not None and (new := now_at.get(op_id)) is not None and new != old
    ]
    if not found:
        return []
    ours_at = _unique_locations(ours)
    moves: list[_Move] = []
    for op_id, old, new in found:
        if op_id in ours_at:
            at = ours_at[op_id]
            if at is None:  # held twice on the connector: matched by path
                continue
            moves.append(_Move(old, new, at))
        elif _operation_at(ours, old) is None:  # deleted on the connector: stays deleted
            moves.append(_Move(old, new, None))
        # else another operationId stands there on the connector: matched by path, as before
    return _placeable(moves, base, ours)


def _unique_locations(doc: dict[str, Any]) -> dict[str, Location | None]:
    """operationId -> where ``doc`` holds it; None when it holds it twice or more (then it names
    no single operation, and those are matched by path and method)."""
    out: dict[str, Location | None] = {}
    for method, path, op in iter_operations(doc):
        op_id = operation_id(op)
        if op_id is not None:
            out[op_id] = None if op_id in out else (path, method)
    return out


def _placeable(moves: list[_Move], base: dict[str, Any], ours: dict[str, Any]) -> list[_Move]:
    """The moves whose new location is free in base and in ours, or freed by another move (a
    chain, or the connector's own move there). Where an operation stays, the moved one is matched
    by path with it, as before: putting it there would hide that operation's edits."""
    while True:
        freed_base = {m.old for m in moves}
        freed_ours = {m.ours for m in moves}
        kept = [
            m
            for m in moves
            if (m.new in freed_base or _operation_at(base, m.new) is None)
            and (m.new in freed_ours or _operation_at(ours, m.new) is None)
        ]
        if len(kept) == len(moves):
            return kept
        moves = kept


def _follow_moves(
    base: dict[str, Any], ours: dict[str, Any], moves: list[_Move], conflicts: _Conflicts
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Base and ours with each moved operation where theirs has it, so that the ordinary merge
    pairs base's, ours' and theirs' versions of it (and a deletion on ours stays one). Path items
    the moves left without operations go; path-level keys follow an item whose every operation
    moved to a path that had none (``_carried``). The inputs are not changed."""
    base_paths, our_paths = _paths(base), _paths(ours)
    carried = _carried(base_paths, moves)
    new_base = _relocated(base_paths, [(m.old, m.new) for m in moves])
    new_ours = _relocated(our_paths, [(m.ours, m.new) for m in moves if m.ours is not None])
    for move in moves:
        path = move.new[0]
        # The connector has no item there: give it base's path-level keys, untouched, unless it
        # deleted that item with operations in it (then it stays deleted, as any path item).
        if path not in our_paths and (
            move.ours is not None or not _has_operations(base_paths.get(path))
        ):
            _give_path_keys(new_ours, path, base_paths.get(path))
    for path, source in carried.items():
        _give_path_keys(new_base, path, base_paths[source])
        if path in new_ours:
            _give_path_keys(new_ours, path, our_paths.get(source, base_paths[source]))
    _drop_left_items(new_base, {m.old[0] for m in moves} & set(carried.values()))
    left = {m.old[0] for m in moves} | {m.ours[0] for m in moves if m.ours is not None}
    _drop_left_items(
        new_ours, {p for p in left if p not in new_base or _has_operations(new_base[p])}
    )
    _report_moves(moves, conflicts)
    return {**base, "paths": new_base}, {**ours, "paths": new_ours}


def _without_emptied_items(merged: dict[str, Any], moves: list[_Move]) -> dict[str, Any]:
    """An item upstream moved operations into that holds none after the merge (the connector had
    deleted them, and they stay deleted) goes, as the item they left does: an item with no
    operation is no action of the connector's. The result's ``paths`` may be an input's, so it
    is copied, not changed."""
    paths = _paths(merged)
    emptied = {m.new[0] for m in moves if m.ours is None}
    emptied = {p for p in emptied if p in paths and not _has_operations(paths[p])}
    if not emptied:
        return merged
    return {**merged, "paths": {p: item for p, item in paths.items() if p not in emptied}}


def _drop_left_items(paths: dict[str, Any], left: set[str]) -> None:
    """Drop the items of ``left`` that hold no operation any more. The caller's choice of
    ``left``: base's go where their path-level keys went along (``_carried``); ours' go unless
    base keeps an item without operations there too (then theirs decides), so that an item the
    connector emptied (its operations deleted, or moved) reads as the connector's deletion."""
    for path in left:
        if path in paths and not _has_operations(paths[path]):
            del paths[path]


def _carried(base_paths: dict[str, Any], moves: list[_Move]) -> dict[str, str]:
    """New path -> old path whose path-level keys (``parameters``...) it takes: when every
    operation of an item moved to a path that had none, the item itself moved, and the
    connector's edits to it (an input's x-ms-summary) go along. Into a path item that has
    operations of its own they do not: its path-level keys are its own operations' too."""
    olds = {m.old for m in moves}
    out: dict[str, str] = {}
    for move in moves:
        source, path = move.old[0], move.new[0]
        if path in out or _has_operations(base_paths.get(path)):
            continue
        item = base_paths[source]
        if all((source, m) in olds for m in METHODS if isinstance(item.get(m), dict)):
            out[path] = source
    return out


def _relocated(paths: dict[str, Any], moves: list[tuple[Location, Location]]) -> dict[str, Any]:
    """A copy of ``paths`` with each operation taken from its first location to its second, all
    taken before any is put (two may trade places). Touched items are copied, the rest shared."""
    out = dict(paths)
    taken = []
    for (path, method), new in moves:
        item = out[path] = dict(out[path])
        taken.append((new, item.pop(method)))
    for (path, method), op in taken:
        item = out[path] = _item_copy(out.get(path))
        item[method] = op
    return out


def _give_path_keys(paths: dict[str, Any], path: str, source: Any) -> None:
    """Make sure ``paths`` has an item at ``path`` and give it the path-level keys of ``source``
    (an item) that it lacks."""
    item = paths[path] = _item_copy(paths.get(path))
    for key, value in (source if isinstance(source, dict) else {}).items():
        if key not in METHODS:
            item.setdefault(key, value)


def _report_moves(moves: list[_Move], conflicts: _Conflicts) -> None:
    """Conflicts inside a moved operation name its old location too; a connector that moved it
    elsewhere is told that upstream's location won (the shape is upstream's)."""
    for move in moves:
        conflicts.moved_from[("paths", *move.new)] = json_path(("paths", *move.old))
    for move in moves:
        if move.ours is not None and move.ours not in (move.old, move.new):
            elsewhere = json_path(("paths", *move.ours))
            conflicts.add(
                ("paths", *move.new),
                f"moved on the connector to {elsewhere}; upstream location wins",
            )


def _paths(doc: Any) -> dict[str, Any]:
    paths = doc.get("paths") if isinstance(doc, dict) else None
    return paths if isinstance(paths, dict) else {}


def _operation_at(doc: dict[str, Any], location: Location) -> dict[str, Any] | None:
    return _operation_in(_paths(doc).get(location[0]), location[1])


def _operation_in(item: Any, method: str) -> dict[str, Any] | None:
    op = item.get(method) if isinstance(item, dict) else None
    return op if isinstance(op, dict) else None


def _has_operations(item: Any) -> bool:
    return any(_operation_in(item, m) is not None for m in METHODS)


def _item_copy(item: Any) -> dict[str, Any]:
    return dict(item) if isinstance(item, dict) else {}


def _vacates(paths: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether ``paths`` has an operation at a (path, method) where ``other`` has none. Items
    with the same keys on both sides are passed over without looking at a method."""
    for path, item in paths.items():
        there = other.get(path)
        if not isinstance(item, dict) or (isinstance(there, dict) and there.keys() == item.keys()):
            continue
        if any(_operation_in(item, m) and _operation_in(there, m) is None for m in METHODS):
            return True
    return False


def _adopt_extensions(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """No base: theirs, plus ours' x-ms-* on operations and parameters that exist in both."""
    result = copy.deepcopy(theirs)
    for key, value in ours.items():
        if key.startswith("x-ms-") and key not in result:
            result[key] = copy.deepcopy(value)
    our_ops = index_operations(ours)
    for key, (_method, _path, new_op) in index_operations(result).items():
        if key not in our_ops:
            continue
        old_op = our_ops[key][2]
        for ext, value in old_op.items():
            if ext.startswith("x-ms-"):
                new_op[ext] = copy.deepcopy(value)
        old_params = {
            (p.get("name"), p.get("in")): p
            for p in old_op.get("parameters") or []
            if isinstance(p, dict) and "name" in p
        }
        for param in new_op.get("parameters") or []:
            if not isinstance(param, dict):
                continue
            old = old_params.get((param.get("name"), param.get("in")))
            for ext, value in (old or {}).items():
                if isinstance(ext, str) and ext.startswith("x-ms-"):
                    param[ext] = copy.deepcopy(value)
    return result
