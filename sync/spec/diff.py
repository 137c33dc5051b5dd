"""What changed between two Swagger 2.0 definitions, per operation, and whether it breaks callers.

Why keyed by operationId: flows and apps bind to a connector action by its operationId, not by its
URL, so an operation that moved to a new path is *the same action* (changed), while a renamed
operationId is a removal plus an addition. Without an operationId the key is ``METHOD /path``.

Breaking means "an existing flow or app may fail or misbehave": a removed operation or input, a new
required input, an input that became required or changed type or moved in/out of the body, a
response field removed or retyped, changed security. Additions of optional inputs, response fields
and whole operations are not breaking.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sync.lru import Lru
from sync.spec.canonical import same_json
from sync.spec.refs import resolve

METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
MAX_FIELD_DEPTH = 8
RESPONSE_ROOT = "$"  # the response schema's own (top-level) type, next to its dotted fields


@dataclass(frozen=True)
class Change:
    kind: str
    message: str
    breaking: bool

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "breaking": self.breaking}


@dataclass
class OperationChange:
    operation_id: str
    changes: list[Change] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"operationId": self.operation_id, "changes": [c.to_dict() for c in self.changes]}


@dataclass
class Diff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[OperationChange] = field(default_factory=list)

    @property
    def breaking(self) -> bool:
        return bool(self.removed) or any(c.breaking for oc in self.changed for c in oc.changes)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [oc.to_dict() for oc in self.changed],
            "breaking": self.breaking,
        }


@dataclass
class _Op:
    key: str
    method: str
    path: str
    op: dict[str, Any]
    # name -> location -> resolved parameter; the body as "body" -> "body" with its root type,
    # its fields as "body.x" -> "body". By location too: a query and a header input may share a
    # name, and one of them going must not hide behind the other.
    params: dict[str, dict[str, dict[str, Any]]]
    response: dict[str, str]  # dotted field -> type; RESPONSE_ROOT -> the schema's own type
    security: Any


def operation_id(op: dict[str, Any]) -> str | None:
    """The action's identity where it has one: what flows bind to, wherever the URL goes (the
    merge follows an operation upstream moved by it too)."""
    op_id = op.get("operationId")
    return op_id if isinstance(op_id, str) and op_id else None


def operation_key(method: str, path: str, op: dict[str, Any]) -> str:
    return operation_id(op) or f"{method.upper()} {path}"


def iter_operations(doc: Any) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) in document order; items and operations that are not objects
    are passed over."""
    paths = doc.get("paths") if isinstance(doc, dict) else None
    for path, item in (paths if isinstance(paths, dict) else {}).items():
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                yield method, path, op


def index_operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """key -> (method, path, operation); a duplicate operationId falls back to ``METHOD /path``."""
    out: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for method, path, op in iter_operations(doc):
        key = operation_key(method, path, op)
        if key in out:
            key = f"{method.upper()} {path}"
        out[key] = (method, path, op)
    return out


_DESCRIBED = Lru(4)  # a definition's key -> (its operations, key -> description so far)


def diff(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    keys: tuple[Any, Any] | None = None,
) -> Diff:
    """``keys``: what identifies ``old`` and ``new`` *with their key order*, as the caller vouches
    (the pipeline: the sha256 of their compact JSON). A definition's operation descriptions are
    then remembered by it: the next diff of a warm worker starts from the definition this one
    ends at (~half the work, resolving every body and response schema). Not the canonical hash:
    a description depends on key order (the first 2xx response, which operation keeps a shared
    operationId), which that hash does not see."""
    old_key, new_key = keys if keys is not None else (None, None)
    new_ops, new_described = _operations(new, new_key)
    if old is None:
        return Diff(added=sorted(new_ops))
    old_ops, old_described = _operations(old, old_key)
    result = Diff(
        added=sorted(set(new_ops) - set(old_ops)),
        removed=sorted(set(old_ops) - set(new_ops)),
    )
    for key in sorted(set(old_ops) & set(new_ops)):
        a = _described(old, key, old_ops, old_described)
        b = _described(new, key, new_ops, new_described)
        changes = _compare(a, b)
        if changes:
            result.changed.append(OperationChange(key, changes))
    return result


def _operations(
    doc: dict[str, Any], key: Any
) -> tuple[dict[str, tuple[str, str, dict[str, Any]]], dict[str, _Op]]:
    """The document's operations and the descriptions made of them so far (remembered when its
    key is known; a fresh, unshared dict when not)."""
    if key is None:
        return index_operations(doc), {}
    known = _DESCRIBED.get(key)
    if known is None:
        known = (index_operations(doc), {})
        _DESCRIBED.put(key, known)
    return known


def _described(
    doc: dict[str, Any],
    key: str,
    ops: dict[str, tuple[str, str, dict[str, Any]]],
    described: dict[str, _Op],
) -> _Op:
    found = described.get(key)
    if found is None:  # two threads may both describe a key: the same value, either one kept
        found = described[key] = _describe(doc, key, *ops[key])
    return found


def _deref(doc: dict[str, Any], node: Any) -> Any:
    hops = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and hops < 32:
        try:
            node = resolve(doc, node["$ref"])
        except KeyError:
            return {}
        hops += 1
    return node


def _describe(doc: dict[str, Any], key: str, method: str, path: str, op: dict[str, Any]) -> _Op:
    item = doc["paths"][path]
    params: dict[str, dict[str, dict[str, Any]]] = {}
    for holder in (item.get("parameters"), op.get("parameters")):
        for raw in holder if isinstance(holder, list) else []:
            param = _deref(doc, raw)
            if not isinstance(param, dict):
                continue
            if param.get("in") == "body":
                fields = _fields(doc, param.get("schema"), "body", set(), 0, with_required=True)
                body_required = bool(param.get("required"))
                for name, (ftype, required) in fields.items():
                    params.setdefault(name, {})["body"] = {
                        "name": name,
                        "in": "body",
                        "type": ftype,
                        "required": body_required and required,
                    }
                root = fields.get("body")  # the walk records the body's own type under "body"
                params.setdefault("body", {})["body"] = {
                    "name": "body",
                    "in": "body",
                    "type": root[0] if root else "any",
                    "required": body_required,
                }
            else:
                params.setdefault(str(param.get("name")), {})[str(param.get("in"))] = param
    response: dict[str, str] = {}
    responses = op.get("responses")
    responses = responses if isinstance(responses, dict) else {}
    # The first 2xx is the action's outputs; without one, the designer shows `default`'s (an
    # operation that only had `default` had no outputs to compare: review 2026-12-07, Planner).
    success = next((c for c in responses if str(c).startswith("2")), None)
    code = success if success is not None else ("default" if "default" in responses else None)
    if code is not None:
        resp = _deref(doc, responses[code])
        if isinstance(resp, dict) and resp.get("schema") is not None:
            response = {k: v[0] for k, v in _fields(doc, resp["schema"], "", set(), 0).items()}
            response[RESPONSE_ROOT] = _schema_type(_deref(doc, resp["schema"]))
    security = op.get("security", doc.get("security"))
    return _Op(key, method, path, op, params, response, security)


def _fields(
    doc: dict[str, Any],
    schema: Any,
    prefix: str,
    seen: set[str],
    depth: int,
    *,
    with_required: bool = False,
    required: bool = True,
) -> dict[str, tuple[str, bool]]:
    """Dotted field -> (type, required along the whole chain), refs followed once per chain."""
    out: dict[str, tuple[str, bool]] = {}
    if not isinstance(schema, dict) or depth > MAX_FIELD_DEPTH:
        return out
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            return out
        seen = seen | {ref}
        schema = _deref(doc, schema)
        if not isinstance(schema, dict):
            return out
    parts = [schema, *(s for s in schema.get("allOf") or [] if isinstance(s, dict))]
    for part in parts[1:]:
        out.update(
            _fields(
                doc, part, prefix, seen, depth + 1, with_required=with_required, required=required
            )
        )
    schema_type = _schema_type(schema)
    if prefix:
        out[prefix] = (schema_type, required)
    req = set(schema.get("required") or []) if isinstance(schema.get("required"), list) else set()
    for name, prop in (schema.get("properties") or {}).items():
        child = f"{prefix}.{name}" if prefix else str(name)
        out.update(
            _fields(
                doc,
                prop,
                child,
                seen,
                depth + 1,
                with_required=with_required,
                required=required and name in req,
            )
        )
    if schema_type == "array" and isinstance(schema.get("items"), dict):
        out.update(_fields(doc, schema["items"], f"{prefix}[]", seen, depth + 1, required=False))
    return out


def _schema_type(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    return str(schema.get("type") or ("object" if "properties" in schema else "any"))


def _ptype(param: dict[str, Any]) -> str:
    kind = str(param.get("type", "any"))
    if param.get("format"):
        kind += f"/{param['format']}"
    if kind.startswith("array") and isinstance(param.get("items"), dict):
        kind += f"<{param['items'].get('type', 'any')}>"
    return kind


def _compare(a: _Op, b: _Op) -> list[Change]:
    changes: list[Change] = []
    if (a.method, a.path) != (b.method, b.path):
        changes.append(
            Change(
                "moved",
                f"moved from {a.method.upper()} {a.path} to {b.method.upper()} {b.path}",
                False,
            )
        )
    added: list[Change] = []
    removed: list[Change] = []
    kept: list[Change] = []
    for name in sorted(a.params.keys() | b.params.keys()):
        la, lb = a.params.get(name, {}), b.params.get(name, {})
        if len(la) == 1 and la.keys() == lb.keys():  # the usual case: one input, same place
            (pa,), (pb,) = la.values(), lb.values()
            kept.extend(_compare_input(name, pa, pb, shared=False))
            continue
        shared = len(la) > 1 or len(lb) > 1  # one name in several locations: say which
        only_a, only_b = sorted(set(la) - set(lb)), sorted(set(lb) - set(la))
        pairs = [(la[loc], lb[loc]) for loc in sorted(set(la) & set(lb))]
        if len(only_a) == 1 and len(only_b) == 1:  # the one input of that name changed location
            pairs.append((la[only_a[0]], lb[only_b[0]]))
            only_a = only_b = []
        for loc in only_b:
            param = lb[loc]
            req = bool(param.get("required"))
            kind = "input-added-required" if req else "input-added"
            what = "new required input" if req else "new optional input"
            added.append(Change(kind, f"{what} {name!r} ({loc})", req))
        for loc in only_a:
            removed.append(Change("input-removed", f"input {name!r} ({loc}) removed", True))
        for pa, pb in pairs:
            kept.extend(_compare_input(name, pa, pb, shared))
    changes += added + removed + kept
    for name in sorted(set(a.response) - set(b.response)):
        what = "response schema" if name == RESPONSE_ROOT else f"response field {name!r}"
        changes.append(Change("output-removed", f"{what} removed", True))
    for name in sorted(set(b.response) - set(a.response)):
        what = "response schema" if name == RESPONSE_ROOT else f"response field {name!r}"
        changes.append(Change("output-added", f"{what} added", False))
    for name in sorted(set(a.response) & set(b.response)):
        if a.response[name] != b.response[name]:
            what = "response" if name == RESPONSE_ROOT else f"response field {name!r}"
            changes.append(
                Change(
                    "output-retyped",
                    f"{what} type {a.response[name]} -> {b.response[name]}",
                    True,
                )
            )
    if a.security != b.security:
        changes.append(Change("security-changed", "security requirements changed", True))
    hidden_a = a.op.get("x-ms-visibility") == "internal"
    hidden_b = b.op.get("x-ms-visibility") == "internal"
    if hidden_b and not hidden_a:  # existing flows keep it; makers no longer find it
        changes.append(
            Change("operation-hidden", "operation is now internal (hidden in the designer)", False)
        )
    elif hidden_a and not hidden_b:
        changes.append(Change("operation-shown", "operation is no longer internal", False))
    return changes


def _compare_input(name: str, pa: dict[str, Any], pb: dict[str, Any], shared: bool) -> list[Change]:
    """One input on both sides (same location, or the one input of that name moved)."""
    changes: list[Change] = []
    where_a, where_b = pa.get("in"), pb.get("in")
    if where_a != where_b:
        body_involved = "body" in (where_a, where_b) or "formData" in (where_a, where_b)
        changes.append(
            Change(
                "input-moved", f"input {name!r} moved from {where_a} to {where_b}", body_involved
            )
        )
    label = f"{name!r} ({where_b})" if shared else repr(name)
    ta, tb = _ptype(pa), _ptype(pb)
    if ta != tb:
        changes.append(Change("input-retyped", f"input {label} type {ta} -> {tb}", True))
    if not pa.get("required") and pb.get("required"):
        changes.append(Change("input-now-required", f"input {label} is now required", True))
    internal = "internal" in (pa.get("x-ms-visibility"), pb.get("x-ms-visibility"))
    if internal and not same_json(pa.get("default"), pb.get("default")):
        # nobody sets an internal input: its default is what every call sends, existing flows
        # included (Notion-Version 2021-08-16 -> 2022-06-28 went unreported: review 2026-12-07)
        changes.append(
            Change(
                "input-default-changed",
                f"internal input {label} now sends {pb.get('default')!r} "
                f"(was {pa.get('default')!r}) in every call, existing flows included",
                False,
            )
        )
    return changes
