"""Validation in two tiers: errors for what the platform refuses, warnings for everything else.

Why two tiers: a sync that stops on every style finding would never ship; a sync that writes a
definition the platform will refuse wastes a lease and a PATCH. *Errors* are only the rules the
platform enforces on create/update (2.0 only, size, unique operationIds, resolvable refs, path
parameters, one body, <= 256 operations). The JSON Schema / openapi-spec-validator findings and the
certification rules are *warnings* unless ``strict=True``.

Speed: openapi-spec-validator walks the whole document through jsonschema-path and takes ~1 s for
1 MB. The hot path is a fastjsonschema-compiled check of the same Swagger 2.0 JSON Schema; only when
that finds something (or ``strict``) does the full validator run, to list every finding, and its
result is cached by the document's canonical SHA-256. ``validator_name()`` says which one ran last.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sync.lru import Lru
from sync.spec.canonical import (
    compact_bytes,
    compact_size,
    encoded_in_parts,
    entry_digests,
    sha256_hex,
)
from sync.spec.refs import Scan, is_local, json_path, kept_scan, resolve, scan

log = logging.getLogger(__name__)

MAX_OPERATIONS = 256
METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
VISIBILITY = ("important", "advanced", "internal")
TRIGGER = ("batch", "single")
_DRAFT4_URL = "http://json-schema.org/draft-04/schema"
_CACHE_SIZE = 32

_lock = threading.Lock()
_compiled: Any = None
_full_cache: OrderedDict[str, list[str]] = OrderedDict()
_last_validator = "none"


@dataclass
class ValidationReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "info": list(self.info),
        }


def validator_name() -> str:
    """Which structural validator ran in the last ``validate`` call (for logs and bench output)."""
    return _last_validator


def validate(
    doc: dict[str, Any],
    *,
    limit_bytes: int | None = None,
    strict: bool = False,
    encoded: bytes | None = None,
) -> ValidationReport:
    """Check a Swagger 2.0 definition; every message starts with the JSON path it is about.
    ``encoded``: the document's compact JSON, when the caller has it (the size check uses it).
    A document passed to ``compact_bytes_kept`` or ``check_refs(keep=True)`` is checked with
    what those kept of it (entry hashes, the walk): it must not have changed since."""
    report = ValidationReport()
    digests: dict[tuple[str, str], bytes] | None = None
    try:
        # what a platform receives: JSON has no NaN or Infinity
        if encoded is None and (parts := encoded_in_parts(doc)) is not None:
            # made entry by entry: the structural check then keys the entries by these hashes
            # instead of encoding each of them again (~25 ms at 1 MB)
            encoded, digests = parts
        size = len(compact_bytes(doc)) if encoded is None else len(encoded)
    except ValueError:
        size = compact_size(doc)
        report.errors.append(
            f"{_non_finite_path(doc)}: NaN or Infinity (e.g. YAML '.inf'), which JSON cannot "
            "carry; no platform accepts the definition"
        )
    report.info.append(f"(root): {size} bytes compact JSON")
    if limit_bytes is not None and size > limit_bytes:
        report.errors.append(
            f"(root): definition is {size} bytes as compact JSON, over the limit of {limit_bytes} bytes"
        )
    if not isinstance(doc, dict) or doc.get("swagger") != "2.0":
        found = doc.get("swagger", doc.get("openapi")) if isinstance(doc, dict) else None
        report.errors.append(
            f'swagger: must be "2.0" (the platform accepts nothing else), got {found!r}'
        )
        return report
    found = kept_scan(doc) or scan(doc)  # the $ref guard's walk, when it was of this object
    external = _ref_errors(doc, found.refs, report)
    _operation_errors(doc, report)
    _security_errors(doc, report)
    if not external:
        report.warnings.extend(_structural(doc, full=strict, digests=digests))
    _certification_warnings(doc, report)
    report.warnings.extend(_extension_warnings(found))
    if strict and report.warnings:
        report.errors.extend(f"{w} (strict)" for w in report.warnings)
        report.warnings = []
    return report


# -- platform errors ------------------------------------------------------------------------------


def _extension_warnings(found: Scan) -> list[str]:
    warnings: list[str] = []
    for path, key, value in found.extensions:
        allowed = VISIBILITY if key == "x-ms-visibility" else TRIGGER
        if value not in allowed:
            warnings.append(f"{json_path((*path, key))}: {value!r} is not one of {list(allowed)}")
    return warnings


def _ref_errors(
    doc: dict[str, Any], refs: list[tuple[tuple[str | int, ...], str]], report: ValidationReport
) -> bool:
    """Unresolved local refs are errors; external ones too (and keep the library away)."""
    external = False
    for path, ref in refs:
        where = json_path(path)
        if not is_local(ref):
            report.errors.append(f"{where}: non-local $ref {ref[:200]!r} is not allowed")
            external = True
            continue
        try:
            resolve(doc, ref)
        except KeyError:
            report.errors.append(f"{where}: $ref {ref!r} does not resolve")
    return external


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    paths = doc.get("paths")
    out: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
    if not isinstance(paths, dict):
        return out
    for path, item in paths.items():
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                out.append((path, method, op, item))
    return out


def _param(doc: dict[str, Any], param: Any) -> Any:
    if isinstance(param, dict) and isinstance(param.get("$ref"), str):
        try:
            return resolve(doc, param["$ref"])
        except KeyError:
            return None
    return param


def _operation_errors(doc: dict[str, Any], report: ValidationReport) -> None:
    ops = _operations(doc)
    if len(ops) > MAX_OPERATIONS:
        report.errors.append(
            f"paths: {len(ops)} operations, over the platform maximum of {MAX_OPERATIONS}"
        )
    seen: dict[str, str] = {}
    for path, method, op, item in ops:
        where = json_path(("paths", path, method))
        op_id = op.get("operationId")
        if isinstance(op_id, str) and op_id:
            if op_id in seen:
                report.errors.append(
                    f"{where}.operationId: duplicate operationId {op_id!r} (also at {seen[op_id]})"
                )
            else:
                seen[op_id] = where
        params: dict[tuple[str, str], Any] = {}
        for holder in (item.get("parameters"), op.get("parameters")):
            for raw in holder if isinstance(holder, list) else []:
                param = _param(doc, raw)
                if isinstance(param, dict):
                    params[(str(param.get("name")), str(param.get("in")))] = param
        template = set(re.findall(r"{([^}/]+)}", path))
        declared = {name for name, where_in in params if where_in == "path"}
        for name in sorted(template - declared):
            report.errors.append(
                f"{where}: path template {{{name}}} has no path parameter {name!r}"
            )
        for name in sorted(declared - template):
            report.errors.append(
                f"{where}.parameters: path parameter {name!r} is not in the path template"
            )
        bodies = [n for n, i in params if i == "body"]
        if len(bodies) > 1:
            report.errors.append(f"{where}.parameters: {len(bodies)} body parameters (max one)")
        if bodies and any(i == "formData" for _, i in params):
            report.errors.append(f"{where}.parameters: body and formData parameters mixed")


# -- structural findings --------------------------------------------------------------------------


def _package_file(package: str, relative: str) -> dict[str, Any]:
    """A JSON file shipped inside ``package``, read without importing the package: the
    __init__ of openapi_spec_validator (and jsonschema_specifications) pulls in the whole
    validator stack, ~150 ms of every cold start, only to read one schema."""
    import json
    from importlib.util import find_spec

    found = find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise RuntimeError(f"{package} is not installed (it ships {relative})")
    folder = next(iter(found.submodule_search_locations))
    with open(f"{folder}/{relative}", encoding="utf-8") as handle:
        return json.load(handle)


def _swagger2_schema() -> dict[str, Any]:
    return _package_file("openapi_spec_validator", "resources/schemas/v2.0/schema.json")


def _draft4_metaschema(uri: str) -> dict[str, Any]:
    """The only remote schema the Swagger 2.0 schema names; served locally, never fetched."""
    if uri.rstrip("#") != _DRAFT4_URL:
        raise ValueError(f"refusing to fetch schema {uri!r}")
    return _package_file("jsonschema_specifications", "schemas/draft4/metaschema.json")


# The members whose entries the Swagger 2.0 schema checks one by one, each against one definition
# of its own (``paths`` entries starting with "/" against ``pathItem``, every ``definitions`` entry
# against ``schema``), with the names fastjsonschema gives those definitions' generated functions.
_SHARDS = (
    ("paths", "/", "validate___definitions_pathitem"),
    ("definitions", "", "validate___definitions_schema"),
)
_VERIFIED_SIZE = 8192
_VERIFIED = Lru(_VERIFIED_SIZE)  # (member, sha256 of the entry's compact JSON) -> True: passed
_VERIFIED_STORE_WRITES = True  # off only where a measurement must not leave entries behind
_MEMBER_TAGS = {"paths": b"p", "definitions": b"d"}  # how a key is stored on disk: tag + digest
_VERIFIED_PREFIX = "verified_v1_"  # a new way of keying entries must change the version here
_VERIFIED_KEEP = 4  # files of other validators (older schemas, fastjsonschema versions) pruned


@dataclass(frozen=True)
class _FastValidator:
    """The generated Swagger 2.0 validator and, where its module has them, the functions that
    check one path item or one schema: ``check`` uses them to check each entry once per content."""

    root: Any
    parts: tuple[tuple[str, str, Any], ...] = ()
    store: str | None = None  # private-cache entry of the verified keys (see _load_verified)

    def check(
        self, doc: dict[str, Any], digests: dict[tuple[str, str], bytes] | None = None
    ) -> None:
        """Raise ``JsonSchemaException`` exactly where the whole-document validator would.

        Why in parts: a new version of an API changes a few operations, and checking 512 KB
        against the schema costs ~23 ms of every update's CPU. The schema checks every path
        item and every definition on its own (``patternProperties`` / ``additionalProperties``
        of a ``$ref``, no cross-entry rule), so the document passes iff its shell (those entries
        as ``{}``, which both definitions accept) passes and each entry passes its definition.
        An entry that passed is remembered by the hash of its content, not its identity
        (``digests``: those hashes, made by the caller with the document's compact JSON)."""
        if not self.parts:
            self.root(doc)
            return
        shell = dict(doc)
        entries: list[tuple[str, str, Any, dict[str, Any]]] = []
        for member, prefix, entry_check in self.parts:
            value = doc.get(member)
            if not isinstance(value, dict):
                continue  # the shell check reports it
            emptied: dict[str, Any] = {}
            for name, entry in value.items():
                if isinstance(entry, dict) and isinstance(name, str) and name.startswith(prefix):
                    emptied[name] = {}
                    entries.append((member, name, entry_check, entry))
                else:
                    emptied[name] = entry
            shell[member] = emptied
        self.root(shell)
        added = False
        known = digests or entry_digests(doc) or {}  # hashed when the document was encoded
        for member, name, entry_check, entry in entries:
            digest = known.get((member, name))
            if digest is None:
                encoded = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
                digest = hashlib.sha256(encoded.encode()).digest()
            key = (member, digest)
            if _VERIFIED.get(key) is None:
                entry_check(entry, name_prefix=f"data.{member}.{name}")
                _VERIFIED.put(key, True)
                added = True
        if added and self.store and _VERIFIED_STORE_WRITES:
            _save_verified(self.store)


def _fast_validator() -> _FastValidator:
    global _compiled
    with _lock:
        if _compiled is None:
            namespace = _load_compiled(_swagger2_schema())
            parts = tuple(
                (member, prefix, namespace[function])
                for member, prefix, function in _SHARDS
                if callable(namespace.get(function))
            )
            # all or nothing: a fastjsonschema that names its functions otherwise checks whole
            if len(parts) != len(_SHARDS):
                _compiled = _FastValidator(namespace["validate"])
            else:
                # v1: the entry's compact JSON (",", ":", not ASCII-escaped), sha256, tag p/d
                store = f"{_VERIFIED_PREFIX}{namespace['__connector_sync_key__']}.bin"
                _load_verified(store)
                _compiled = _FastValidator(namespace["validate"], parts, store)
        return _compiled


def _load_verified(store: str) -> None:
    """Entries earlier processes verified against this very schema and fastjsonschema (the name
    carries the validator's key): a CLI run on a new version of an API then checks only what
    changed, as a warm worker does. Read only from the private cache folder (no one else can
    write there, as for the compiled validator); anything unreadable is ignored."""
    from sync import private_cache

    try:
        data = private_cache.read_bytes(store) or b""
    except OSError:
        return
    with contextlib.suppress(OSError):  # a failed prune must not throw away what was read
        private_cache.prune(_VERIFIED_PREFIX, _VERIFIED_KEEP)
    tags = {tag: member for member, tag in _MEMBER_TAGS.items()}
    for at in range(0, len(data) - len(data) % 33, 33):
        member = tags.get(data[at : at + 1])
        if member is not None:
            _VERIFIED.put((member, data[at + 1 : at + 33]), True)


def _save_verified(store: str) -> None:
    """Write the verified keys (at most the Lru's 8192, 33 bytes each) for the next process."""
    from sync import private_cache

    data = b"".join(_MEMBER_TAGS[member] + digest for member, digest in _VERIFIED.snapshot())
    try:
        private_cache.write_bytes(store, data)
    except OSError as exc:
        log.debug("verified entries not kept (%s)", exc)


# What ``with_fstrings`` does to the generated source; part of the compiled validator's key, so a
# change here never loads bytecode made from the source as it was edited before.
_SOURCE_EDITS = "fstrings-v1"
# A string literal of plain text and ``{name}`` fields, formatted with the caller's locals: how
# fastjsonschema spells the name of every nested value it checks (``"[{data_x}]"``, ...).
_FORMAT_LOCALS = re.compile(
    r'"((?:[^"\\{}]|\{[A-Za-z_][A-Za-z0-9_]*\})*)"\.format\(\*\*locals\(\)\)'
)


def with_fstrings(source: str) -> str:
    """The generated validator with ``"...{name}...".format(**locals())`` spelled as the
    f-string it means. The generated code names every value it descends into that way, valid
    or not, and each ``locals()`` copies the function's local variables into a new dict: on a
    1 MB definition that was ~30% of the check (222 -> 157 ms). A field is a plain local
    variable name, so the f-string reads exactly what the format call did; literals with
    anything else (escapes, quotes, format specs) are left as they are."""
    return _FORMAT_LOCALS.sub(lambda found: f'f"{found.group(1)}"', source)


SHIPPED_MODULE = "sync.spec.swagger2_validator"  # written by scripts/generate_validator.py


def generated_source(schema: dict[str, Any]) -> str:
    """The validator module fastjsonschema writes for ``schema``, as this module runs it."""
    import fastjsonschema

    options: dict[str, Any] = {"handlers": {"http": _draft4_metaschema}, "use_default": False}
    # compile_to_code's draft-04 output forgets the Decimal import its code uses
    return with_fstrings(
        "from decimal import Decimal\n" + fastjsonschema.compile_to_code(schema, **options)
    )


def generated_source_key(schema: dict[str, Any]) -> str:
    """What ``generated_source`` depends on: the schema, fastjsonschema's version, our edits."""
    import fastjsonschema

    return hashlib.sha256(
        (json.dumps(schema, sort_keys=True) + fastjsonschema.VERSION + _SOURCE_EDITS).encode()
    ).hexdigest()[:16]


def _shipped_code(source_key: str) -> Any:
    """The code of the validator module shipped in the package, when it was generated from what
    this process would generate it from and is whole (``sync.shipped_code``; None otherwise).

    Why shipped: generating it costs ~90 ms and compiling its 600 KB of source ~190 ms, once per
    machine with the private cache below, but a CI agent or a new Function App instance is a
    new machine every time. As a module of the package its bytecode is Python's own .pyc (made
    by pip or compileall, ~12 ms to load); without one it is compiled from the shipped source,
    still without generating it."""
    from sync.shipped_code import shipped_code

    return shipped_code(SHIPPED_MODULE, source_key)


def _load_compiled(schema: dict[str, Any]) -> dict[str, Any]:
    """The module fastjsonschema generates for ``schema`` (its ``validate`` and one function per
    definition), generated once per machine, not per process.

    Generating and compiling the validator for the Swagger 2.0 schema costs ~170 ms in every new
    process (a cold Function App instance, every CLI call). Its compiled bytecode is kept in the
    temp folder (marshal, keyed by the schema, the fastjsonschema version and the Python bytecode
    magic), so later processes load it in a few ms, even where PYTHONDONTWRITEBYTECODE or a
    read-only package folder stops Python's own .pyc cache. Any problem with that folder falls
    back to compiling in memory.
    """
    import importlib.util
    import marshal

    from sync import private_cache

    source_key = generated_source_key(schema)
    key = hashlib.sha256((source_key + importlib.util.MAGIC_NUMBER.hex()).encode()).hexdigest()[:16]
    name = f"swagger2_{key}.bin"

    def generate() -> Any:
        return compile(generated_source(schema), f"<swagger2 validator {key}>", "exec")

    def run(code: Any) -> dict[str, Any]:
        namespace: dict[str, Any] = {
            "__name__": f"_connector_sync_swagger2_{key}",
            "__connector_sync_key__": key,  # names what is kept for this very validator
        }
        exec(code, namespace)  # noqa: S102 - our own generated validator, from our own cache
        if not callable(namespace.get("validate")):
            raise KeyError("validate")
        return namespace

    try:
        # bytecode is only loaded from a folder no one else can write to (see sync.private_cache)
        cached = private_cache.read_bytes(name)
        if cached is not None:
            return run(marshal.loads(cached))  # noqa: S302 - our own bytecode, private folder
        code = _shipped_code(source_key) or generate()
        namespace = run(code)  # kept for the next process only once it ran as a validator
        try:
            private_cache.write_bytes(name, marshal.dumps(code))
        except (OSError, ValueError) as exc:
            log.debug("compiled validator not kept (%s)", exc)
        return namespace
    except (OSError, ValueError, EOFError, TypeError, SyntaxError, KeyError, NameError) as exc:
        # generated here, in memory: neither the cache's nor the shipped code runs again
        log.debug("compiled validator cache or shipped module unusable (%s); generating", exc)
        return run(generate())


def _structural(
    doc: dict[str, Any], *, full: bool, digests: dict[tuple[str, str], bytes] | None = None
) -> list[str]:
    global _last_validator
    import fastjsonschema

    if not full:
        try:
            _fast_validator().check(doc, digests)
            _last_validator = "fastjsonschema"
            return []
        except fastjsonschema.JsonSchemaException:
            pass  # list every finding with the full validator below
    key = sha256_hex(doc)
    with _lock:
        cached = _full_cache.get(key)
        if cached is not None:
            _full_cache.move_to_end(key)
    _last_validator = "openapi-spec-validator"
    if cached is not None:
        return list(cached)
    findings = _full_findings(doc)
    with _lock:
        _full_cache[key] = findings
        while len(_full_cache) > _CACHE_SIZE:
            _full_cache.popitem(last=False)
    return list(findings)


def _full_findings(doc: dict[str, Any]) -> list[str]:
    import copy

    from openapi_spec_validator import OpenAPIV2SpecValidator

    findings = []
    # The validator writes into the document it is given (seen with 0.9.0); hand it a copy.
    for err in OpenAPIV2SpecValidator(copy.deepcopy(doc)).iter_errors():
        path = list(getattr(err, "absolute_path", None) or getattr(err, "path", None) or [])
        message = str(getattr(err, "message", err)).split("\n")[0][:300]
        findings.append(f"{json_path(path)}: {message}")
    return sorted(set(findings))


# -- certification rules --------------------------------------------------------------------------


# OAuth grants a custom connector cannot use: the docs say client credentials ("for example,
# application and password") are not supported, and the platform turns `flow: application` into
# `accessCode` on update (PowerPlatformConnectors #708), so the connector would sign users in
# with a flow its API never offered and the read-back would not match what was written.
_UNSUPPORTED_FLOWS = {
    "application": "the client credentials grant",
    "password": "the resource owner password grant",
}


def _security_errors(doc: dict[str, Any], report: ValidationReport) -> None:
    definitions = doc.get("securityDefinitions")
    if not isinstance(definitions, dict):
        return
    for name, scheme in definitions.items():
        if not isinstance(scheme, dict) or scheme.get("type") != "oauth2":
            continue
        flow = scheme.get("flow")
        if isinstance(flow, str) and flow in _UNSUPPORTED_FLOWS:
            where = json_path(("securityDefinitions", str(name), "flow"))
            report.errors.append(
                f"{where}: {flow!r} ({_UNSUPPORTED_FLOWS[flow]}) is not supported by custom "
                "connectors; the platform replaces it with 'accessCode' (use the authorization "
                "code flow, or an API key)"
            )


def _certification_warnings(doc: dict[str, Any], report: ValidationReport) -> None:
    info = doc.get("info")
    if not isinstance(info, dict):
        info = {}
    title = info.get("title")
    if isinstance(title, str) and len(title) > 30:
        report.warnings.append(f"info.title: {len(title)} characters, certification allows 30")
    desc = info.get("description")
    if not isinstance(desc, str) or not 30 <= len(desc) <= 500:
        length = len(desc) if isinstance(desc, str) else 0
        report.warnings.append(
            f"info.description: {length} characters, certification wants 30 to 500"
        )
    if "x-ms-connector-metadata" not in doc:
        report.warnings.append(
            "x-ms-connector-metadata: missing (Website, Privacy policy, Categories)"
        )
    for path, method, op, _item in _operations(doc):
        where = json_path(("paths", path, method, "summary"))
        summary = op.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            report.warnings.append(f"{where}: missing operation summary")
        elif len(summary) > 80:
            report.warnings.append(f"{where}: {len(summary)} characters, certification allows 80")


def _non_finite_path(doc: Any) -> str:
    """JSON path of the first NaN/Infinity (only walked once encoding has refused one)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(doc, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return json_path(path)
        if isinstance(node, dict):
            stack.extend((v, (*path, k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(node))
    return "(root)"
