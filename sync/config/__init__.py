"""The sync map: load, validate against the JSON Schema, and expose typed views.

Validated on first use in each process (cached by path and modification time), never at import
time, so a broken map shows up as a clear ``ConfigError`` with the key path where it is used.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from sync.errors import ConfigError, SpecError
from sync.spec.parse import load_object

SCHEMA_PATH = Path(__file__).with_name("sync-map.schema.json")
TARGET_KINDS = ("folder", "dataverse", "powerapps")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# A run row lists its targets in one string property (Table Storage: 64 KiB, 32K UTF-16 units):
# 250 names of the longest kind (63 characters) take ~17K. Far more environments than any tenant
# runs one API in; past ~490 such names no run of the API could have been started.
MAX_TARGETS_PER_API = 250
SPEC_KINDS = ("url", "apimExport", "apiCenterExport", "blob")


@dataclass(frozen=True)
class TargetConfig:
    name: str
    kind: str  # folder | dataverse | powerapps
    params: Any  # the kind's block (a path string for folder, a dict otherwise)
    breaking: str
    overrides: dict[str, Any] = field(default_factory=dict)
    drift: str = "report"


@dataclass(frozen=True)
class ApiConfig:
    name: str
    spec_kind: str
    spec: dict[str, Any] | str
    allowed_spec_urls: tuple[str, ...]
    on: tuple[dict[str, Any], ...]
    overlay: Path | None
    breaking: str
    strict: bool
    drift: str
    debounce_seconds: int
    targets: tuple[TargetConfig, ...]

    def target(self, name: str) -> TargetConfig:
        for t in self.targets:
            if t.name == name:
                return t
        raise ConfigError(f"API {self.name!r} has no target {name!r}", path=f"apis.{self.name}")

    @property
    def spec_url(self) -> str | None:
        return self.spec if isinstance(self.spec, str) else None

    def allows_spec_url(self, url: str) -> bool:
        """A URL from an event or HTTP body is honoured only under a configured prefix.

        Compared by parts, not as strings: same scheme and host:port, path under the prefix's path
        at a segment boundary, no user info and no dot segments (``https://host`` must not admit
        ``https://host.evil.example`` nor ``https://host/../admin``).
        """
        return any(_under(url, prefix) for prefix in self.allowed_spec_urls)


def _under(url: str, prefix: str) -> bool:
    from urllib.parse import unquote, urlsplit

    try:
        got, allowed = urlsplit(url), urlsplit(prefix)
        # the scheme's own port written or not is one origin; a bad port is no match
        got_port = got.port or _DEFAULT_PORTS.get(got.scheme.lower())
        allowed_port = allowed.port or _DEFAULT_PORTS.get(allowed.scheme.lower())
    except ValueError:
        return False
    if got.scheme.lower() not in ("http", "https") or got.username or got.password:
        return False
    if (got.scheme.lower(), (got.hostname or "").lower(), got_port) != (
        allowed.scheme.lower(),
        (allowed.hostname or "").lower(),
        allowed_port,
    ):
        return False
    path = unquote(got.path) or "/"
    if any(part in (".", "..") for part in path.split("/")) or "\\" in path:
        return False
    base = unquote(allowed.path) or "/"  # compared decoded, as the URL's own path is
    if base.endswith("/"):
        return path.startswith(base)
    return path == base or path.startswith(base + "/")


@dataclass(frozen=True)
class SyncMap:
    source: str
    base_dir: Path
    cloud: str
    endpoints: dict[str, str]
    credentials: dict[str, dict[str, Any]]
    notify: dict[str, Any]
    apis: dict[str, ApiConfig]
    raw: dict[str, Any]

    def api(self, name: str) -> ApiConfig:
        try:
            return self.apis[name]
        except KeyError:
            raise ConfigError(f"unknown API {name!r}", path=f"apis.{name}") from None

    def resolve(self, relative: str) -> Path:
        """Paths in the map are relative to the map's own folder."""
        path = Path(relative)
        return path if path.is_absolute() else (self.base_dir / path)


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    # The schema itself is checked by a test, not in every process (~40 ms of a cold start).
    return Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def _key_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def _read_as(value: Any) -> str:
    """How the loader read an unquoted scalar, in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    return f"the number {value!r}"


def _as_written(error: Any, written: bytes | None) -> str | None:
    """The message for a string field whose unquoted value was read as a number, a boolean or
    null (``name: 010`` is the octal 8 in YAML 1.1), showing what was written, or None.

    Why refuse rather than take the text: editors check the map with the same schema and flag
    the value, so a loader that quietly took ``010`` for ``"010"`` would accept a map its own
    schema refuses, and other YAML tools reading the map would still see the number 8."""
    if written is None or error.validator != "type":
        return None
    wanted = error.validator_value  # "string", or a list of types
    if "string" not in ([wanted] if isinstance(wanted, str) else wanted):
        return None
    if not (error.instance is None or isinstance(error.instance, (bool, int, float))):
        return None
    from sync.spec.strict_yaml import written_scalar

    # the map loaded from these bytes, so they decode; JSON parses as YAML here too
    scalar = written_scalar(written.decode("utf-8-sig"), list(error.absolute_path))
    if not scalar:
        return None
    return (
        f"{scalar} is not a string: unquoted, it reads as {_read_as(error.instance)}; quote "
        f"it ('{scalar}') to mean the text"
    )


def _schema_errors(raw: dict[str, Any], written: bytes | None = None) -> list[tuple[str, str]]:
    from jsonschema.exceptions import best_match

    errors = list(_validator().iter_errors(raw))
    found: list[tuple[str, str]] = []
    for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        best = best_match([error]) if error.context else error
        found.append((_key_path(best.absolute_path), _as_written(best, written) or best.message))
    return found


def _schema_problems(raw: dict[str, Any], written: bytes | None = None) -> list[tuple[str, str]]:
    """``_schema_errors``, skipped when this exact map already passed this exact schema in an
    earlier process (see ``sync.config.schema_marker``) or passes the shipped quick check (see
    ``sync.config.map_check``): jsonschema is ~50 ms of a cold start. ``written``, the map's
    bytes, lets an error show a value as written rather than as loaded."""
    from sync.config import map_check, schema_marker

    if map_check.passes(raw):
        return []
    key = schema_marker.marker_key(raw, SCHEMA_PATH)
    if key is not None and schema_marker.passed_before(key):
        return []
    problems = _schema_errors(raw, written)
    if key is not None and not problems:
        schema_marker.remember_pass(key)
    return problems


def parse_map(
    raw: dict[str, Any], *, source: str, base_dir: Path, written: bytes | None = None
) -> SyncMap:
    """Validate a loaded map and build the typed view; raise ``ConfigError`` with the key path.
    ``written`` is the map's bytes, when it was read from some (see ``_as_written``)."""
    problems = _schema_problems(raw, written)
    if problems:
        path, message = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{message}{more}", path=f"{source}: {path}")
    credentials = dict(raw.get("credentials") or {})
    apis: dict[str, ApiConfig] = {}
    for name, api in raw["apis"].items():
        apis[name] = _api(name, api, credentials, source, base_dir)
    return SyncMap(
        source=source,
        base_dir=base_dir,
        cloud=raw.get("cloud", "public"),
        endpoints=dict(raw.get("endpoints") or {}),
        credentials=credentials,
        notify=dict(raw.get("notify") or {}),
        apis=apis,
        raw=raw,
    )


def _check_credential(params: Any, credentials: dict[str, Any], where: str) -> None:
    """A spec source's or a target's ``credential`` must name an entry of ``credentials``."""
    if (
        isinstance(params, dict)
        and "credential" in params
        and params["credential"] not in credentials
    ):
        raise ConfigError(
            f"credential {params['credential']!r} is not defined under 'credentials'",
            path=f"{where}.credential",
        )


# Dataverse's connector.displayname column holds 200 UTF-16 code units (an emoji counts 2); the
# schema's maxLength counts code points, so it lets through a name every PATCH would refuse.
# (sync.adapters.dataverse.DISPLAYNAME_UNITS; not imported: that module pulls in httpx.)
DATAVERSE_DISPLAYNAME_UNITS = 200


def _check_display_name(kind: str, params: Any, where: str) -> None:
    """A dataverse target's ``displayName`` must fit the column as Dataverse counts it: refused
    here, naming the key path, rather than cut (a silently changed configured value) or sent
    (an HTTP 400 on every run)."""
    if kind != "dataverse" or not isinstance(params, dict):
        return
    display = params.get("displayName")
    if not isinstance(display, str):
        return
    units = len(display.encode("utf-16-le", "surrogatepass")) // 2
    if units > DATAVERSE_DISPLAYNAME_UNITS:
        raise ConfigError(
            f"displayName is {units} UTF-16 code units; Dataverse's displayname column holds "
            f"at most {DATAVERSE_DISPLAYNAME_UNITS} (characters outside the Basic Multilingual "
            "Plane, such as emoji, count 2)",
            path=f"{where}.displayName",
        )


def _api(
    name: str, api: dict[str, Any], credentials: dict[str, Any], source: str, base_dir: Path
) -> ApiConfig:
    where = f"{source}: apis.{name}"
    spec_kind = next(iter(api["spec"]))
    spec_value = api["spec"][spec_kind]
    _check_credential(spec_value, credentials, f"{where}.spec.{spec_kind}")
    breaking = api.get("breaking", "warn")
    targets: list[TargetConfig] = []
    seen: set[str] = set()
    if len(api["targets"]) > MAX_TARGETS_PER_API:
        raise ConfigError(
            f"{len(api['targets'])} targets; an API may have at most {MAX_TARGETS_PER_API} (a "
            "run row lists them in one Table property of at most 64 KiB)",
            path=f"{where}.targets",
        )
    for index, target in enumerate(api["targets"]):
        kind = next(k for k in TARGET_KINDS if k in target)
        if target["name"] in seen:
            raise ConfigError(
                f"duplicate target name {target['name']!r}", path=f"{where}.targets[{index}].name"
            )
        seen.add(target["name"])
        params = target[kind]
        _check_credential(params, credentials, f"{where}.targets[{index}].{kind}")
        _check_display_name(kind, params, f"{where}.targets[{index}].{kind}")
        targets.append(
            TargetConfig(
                name=target["name"],
                kind=kind,
                params=params,
                breaking=target.get("breaking", breaking),
                overrides=dict(target.get("overrides") or {}),
                drift=target.get("drift", api.get("drift", "report")),
            )
        )
    overlay = None
    if "overlay" in api:
        overlay = Path(api["overlay"])
        overlay = overlay if overlay.is_absolute() else base_dir / overlay
        if not overlay.is_file():
            raise ConfigError(f"overlay file {str(overlay)!r} not found", path=f"{where}.overlay")
    return ApiConfig(
        name=name,
        spec_kind=spec_kind,
        spec=spec_value,
        allowed_spec_urls=tuple(api.get("allowedSpecUrls") or ()),
        on=tuple(api.get("on") or ()),
        overlay=overlay,
        breaking=breaking,
        strict=bool(api.get("strict", False)),
        drift=api.get("drift", "report"),
        debounce_seconds=int(api.get("debounceSeconds", 120)),
        targets=tuple(targets),
    )


def load_map_file(path: str | os.PathLike[str]) -> SyncMap:
    file = Path(path)
    try:
        raw_bytes = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read sync map: {exc.strerror}", path=str(file)) from None
    try:
        raw = load_object(raw_bytes, source=str(file))
    except SpecError as exc:
        raise ConfigError(exc.message, path=str(file)) from None
    return parse_map(raw, source=str(file), base_dir=file.resolve().parent, written=raw_bytes)


_lock = threading.Lock()
_cache: dict[str, tuple[float, SyncMap]] = {}


def load_map(path: str | None) -> SyncMap:
    """The map named by ``SYNC_CONFIG``, validated once per process and file version."""
    if not path:
        raise ConfigError("app setting SYNC_CONFIG is not set", path="SYNC_CONFIG")
    if path.lower().startswith(("https://", "http://")):  # a blob: see sync.config.remote
        from sync.config.remote import load_remote_map

        return load_remote_map(path)
    try:
        mtime = Path(path).stat().st_mtime
    except OSError:
        raise ConfigError(f"sync map {path!r} not found", path="SYNC_CONFIG") from None
    with _lock:
        hit = _cache.get(path)
        if hit and hit[0] == mtime:
            return hit[1]
    loaded = load_map_file(path)
    with _lock:
        _cache[path] = (mtime, loaded)
    return loaded
