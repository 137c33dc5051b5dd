"""OpenAPI 3.0 / 3.1 -> Swagger 2.0, the only version the Power Platform accepts.

Why a converter of our own: the platform editor's own down-conversion is undocumented and keeps
``allOf`` silently (PPC#2067); third-party converters fetch remote refs and drop what they cannot say
without telling anyone. Here every construct 2.0 cannot express lands in ``Normalized.losses`` with
its JSON path, so a reviewer sees exactly what the connector will not know about.

The strategies (also in docs/spec-engine.md):
- servers: the first one, variables set to their defaults; without root servers, the first per-path
  or per-operation server (all others are reported).
- ``components`` -> ``definitions`` / ``parameters`` / ``responses``; request bodies and headers are
  inlined where referenced (2.0 has no home for them); every ``$ref`` is rewritten.
- ``allOf`` is kept (2.0 has it); ``oneOf`` / ``anyOf``: a ``null`` alternative becomes
  ``x-nullable``; one remaining alternative is used as is; object alternatives become one object with
  the union of their properties (required = those every alternative requires); anything else becomes
  the first alternative. The latter two are losses.
- ``nullable`` and 3.1 ``type: [T, "null"]`` -> ``x-nullable: true``.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sync.errors import SpecError
from sync.spec.refs import escape, is_local, json_path, resolve, unescape

log = logging.getLogger(__name__)

METHODS_2 = ("get", "put", "post", "delete", "options", "head", "patch")
METHODS_3 = (*METHODS_2, "trace")

Path = tuple[str | int, ...]

# JSON Schema validation keywords that Swagger 2.0 allows both in a Schema Object and flat on a
# non-body Parameter / Items object (the spec defines the two by the same draft-04 sections).
_VALIDATION_KEYWORDS = (
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
)
_SCHEMA_KEEP = {
    "title",
    "description",
    "default",
    "multipleOf",
    *_VALIDATION_KEYWORDS,
    "maxProperties",
    "minProperties",
    "required",
    "enum",
    "type",
    "format",
    "readOnly",
    "xml",
    "externalDocs",
    "example",
}
_SCHEMA_NESTED = {"items", "additionalProperties", "properties", "allOf", "oneOf", "anyOf", "not"}
_PARAM_FLAT = (
    "type",
    "format",
    "items",
    "default",
    *_VALIDATION_KEYWORDS,
    "enum",
    "multipleOf",
)
_JSON_RX = re.compile(r"^(application/json|text/json|application/[^;]*\+json|\*/\*)(;.*)?$", re.I)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Backstop for inlining ``$ref``s that point outside components.schemas: recursion is cut where a
# ref comes back on its own path, but a wide non-recursive fan-out can still multiply; past this
# many schema nodes produced while inlining the document is refused rather than stalling a worker.
_INLINE_NODE_BUDGET = 100_000


# OpenAPI 3.0/3.1, Parameter Object: a header parameter with one of these names "SHALL be
# ignored" (the media types and the security schemes say them); converted, each action would
# show an input that fights the connector's own Content-Type or authentication.
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})


def _widened(first: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """A property several object alternatives define, as one schema that takes what each of
    them takes: the union of their enums (none when one has none or the types differ). The
    first alternative's alone made OpenAI's chat message accept role 'system' only (its five
    alternatives name one role each)."""
    if "enum" not in first or first == other:
        return first
    out = dict(first)
    more = other.get("enum")
    if (
        isinstance(more, list)
        and isinstance(first["enum"], list)
        and (first.get("type") == other.get("type"))
    ):
        out["enum"] = first["enum"] + [v for v in more if v not in first["enum"]]
    else:
        del out["enum"]
    return out


def _no_parameter_form(param: dict[str, Any]) -> str | None:
    """Why a 3.x parameter has no Swagger 2.0 counterpart (None: it has one)."""
    name = param.get("name")
    if param.get("in") == "cookie":
        return f"cookie parameter {name!r} has no 2.0 form"
    if param.get("in") == "header" and isinstance(name, str) and name.lower() in _IGNORED_HEADERS:
        return (
            f"header parameter {name!r} is ignored, as OpenAPI 3 requires (the media types and "
            "the security schemes say it)"
        )
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Normalized:
    """A Swagger 2.0 document and what the conversion could not carry over."""

    doc: dict[str, Any]
    losses: list[str] = field(default_factory=list)
    generated_operation_ids: list[str] = field(default_factory=list)
    source_version: str = "2.0"


def source_version(doc: Any) -> str:
    """``"2.0"`` or the ``openapi`` 3.x string; ``SpecError`` for anything else."""
    if not isinstance(doc, dict):
        raise SpecError("a spec must be a JSON/YAML object", where="(root)")
    if doc.get("swagger") == "2.0":
        return "2.0"
    version = doc.get("openapi")
    if isinstance(version, str) and re.fullmatch(r"3\.[01](\.\d+)?(-[\w.]+)?", version):
        return version
    found = doc.get("swagger", doc.get("openapi"))
    raise SpecError(
        f'neither swagger "2.0" nor openapi 3.0/3.1 (found {found!r})',
        where="swagger" if "swagger" in doc else "openapi",
    )


def operation_id_for(method: str, path: str) -> str:
    """Stable PascalCase id from method + path (coding standard: no ``-`` or ``_``)."""
    words = re.findall(r"[A-Za-z0-9]+", path)
    return method.capitalize() + "".join(w[:1].upper() + w[1:] for w in words)


def normalize(doc: dict[str, Any], *, owned: bool = False) -> Normalized:
    """Swagger 2.0 passes through; OpenAPI 3.x is converted with a loss report.

    A 2.0 document is deep-copied so the caller's object is never shared, unless the caller says
    it ``owned`` it and will not touch it again (a document it just parsed): the copy is ~20 ms of
    a 500 KB definition."""
    version = source_version(doc)
    if version == "2.0":
        return Normalized(doc=doc if owned else copy.deepcopy(doc), source_version="2.0")
    return _Converter(doc, version).run()


class _Converter:
    def __init__(self, src: dict[str, Any], version: str) -> None:
        self.src = src
        self.version = version
        self.is31 = version.startswith("3.1")
        self.losses: list[str] = []
        self.generated: list[str] = []
        self.dropped_params: set[str] = set()
        self.dropped_schemes: set[str] = set()
        self.scheme_scopes: dict[str, bool] = {}
        self.inlining: list[str] = []  # refs being inlined on the current _schema recursion path
        self.inlined_nodes = 0

    def loss(self, path: Path, what: str) -> None:
        self.losses.append(f"{json_path(path)}: {what}")

    # -- document --------------------------------------------------------------------------------

    def run(self) -> Normalized:
        src = self.src
        out: dict[str, Any] = {"swagger": "2.0"}
        out["info"] = self._info(src.get("info"))
        self._servers(out)
        comps = src.get("components")
        if not isinstance(comps, dict):
            comps = {}
        sec = self._security_definitions(comps.get("securitySchemes"))
        if sec:
            out["securityDefinitions"] = sec
        for key in ("tags", "externalDocs"):
            if key in src:
                out[key] = copy.deepcopy(src[key])
        out["paths"] = self._paths(src.get("paths") or {})
        defs = {
            name: self._schema(schema, ("components", "schemas", name))
            for name, schema in (comps.get("schemas") or {}).items()
        }
        if defs:
            out["definitions"] = defs
        params = {}
        for name, param in (comps.get("parameters") or {}).items():
            converted = self._parameter(param, ("components", "parameters", name))
            if converted is not None:
                params[name] = converted
        if params:
            out["parameters"] = params
        responses = {
            name: self._response(resp, ("components", "responses", name), set(), component=True)
            for name, resp in (comps.get("responses") or {}).items()
        }
        if responses:
            out["responses"] = responses
        if "security" in src:
            out["security"] = self._requirements(src["security"], ("security",))
        for key, value in src.items():
            if key.startswith("x-"):
                out[key] = copy.deepcopy(value)
        for key in ("webhooks", "jsonSchemaDialect"):
            if key in src:
                self.loss((key,), f"{key} cannot be expressed in Swagger 2.0; dropped")
        for key in ("examples", "links", "callbacks", "pathItems"):
            if key in comps:
                self.loss(("components", key), f"components.{key} has no Swagger 2.0 form; dropped")
        for key in comps:
            if key.startswith("x-"):
                self.loss(("components", key), "extension on components has no place in 2.0")
        # Parameters dropped from components (cookies) leave refs behind; drop those refs too.
        if self.dropped_params:
            self._strip_dropped_param_refs(out)
        return Normalized(
            doc=out,
            losses=self.losses,
            generated_operation_ids=self.generated,
            source_version=self.version,
        )

    def _info(self, info: Any) -> dict[str, Any]:
        if not isinstance(info, dict):
            return {"title": "", "version": ""}
        out = copy.deepcopy(info)
        if "summary" in out:
            del out["summary"]
            self.loss(("info", "summary"), "info.summary is 3.1 only; dropped")
        lic = out.get("license")
        if isinstance(lic, dict) and "identifier" in lic:
            del lic["identifier"]
            self.loss(("info", "license", "identifier"), "license identifier is 3.1 only; dropped")
        return out

    def _servers(self, out: dict[str, Any]) -> None:
        servers = self.src.get("servers")
        where: Path = ("servers",)
        if not servers:
            servers, where = self._first_inner_servers()
        if not servers:
            return
        if len(servers) > 1:
            self.loss(where, f"{len(servers) - 1} extra server(s) dropped; 2.0 has one host")
        server = servers[0] if isinstance(servers[0], dict) else {}
        url = str(server.get("url", ""))
        for name, var in (server.get("variables") or {}).items():
            url = url.replace("{" + name + "}", str((var or {}).get("default", "")))
        parts = urlsplit(url)
        if parts.scheme:
            out["schemes"] = [parts.scheme.lower()]
        if parts.netloc:
            out["host"] = parts.netloc
        base = parts.path.rstrip("/")
        if base:
            out["basePath"] = base if base.startswith("/") else "/" + base

    def _same_server(self, holder: dict[str, Any]) -> bool:
        """Per-path servers that repeat the root server lose nothing (Twilio writes them so)."""
        try:
            return holder["servers"][0]["url"] == self.src["servers"][0]["url"]
        except (KeyError, IndexError, TypeError):
            return False

    def _first_inner_servers(self) -> tuple[list[Any] | None, Path]:
        """No root servers: take per-path/per-operation ones, reporting any disagreement."""
        found: list[tuple[Path, list[Any]]] = []
        for path, item in (self.src.get("paths") or {}).items():
            if not isinstance(item, dict):
                continue
            if item.get("servers"):
                found.append((("paths", path, "servers"), item["servers"]))
            for method in METHODS_3:
                op = item.get(method)
                if isinstance(op, dict) and op.get("servers"):
                    found.append((("paths", path, method, "servers"), op["servers"]))
        if not found:
            return None, ("servers",)
        first_path, first = found[0]
        urls = {str((s[0] or {}).get("url")) for _, s in found if s and isinstance(s[0], dict)}
        if len(urls) > 1:
            self.loss(first_path, f"paths use {len(urls)} different servers; the first one is used")
        return first, first_path

    # -- security ---------------------------------------------------------------------------------

    def _security_definitions(self, schemes: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, scheme in (schemes or {}).items():
            path: Path = ("components", "securitySchemes", name)
            converted = self._security_scheme(scheme, path)
            if converted is None:
                self.dropped_schemes.add(name)
            else:
                out[name] = converted
        return out

    def _security_scheme(self, scheme: Any, path: Path) -> dict[str, Any] | None:
        if not isinstance(scheme, dict):
            self.loss(path, "security scheme is not an object; dropped")
            return None
        kind = scheme.get("type")
        ext = {k: copy.deepcopy(v) for k, v in scheme.items() if k.startswith("x-")}
        desc = {"description": scheme["description"]} if "description" in scheme else {}
        if kind == "apiKey":
            where = scheme.get("in")
            if where not in ("query", "header"):
                self.loss(path, f"apiKey in {where!r} has no Swagger 2.0 form; dropped")
                return None
            return {"type": "apiKey", "name": scheme.get("name"), "in": where, **desc, **ext}
        if kind == "http":
            http = str(scheme.get("scheme", "")).lower()
            if http == "basic":
                return {"type": "basic", **desc, **ext}
            if http == "bearer":
                self.loss(
                    path, "http bearer became apiKey header 'Authorization' (2.0 has no bearer)"
                )
                return {"type": "apiKey", "name": "Authorization", "in": "header", **desc, **ext}
            self.loss(path, f"http scheme {http!r} has no Swagger 2.0 form; dropped")
            return None
        if kind == "oauth2":
            flows = scheme.get("flows") or {}
            order = ("authorizationCode", "implicit", "password", "clientCredentials")
            present = [f for f in order if f in flows]
            if not present:
                self.loss(path, "oauth2 scheme without flows; dropped")
                return None
            chosen = present[0]
            if len(present) > 1:
                self.loss(
                    path, f"oauth2 flows {present[1:]} dropped; 2.0 allows one flow per scheme"
                )
            flow = flows[chosen] or {}
            if "refreshUrl" in flow:
                self.loss((*path, "flows", chosen, "refreshUrl"), "refreshUrl has no 2.0 form")
            name2 = {
                "authorizationCode": "accessCode",
                "implicit": "implicit",
                "password": "password",
                "clientCredentials": "application",
            }[chosen]
            out: dict[str, Any] = {"type": "oauth2", "flow": name2}
            if chosen in ("authorizationCode", "implicit"):
                out["authorizationUrl"] = flow.get("authorizationUrl", "")
            if chosen != "implicit":
                out["tokenUrl"] = flow.get("tokenUrl", "")
            out["scopes"] = copy.deepcopy(flow.get("scopes") or {})
            return {**out, **desc, **ext}
        self.loss(path, f"security scheme type {kind!r} has no Swagger 2.0 form; dropped")
        return None

    def _requirements(self, reqs: Any, path: Path) -> list[Any]:
        out = []
        for index, req in enumerate(reqs or []):
            if not isinstance(req, dict):
                continue
            kept = {k: list(v or []) for k, v in req.items() if k not in self.dropped_schemes}
            if len(kept) != len(req):
                self.loss((*path, index), "requirement on a dropped security scheme removed")
            if kept or not req:
                out.append(kept)
        return out

    # -- paths and operations ---------------------------------------------------------------------

    def _paths(self, paths: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        taken = {
            op.get("operationId")
            for item in paths.values()
            if isinstance(item, dict)
            for m in METHODS_3
            if isinstance(op := item.get(m), dict)
        }
        for path, item in paths.items():
            where: Path = ("paths", path)
            if not isinstance(item, dict):
                continue
            if "$ref" in item:
                self.loss(where, "path item $ref cannot be kept; dropped")
            new_item: dict[str, Any] = {}
            for key in ("summary", "description"):
                if key in item:
                    self.loss((*where, key), f"path-level {key} has no 2.0 form; dropped")
            if item.get("servers") and self.src.get("servers") and not self._same_server(item):
                self.loss((*where, "servers"), "per-path servers differ from the host; dropped")
            shared = self._parameters(item.get("parameters"), (*where, "parameters"))
            if shared:
                new_item["parameters"] = shared
            for method in METHODS_3:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                if method == "trace":
                    self.loss((*where, method), "TRACE operations have no 2.0 form; dropped")
                    continue
                new_item[method] = self._operation(op, path, method, taken)
            for key, value in item.items():
                if key.startswith("x-"):
                    new_item[key] = copy.deepcopy(value)
            out[path] = new_item
        return out

    def _operation(
        self, op: dict[str, Any], path: str, method: str, taken: set[Any]
    ) -> dict[str, Any]:
        where: Path = ("paths", path, method)
        out: dict[str, Any] = {}
        for key in ("tags", "summary", "description", "externalDocs", "operationId", "deprecated"):
            if key in op:
                out[key] = copy.deepcopy(op[key])
        if not out.get("operationId"):
            base = operation_id_for(method, path)
            candidate, n = base, 2
            while candidate in taken:
                candidate, n = f"{base}{n}", n + 1
            taken.add(candidate)
            out["operationId"] = candidate
            self.generated.append(candidate)
        params = self._parameters(op.get("parameters"), (*where, "parameters"))
        consumes: list[str] = []
        if "requestBody" in op:
            body_params, consumes = self._request_body(op["requestBody"], (*where, "requestBody"))
            params.extend(body_params)
        if consumes:
            out["consumes"] = consumes
        produces: list[str] = []
        responses: dict[str, Any] = {}
        for code, resp in (op.get("responses") or {}).items():
            code_s = str(code)
            rpath = (*where, "responses", code_s)
            if not re.fullmatch(r"\d{3}|default", code_s):
                mapped = code_s[0] + "00" if re.fullmatch(r"[1-5]XX", code_s.upper()) else None
                if mapped is None or mapped in (op.get("responses") or {}):
                    self.loss(rpath, f"response code {code_s!r} has no 2.0 form; dropped")
                    continue
                self.loss(rpath, f"response range {code_s!r} became {mapped!r}")
                code_s = mapped
            media: set[str] = set()
            responses[code_s] = self._response(resp, rpath, media)
            produces.extend(m for m in sorted(media) if m not in produces)
        if produces:
            out["produces"] = produces
        if params:
            out["parameters"] = params
        out["responses"] = responses or {"default": {"description": ""}}
        if "security" in op:
            out["security"] = self._requirements(op["security"], (*where, "security"))
        for key in ("callbacks", "servers"):
            if key == "servers" and (not self.src.get("servers") or self._same_server(op)):
                continue
            if key in op:
                self.loss((*where, key), f"operation {key} have no 2.0 form; dropped")
        for key, value in op.items():
            if key.startswith("x-"):
                out[key] = copy.deepcopy(value)
        return out

    # -- parameters -------------------------------------------------------------------------------

    def _parameters(self, params: Any, path: Path) -> list[Any]:
        out = []
        for index, param in enumerate(params or []):
            if isinstance(param, dict) and isinstance(param.get("$ref"), str):
                ref = param["$ref"]
                if ref.startswith("#/components/parameters/"):
                    name = unescape(ref.split("/", 3)[3])
                    if name in self.dropped_params or self._dropped_ref(ref):
                        self.loss((*path, index), f"parameter {ref} dropped (see its own entry)")
                        continue
                    out.append({"$ref": "#/parameters/" + escape(name)})
                    continue
                try:
                    param = resolve(self.src, ref)
                except KeyError:
                    out.append({"$ref": self._ref(ref)})
                    continue
            converted = self._parameter(param, (*path, index))
            if converted is not None:
                out.append(converted)
        return out

    def _dropped_ref(self, ref: str) -> bool:
        try:
            target = resolve(self.src, ref)
        except KeyError:
            return False
        return isinstance(target, dict) and _no_parameter_form(target) is not None

    def _parameter(self, param: Any, path: Path) -> dict[str, Any] | None:
        if not isinstance(param, dict):
            self.loss(path, "parameter is not an object; dropped")
            return None
        where = param.get("in")
        why = _no_parameter_form(param)
        if why is not None:
            self.loss(path, f"{why}; dropped")
            if path[:2] == ("components", "parameters"):
                self.dropped_params.add(str(path[2]))
            return None
        out: dict[str, Any] = {"name": param.get("name"), "in": where}
        for key in ("description", "required", "allowEmptyValue"):
            if key in param:
                out[key] = copy.deepcopy(param[key])
        if where == "path":
            out["required"] = True
        schema = param.get("schema")
        if schema is None and isinstance(param.get("content"), dict):
            self.loss(path, "parameter 'content' serialization has no 2.0 form; typed as string")
            out["type"] = "string"
        elif isinstance(schema, dict):
            flat = self._flat_schema(schema, (*path, "schema"))
            out.update(flat)
            if out.get("type") == "array":
                out["collectionFormat"] = self._collection_format(param, where)
        else:
            out["type"] = "string"
        for key in ("example", "examples", "deprecated", "style", "explode", "allowReserved"):
            if key in param and key not in ("style", "explode"):
                self.loss((*path, key), f"parameter {key} has no 2.0 form; dropped")
        for key, value in param.items():
            if key.startswith("x-"):
                out[key] = copy.deepcopy(value)
        return out

    @staticmethod
    def _collection_format(param: dict[str, Any], where: Any) -> str:
        style = param.get("style") or ("form" if where in ("query", "cookie") else "simple")
        explode = param.get("explode", style == "form")
        if style == "form":
            return "multi" if explode else "csv"
        return {"spaceDelimited": "ssv", "pipeDelimited": "pipes"}.get(style, "csv")

    def _flat_schema(self, schema: dict[str, Any], path: Path, depth: int = 0) -> dict[str, Any]:
        """A non-body parameter/header carries its type inline; resolve refs to get at it."""
        seen = 0
        while isinstance(schema.get("$ref"), str) and seen < 32:
            try:
                schema = resolve(self.src, schema["$ref"])
            except KeyError:
                self.loss(path, f"unresolved {schema['$ref']}; typed as string")
                return {"type": "string"}
            seen += 1
        schema, nullable = self._flat_merge(schema, path)
        converted = self._schema(schema, path, note=False)
        if nullable:
            converted["x-nullable"] = True
        out: dict[str, Any] = {}
        for key in _PARAM_FLAT:
            if key in converted:
                out[key] = converted[key]
        if converted.get("x-nullable"):
            out["x-nullable"] = True
        if out.get("type") in (None, "object"):
            if out.get("type") == "object" or "properties" in converted:
                self.loss(path, "object-typed parameter has no 2.0 form; typed as string")
            out["type"] = "string"
            out.pop("items", None)
        if out.get("type") == "array":
            items = out.get("items")
            if isinstance(items, dict) and "$ref" in items and depth < 4:
                try:
                    target = resolve(self.src, self._back_ref(items["$ref"]))
                    out["items"] = self._flat_schema(target, (*path, "items"), depth + 1)
                except KeyError:
                    out["items"] = {"type": "string"}
            elif not isinstance(items, dict) or "type" not in items:
                out["items"] = {"type": "string"}
        return out

    def _flat_merge(
        self, schema: dict[str, Any], path: Path, depth: int = 0
    ) -> tuple[dict[str, Any], bool]:
        """Fold ``allOf`` / ``oneOf`` / ``anyOf`` (following ``$ref``) into one flat schema.

        A parameter or header has a single inline type: ``allOf`` members are merged (enums
        intersected, bounds tightened); a ``null`` alternative becomes ``x-nullable``; one remaining
        alternative is merged as is; several are reduced to the first one (loss entry). Returns
        the merged schema and whether it is nullable."""
        merged = {k: v for k, v in schema.items() if k not in ("allOf", "oneOf", "anyOf")}
        nullable = False
        members: list[tuple[Path, Any]] = []
        all_of = schema.get("allOf")
        if isinstance(all_of, list):
            members.extend(((*path, "allOf", i), m) for i, m in enumerate(all_of))
        for key in ("oneOf", "anyOf"):
            alts = schema.get(key)
            if not isinstance(alts, list):
                continue
            kept = []
            for index, alt in enumerate(alts):
                target = self._deref(alt, "")
                if isinstance(target, dict) and (
                    target.get("type") == "null"
                    or target == {"nullable": True}
                    or target.get("enum") == [None]
                ):
                    nullable = True
                else:
                    kept.append((index, alt))
            if len(kept) > 1:
                self.loss(
                    (*path, key),
                    f"{key} with {len(kept)} alternatives reduced to the first one: a parameter "
                    "or header has one type in 2.0",
                )
            if kept:
                members.append(((*path, key, kept[0][0]), kept[0][1]))
        for mpath, member in members:
            target = self._deref(member, "")
            if not isinstance(target, dict) or depth >= 16:
                self.loss(mpath, "composition member unresolved; ignored")
                continue
            target, member_nullable = self._flat_merge(target, mpath, depth + 1)
            nullable = nullable or member_nullable
            for key, value in target.items():
                if key not in merged:
                    merged[key] = copy.deepcopy(value)
                elif merged[key] == value:
                    continue
                elif key == "enum" and isinstance(value, list) and isinstance(merged[key], list):
                    merged[key] = [v for v in merged[key] if v in value]
                elif key in ("minimum", "minLength", "minItems") and _is_number(value):
                    merged[key] = max(merged[key], value) if _is_number(merged[key]) else value
                elif key in ("maximum", "maxLength", "maxItems") and _is_number(value):
                    merged[key] = min(merged[key], value) if _is_number(merged[key]) else value
                elif key == "type":
                    self.loss(
                        mpath, f"type {value!r} conflicts with {merged[key]!r}; kept the latter"
                    )
        return merged, nullable

    @staticmethod
    def _back_ref(ref: str) -> str:
        """The 3.x location a rewritten 2.0 ref came from."""
        for new, old in (("#/definitions/", "#/components/schemas/"),):
            if ref.startswith(new):
                return old + ref[len(new) :]
        return ref

    # -- bodies and responses ---------------------------------------------------------------------

    def _deref(self, node: Any, prefix: str) -> Any:
        seen = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 32:
            try:
                node = resolve(self.src, node["$ref"])
            except KeyError:
                return None
            seen += 1
        return node

    def _request_body(self, body: Any, path: Path) -> tuple[list[dict[str, Any]], list[str]]:
        body = self._deref(body, "#/components/requestBodies/")
        if not isinstance(body, dict):
            self.loss(path, "requestBody unresolved; dropped")
            return [], []
        content = body.get("content") or {}
        types = list(content)
        json_types = [t for t in types if _JSON_RX.match(t)]
        form_types = [t for t in types if t.split(";")[0].strip().lower() in _FORM_TYPES]
        other_types = [t for t in types if t not in json_types and t not in form_types]
        required = bool(body.get("required"))
        if json_types or (other_types and not form_types):
            chosen = json_types[0] if json_types else other_types[0]
            consumes = json_types + other_types
            if form_types:
                self.loss(
                    path, f"form media {form_types} dropped: 2.0 cannot mix body and formData"
                )
            media = content.get(chosen) or {}
            param: dict[str, Any] = {"name": body.get("x-bodyName", "body"), "in": "body"}
            if "description" in body:
                param["description"] = body["description"]
            param["required"] = required
            param["schema"] = self._schema(media.get("schema") or {}, (*path, "content", chosen))
            self._media_losses(media, (*path, "content", chosen))
            for key, value in body.items():
                if key.startswith("x-") and key != "x-bodyName":
                    param[key] = copy.deepcopy(value)
            return [param], consumes
        if form_types:
            chosen = form_types[0]
            if other_types:
                self.loss(path, f"media {other_types} dropped beside form data")
            media = content.get(chosen) or {}
            self._media_losses(media, (*path, "content", chosen))
            return self._form_params(media.get("schema") or {}, (*path, "content", chosen)), [
                *form_types
            ]
        return [], []

    def _media_losses(self, media: dict[str, Any], path: Path) -> None:
        for key in ("examples", "encoding"):
            if key in media:
                self.loss((*path, key), f"media type {key} have no 2.0 form; dropped")

    def _form_object(
        self, schema: Any, path: Path, depth: int = 0
    ) -> tuple[dict[str, Any], set[str], bool]:
        """Properties, required names and whether additionalProperties are allowed, for a form
        schema: ``$ref``s followed, ``allOf`` members merged, ``oneOf``/``anyOf`` object
        alternatives united (required = what every alternative requires; loss entry)."""
        schema = self._deref(schema, "#/components/schemas/")
        if not isinstance(schema, dict) or depth >= 16:
            self.loss(path, "form schema unresolved; ignored")
            return {}, set(), False
        props: dict[str, Any] = dict(schema.get("properties") or {})
        required = set(schema.get("required") or [])
        extra = schema.get("additionalProperties") not in (None, False)
        for i, member in enumerate(schema.get("allOf") or []):
            m_props, m_req, m_extra = self._form_object(member, (*path, "allOf", i), depth + 1)
            for name, prop in m_props.items():
                props.setdefault(name, prop)
            required |= m_req
            extra = extra or m_extra
        for key in ("oneOf", "anyOf"):
            alts = schema.get(key)
            if not isinstance(alts, list) or not alts:
                continue
            req_sets = []
            for i, alt in enumerate(alts):
                a_props, a_req, a_extra = self._form_object(alt, (*path, key, i), depth + 1)
                for name, prop in a_props.items():
                    props.setdefault(name, prop)
                req_sets.append(a_req)
                extra = extra or a_extra
            required |= set.intersection(*req_sets)
            self.loss(
                (*path, key),
                f"form {key} with {len(alts)} alternatives merged into one set of form fields",
            )
        return props, required, extra

    def _form_params(self, schema: Any, path: Path) -> list[dict[str, Any]]:
        props, required, extra = self._form_object(schema, (*path, "schema"))
        if not props:
            self.loss(path, "form schema has no properties; no formData parameters")
        out = []
        for name, prop in props.items():
            ppath = (*path, "schema", "properties", name)
            resolved = self._deref(prop, "#/components/schemas/") or {}
            param: dict[str, Any] = {"name": name, "in": "formData", "required": name in required}
            if "description" in resolved:
                param["description"] = resolved["description"]
            if resolved.get("format") == "binary" or resolved.get("contentMediaType"):
                param["type"] = "file"
            else:
                flat = self._flat_schema(resolved, ppath)
                param.update(flat)
                if param.get("type") == "array":
                    param["collectionFormat"] = "multi"
            out.append(param)
        if extra:
            self.loss(path, "form additionalProperties have no 2.0 form; dropped")
        return out

    def _response(
        self, resp: Any, path: Path, media_out: set[str], component: bool = False
    ) -> dict[str, Any]:
        """``component``: an entry of components.responses, where 2.0 wants a Response Object
        (not a ``$ref``), so a ref chain there is followed and its target inlined."""
        if isinstance(resp, dict) and isinstance(resp.get("$ref"), str):
            ref = resp["$ref"]
            if ref.startswith("#/components/responses/") and not component:
                target = self._deref(resp, "")
                if isinstance(target, dict):
                    media_out.update(target.get("content") or {})
                return {"$ref": "#/responses/" + ref.split("/", 3)[3]}
            resp = self._deref(resp, "")
        if not isinstance(resp, dict) or isinstance(resp.get("$ref"), str):
            self.loss(path, "response unresolved; description only")
            return {"description": ""}
        out: dict[str, Any] = {"description": resp.get("description", "")}
        content = resp.get("content") or {}
        if content:
            types = list(content)
            media_out.update(types)
            chosen = next((t for t in types if _JSON_RX.match(t)), types[0])
            media = content.get(chosen) or {}
            if media.get("schema") is not None:
                out["schema"] = self._schema(media["schema"], (*path, "content", chosen, "schema"))
            examples = {t: content[t]["example"] for t in types if "example" in (content[t] or {})}
            if examples:
                out["examples"] = copy.deepcopy(examples)
            self._media_losses(media, (*path, "content", chosen))
        headers = {}
        for name, header in (resp.get("headers") or {}).items():
            hpath = (*path, "headers", name)
            header = self._deref(header, "")
            if not isinstance(header, dict):
                continue
            flat = self._flat_schema(header.get("schema") or {"type": "string"}, hpath)
            if "description" in header:
                flat = {"description": header["description"], **flat}
            headers[name] = flat
        if headers:
            out["headers"] = headers
        if "links" in resp:
            self.loss((*path, "links"), "response links have no 2.0 form; dropped")
        for key, value in resp.items():
            if key.startswith("x-"):
                out[key] = copy.deepcopy(value)
        return out

    # -- schemas ----------------------------------------------------------------------------------

    def _ref(self, ref: str) -> str:
        if not is_local(ref):
            return ref
        for old, new in (
            ("#/components/schemas/", "#/definitions/"),
            ("#/components/parameters/", "#/parameters/"),
            ("#/components/responses/", "#/responses/"),
        ):
            if ref.startswith(old):
                return new + ref[len(old) :]
        return ref

    def _schema(self, schema: Any, path: Path, note: bool = True) -> Any:
        if isinstance(schema, bool):
            return {} if schema else {"x-ms-visibility": "internal"}
        if not isinstance(schema, dict):
            return schema
        if self.inlining:
            self.inlined_nodes += 1
            if self.inlined_nodes > _INLINE_NODE_BUDGET:
                info = self.src.get("info")
                if not isinstance(info, dict):
                    info = {}
                raise SpecError(
                    f"document {info.get('title', '')!r} {info.get('version', '')!r}: inlining "
                    f"$refs outside components.schemas exceeds {_INLINE_NODE_BUDGET} schema "
                    f"nodes (last {self.inlining[-1]})",
                    where=json_path(path),
                )
        if isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            new = self._ref(ref)
            if not new.startswith(("#/definitions/", "#/parameters/", "#/responses/")):
                if ref in self.inlining:
                    self.loss(path, f"recursive $ref {ref} cannot be inlined in 2.0; left untyped")
                    return {}
                target = self._deref(schema, "")
                if isinstance(target, dict) and "$ref" not in target and len(path) < 64:
                    self.loss(path, f"$ref {ref} outside components.schemas was inlined")
                    self.inlining.append(ref)
                    try:
                        return self._schema(target, path, note)
                    finally:
                        self.inlining.pop()
            extra = [k for k in schema if k != "$ref" and not k.startswith("x-")]
            if extra and note:
                self.loss(path, f"keywords beside $ref dropped: {sorted(extra)}")
            return {"$ref": new}
        out: dict[str, Any] = {}
        nullable = False
        for key, value in schema.items():
            if key in _SCHEMA_KEEP or key.startswith("x-"):
                out[key] = copy.deepcopy(value)
            elif key == "nullable":
                nullable = bool(value)
            elif key == "const":
                out["enum"] = [copy.deepcopy(value)]
            elif key == "examples" and isinstance(value, list):
                if value:
                    out["example"] = copy.deepcopy(value[0])
            elif key == "discriminator":
                if isinstance(value, dict):
                    out["discriminator"] = value.get("propertyName")
                    if "mapping" in value and note:
                        self.loss((*path, key), "discriminator mapping has no 2.0 form; dropped")
                else:
                    out["discriminator"] = value
            elif key in _SCHEMA_NESTED:
                continue
            elif note:
                self.loss((*path, key), f"schema keyword {key!r} has no 2.0 form; dropped")
        stype = out.get("type")
        if isinstance(stype, list):
            kinds = [t for t in stype if t != "null"]
            nullable = nullable or len(kinds) < len(stype)
            if len(kinds) == 1:
                out["type"] = kinds[0]
            else:
                del out["type"]
                if kinds and note:
                    self.loss((*path, "type"), f"multiple types {kinds} cannot be said in 2.0")
        elif stype == "null":
            del out["type"]
            nullable = True
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if isinstance(out.get(key), (int, float)) and not isinstance(out[key], bool):
                out["minimum" if key == "exclusiveMinimum" else "maximum"] = out[key]
                out[key] = True
        if "items" in schema:
            items = schema["items"]
            out["items"] = (
                self._schema(items, (*path, "items"), note) if isinstance(items, dict) else {}
            )
        if "properties" in schema and isinstance(schema["properties"], dict):
            out["properties"] = {
                name: self._schema(prop, (*path, "properties", name), note)
                for name, prop in schema["properties"].items()
            }
        if "additionalProperties" in schema:
            extra = schema["additionalProperties"]
            out["additionalProperties"] = (
                self._schema(extra, (*path, "additionalProperties"), note)
                if isinstance(extra, dict)
                else extra
            )
        if "allOf" in schema and isinstance(schema["allOf"], list):
            out["allOf"] = [
                self._schema(s, (*path, "allOf", i), note) for i, s in enumerate(schema["allOf"])
            ]
        if "not" in schema and note:
            self.loss((*path, "not"), "'not' has no 2.0 form; dropped")
        for key in ("oneOf", "anyOf"):
            if isinstance(schema.get(key), list):
                nullable = self._alternatives(schema[key], out, (*path, key), note) or nullable
        if out.get("type") == "array" and "items" not in out:
            out["items"] = {}
        if nullable:
            out["x-nullable"] = True
        return out

    def _alternatives(self, alts: list[Any], out: dict[str, Any], path: Path, note: bool) -> bool:
        """Fold oneOf/anyOf into ``out``; returns whether a null alternative was present."""
        nullable = False
        kept: list[tuple[int, Any]] = []
        for index, alt in enumerate(alts):
            if isinstance(alt, dict) and (
                alt.get("type") == "null" or alt == {"nullable": True} or alt.get("enum") == [None]
            ):
                nullable = True
            else:
                kept.append((index, alt))
        if not kept:
            return nullable
        if len(kept) == 1:
            index, alt = kept[0]
            converted = self._schema(alt, (*path, index), note)
            self._fold(out, converted)
            return nullable
        resolved = [self._deref(alt, "") for _, alt in kept]
        if all(
            isinstance(r, dict) and (r.get("type") == "object" or "properties" in r)
            for r in resolved
        ):
            props: dict[str, Any] = {}
            required_sets = []
            for (index, _), r in zip(kept, resolved, strict=True):
                for name, prop in (r.get("properties") or {}).items():
                    converted = self._schema(prop, (*path, index, "properties", name), note)
                    props[name] = (
                        converted if name not in props else _widened(props[name], converted)
                    )
                required_sets.append(set(r.get("required") or []))
            union: dict[str, Any] = {"type": "object", "properties": props}
            common = set.intersection(*required_sets) if required_sets else set()
            if common:
                union["required"] = [n for n in props if n in common]
            self._fold(out, union)
            if note:
                self.loss(path, f"{len(kept)} object alternatives merged into one object")
            return nullable
        index, alt = kept[0]
        self._fold(out, self._schema(alt, (*path, index), note))
        if note:
            self.loss(path, f"{len(kept)} alternatives reduced to the first one")
        return nullable

    @staticmethod
    def _fold(out: dict[str, Any], alt: dict[str, Any]) -> None:
        """Merge a chosen alternative into the schema that held oneOf/anyOf."""
        if "$ref" in alt:
            if out and set(out) - {"description", "title", "example", "default"}:
                out.setdefault("allOf", []).append(alt)
            elif out:
                out["allOf"] = [alt]
            else:
                out["$ref"] = alt["$ref"]
            return
        for key, value in alt.items():
            if key == "properties" and isinstance(out.get("properties"), dict):
                for name, prop in value.items():
                    out["properties"].setdefault(name, prop)
            elif key == "required" and isinstance(out.get("required"), list):
                out["required"] = list(dict.fromkeys([*out["required"], *value]))
            else:
                out.setdefault(key, value)

    def _strip_dropped_param_refs(self, out: dict[str, Any]) -> None:
        gone = {"#/parameters/" + escape(n) for n in self.dropped_params}
        for item in out["paths"].values():
            for holder in [item, *(item.get(m) for m in METHODS_2)]:
                if isinstance(holder, dict) and isinstance(holder.get("parameters"), list):
                    holder["parameters"] = [
                        p
                        for p in holder["parameters"]
                        if not (isinstance(p, dict) and p.get("$ref") in gone)
                    ]
