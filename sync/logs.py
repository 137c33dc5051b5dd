"""Structured logs: one JSON object per record, with the run's correlation fields on every line.

Why the message itself is JSON: the Functions Python worker forwards only the formatted message
to the host (``extra={...}`` never becomes custom dimensions, and the host even drops the logger
name), so anything an operator wants to query in Application Insights must be inside the text.

Why a log-record factory and not a handler filter: the worker installs its own root handlers
(and pytest, the CLI or an OpenTelemetry handler may add more later); a factory sees every
record once, whoever handles it. The factory does not render at creation time: ``extra=`` is
applied by ``Logger.makeRecord`` *after* the factory runs, so the record's ``msg`` becomes a small
object that renders the JSON when a handler first asks for the message, and every handler then
gets the same string. Only ``sync.*`` and ``function_app`` records are touched; the Azure SDK's
and the worker's own lines pass unchanged.

Context (run_id, event_id, api, target, stage, trace_id) lives in a ``ContextVar`` set by
``log_context``; it follows the code path, not the thread, and is reset on exit so a reused
worker thread never leaks one invocation's ids into the next.

Installed by ``install()`` on first invocation (``sync.triggers``) or by ``configure_logging`` (CLI);
never at import time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import threading
import traceback
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sync.redact import SECRET_NAMES

QUIET = ("azure", "azure.core.pipeline.policies.http_logging_policy", "httpx", "httpcore", "msal")

JSON_LOGGERS = ("sync", "function_app")
CONTEXT_FIELDS = ("run_id", "event_id", "api", "target", "stage", "trace_id")
# Always present (null when unknown), so a KQL query never has to guess whether a column exists.
REQUIRED_FIELDS = (*CONTEXT_FIELDS, "outcome", "duration_ms", "tracking_id")

_context: ContextVar[Mapping[str, Any]] = ContextVar("sync_log_context", default={})  # noqa: B039

# --- correlation context ------------------------------------------------------------------------


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields to every ``sync`` log record inside the block (None values are ignored)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def set_stage(stage: str) -> None:
    """Mark the pipeline stage for the records that follow, up to the end of the enclosing
    ``log_context`` (which restores the previous value); a one-line call keeps the stage code
    free of extra nesting."""
    _context.set({**_context.get(), "stage": stage})


def current_context() -> dict[str, Any]:
    return dict(_context.get())


# --- W3C trace context ----------------------------------------------------------------------------

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a valid W3C ``traceparent`` (version 00..fe, non-zero ids), else None.

    An invalid header is ignored rather than refused: a publisher's bad tracing header must never
    cost a sync, it only costs the correlation.
    """
    if not isinstance(traceparent, str) or len(traceparent) > 256:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if not match:
        return None
    version, trace_id, parent_id, _ = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def ensure_traceparent(traceparent: str | None) -> str:
    """The given traceparent when valid (lower-cased), else a fresh one (a new trace starts here)."""
    if trace_id_of(traceparent) is not None:
        return str(traceparent).strip().lower()
    return new_traceparent()


# --- redaction ------------------------------------------------------------------------------------

_URL_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#'\"<>]+)\?[^\s'\"<>#]*")
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s?#@'\"<>]+@")
# Secret names that are ordinary words in free text, masked in URLs only: ``code`` is the code
# of an error body ({"code": "InvalidSwagger"}), so only code=... (OAuth, Functions) is masked;
# ``key`` and ``token`` name Python variables in the tracebacks logged (``key = operation_key(``,
# a JSON-pointer ``token``) and non-secret dict entries. Suffixes (``SECRET_QUERY_SUFFIXES``) are
# not used here either: in free text they would hide e.g. Table storage's "RowKey".
_NOT_IN_LOG_TEXT = frozenset({"code", "key", "token"})
_LOG_SECRET_NAMES = sorted(SECRET_NAMES - _NOT_IN_LOG_TEXT)
# key=value (connection strings, form bodies), "key": "value" (JSON) and 'key': 'value' (a dict's
# repr, e.g. an MSAL result); ``code`` only as code=... (see above).
_KEY_VALUE = re.compile(
    r"(?i)(?P<key>(?P<q>[\"']?)\b(?:"
    + "|".join(re.escape(name) for name in _LOG_SECRET_NAMES)
    + r")(?P=q)\s*[:=]\s*"
    r"|\bcode=)"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^;&\s'\",}]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[a-z0-9._~+/=-]{8,}")
# base64 of user:password; the look-ahead (a digit, an upper-case letter after the first, or
# padding) keeps prose such as "Basic authentication" readable
_BASIC = re.compile(
    r"\b([Bb]asic|BASIC)\s+(?=[A-Za-z0-9+/][A-Za-z0-9+/]*[A-Z0-9+/=])[A-Za-z0-9+/]{8,}=*"
)
_SECRET_ENV = re.compile(r"(?i)^SYNC_SECRET_|SECRET|PASSWORD|TOKEN|ACCOUNTKEY|_KEY$")
KEEP_VALUES_PER_NAME = 2


class RecentSecrets:
    """The last ``keep`` values seen of each named secret, to mask in text.

    Why bounded per name: a delegated credential's refresh token rotates about hourly and each
    redeemed access token is new, so "every value ever seen" grows for the life of the process and
    every log line is scanned for all of them. A new value of a name replaces its oldest; the one
    before it is kept too (``keep`` = 2), because a message about the previous value (an error of
    the grant that redeemed it, an in-flight item's log) may still be written after the rotation.
    A value seen again moves back to the newest, so a value still in use is never dropped by a
    rotation of another copy of it.
    """

    def __init__(self, keep: int = KEEP_VALUES_PER_NAME, *, min_length: int = 6) -> None:
        self._keep = max(1, keep)
        self._min_length = min_length
        self._by_name: dict[Hashable, list[str]] = {}
        self._values: tuple[str, ...] = ()  # every kept value, longest first (see ``values``)
        self._lock = threading.Lock()

    def remember(self, name: Hashable, value: str | None) -> str | None:
        """Keep ``value`` as the newest of ``name``; returns it (to wrap a read)."""
        if not value or len(value) < self._min_length:
            return value
        with self._lock:
            kept = self._by_name.setdefault(name, [])
            if kept and kept[-1] == value:
                return value
            if value in kept:
                kept.remove(value)
            kept.append(value)
            del kept[: -self._keep]
            every = {v for values in self._by_name.values() for v in values}
            self._values = tuple(sorted(every, key=len, reverse=True))
        return value

    def values(self) -> tuple[str, ...]:
        """The kept values, longest first (a value inside a longer one is masked with it)."""
        return self._values

    def scrub(self, text: str, mask: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, mask)
        return text


_registered: set[str] = set()  # values with no name: fixed for the process (environment)
_registered_lock = threading.Lock()
_named = RecentSecrets()  # (owner, name) -> the last values of a secret that may rotate


def register_secret(
    value: str | None, *, owner: str | None = None, name: str | None = None
) -> None:
    """Adapters that fetch a secret at run time (vault, token endpoints) may register its value so
    it is masked even if some message or exception text ever carries it.

    With ``owner`` and ``name`` (a vault URL and a secret name), a new value of that secret
    replaces its old ones but the newest ``KEEP_VALUES_PER_NAME`` (``RecentSecrets``): a rotated
    refresh token must not stay registered, and scanned on every log line, for ever. Without them
    the value is kept for the life of the process (values that never change, e.g. environment
    variables).
    """
    if not value or len(value) < 6:
        return
    if owner is not None and name is not None:
        _named.remember((owner, name), value)
        return
    with _registered_lock:
        _registered.add(value)


def _secret_values() -> list[str]:
    values = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 6}
    with _registered_lock:
        values |= _registered
    values.update(_named.values())
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """Mask what must never reach a log: secret values, URL query strings (SAS signatures,
    webhook ``sig``) and userinfo, key=value / "key": "value" credentials, Basic and Bearer
    credentials."""
    for value in _secret_values():
        if value in text:
            text = text.replace(value, "<redacted>")
    text = _USERINFO.sub(r"\1<redacted>@", text)
    text = _URL_QUERY.sub(r"\1?<redacted>", text)
    text = _KEY_VALUE.sub(_masked_value, text)
    text = _BASIC.sub(r"\1 <redacted>", text)
    return _BEARER.sub(r"\1 <redacted>", text)


def _masked_value(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['key']}{quote}<redacted>{quote}"


# --- rendering ------------------------------------------------------------------------------------

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return redact(str(value))


def _tracking_id(exc: BaseException | None) -> str | None:
    """Power Platform's request id (``TargetError.tracking_id``), also through ``__cause__``."""
    seen = 0
    while exc is not None and seen < 5:
        tracking = getattr(exc, "tracking_id", None)
        if tracking:
            return str(tracking)
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def render(record: logging.LogRecord, msg: Any, args: Any, context: Mapping[str, Any]) -> str:
    """The one JSON line for a record (extras on the record win over the context)."""
    try:
        message = str(msg) % args if args else str(msg)
    except (TypeError, ValueError):
        message = f"{msg} {args!r}"
    data: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "message": redact(message),
    }
    data.update({name: None for name in REQUIRED_FIELDS})
    data.update({k: _jsonable(v) for k, v in context.items()})
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            data[key] = _jsonable(value)
    exc_info = getattr(record, "_sync_exc_info", None)
    if exc_info and exc_info[1] is not None:
        exc = exc_info[1]
        data["error"] = type(exc).__name__
        data["tracking_id"] = data.get("tracking_id") or _tracking_id(exc)
        data["exception"] = redact("".join(traceback.format_exception(*exc_info))[-8000:])
    return json.dumps(data, ensure_ascii=False, default=str)


class _JsonMessage:
    """Stands in for ``record.msg``; renders (once) when a handler formats the record."""

    __slots__ = ("_args", "_context", "_msg", "_record", "_text")

    def __init__(self, record: logging.LogRecord, msg: Any, args: Any) -> None:
        self._record = record
        self._msg = msg
        self._args = args
        self._context = _context.get()
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            self._text = render(self._record, self._msg, self._args, self._context)
        return self._text

    def __repr__(self) -> str:
        return repr(str(self))


def wants_json(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in JSON_LOGGERS)


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Make every ``sync.*``/``function_app`` record a JSON message (idempotent, thread-safe),
    at the level the SYNC_LOG_LEVEL app setting asks for (read on every trigger call)."""
    global _installed
    _apply_level()
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if wants_json(record.name) and not isinstance(record.msg, _JsonMessage):
                record.msg = _JsonMessage(record, record.msg, record.args)
                record.args = ()
                if record.exc_info:
                    # folded into the JSON, so a formatter does not append a traceback after it
                    record._sync_exc_info = record.exc_info
                    record.exc_info = None
                    record.exc_text = None
            return record

        logging.setLogRecordFactory(factory)
        for name in HTTPCORE_LOGGERS:
            logging.getLogger(name).addFilter(_RedactHttpcore())
        _installed = True


# httpcore's loggers log each response's headers at DEBUG, a redirect's Location with its SAS
# ``sig`` among them; a filter on a logger only sees that logger's own records, so each has one.
HTTPCORE_LOGGERS = (
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


class _RedactHttpcore(logging.Filter):
    """httpcore's DEBUG lines are preformatted text (the exchange's values spelled out): masked
    as every log text is (``redact``). Found in review on 2026-12-07: with every logger at
    DEBUG, a spec URL redirecting to a signed download logged the signature in clear."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_warned_levels: set[str] = set()


def level_setting() -> str | None:
    """The SYNC_LOG_LEVEL app setting, stripped and upper-cased, when it names a level; None when
    unset or unknown. An unknown value is ignored (a bad log level must not stop a trigger or a
    command) with a one-line warning on stderr, once per value."""
    from sync.settings import LOG_LEVEL

    raw = os.environ.get(LOG_LEVEL, "")
    level = raw.strip().upper()
    if level in LEVELS:
        return level
    if level and raw not in _warned_levels:
        _warned_levels.add(raw)
        print(
            f"warning: app setting {LOG_LEVEL}={raw[:64]!r} is not one of {', '.join(LEVELS)}; "
            "ignored",
            file=sys.stderr,
        )
    return None


def _apply_level() -> None:
    level = level_setting()
    if level:
        for name in ("sync", "function_app"):
            logging.getLogger(name).setLevel(level)


def configure_logging(level: str | None = None) -> None:
    """CLI set-up: one stderr handler, message only (each ``sync`` line is already JSON), at
    ``level`` (``--verbose``), else the SYNC_LOG_LEVEL app setting, else WARNING."""
    install()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    chosen = (level or "").strip().upper()
    root.setLevel(chosen if chosen in LEVELS else level_setting() or "WARNING")
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def traced(request: Any) -> Any:
    """A ``SyncRequest`` carrying a valid traceparent (its own, or a new trace started here)."""
    from dataclasses import replace

    traceparent = ensure_traceparent(request.traceparent)
    return (
        request if traceparent == request.traceparent else replace(request, traceparent=traceparent)
    )


def work_context(item: Any) -> dict[str, Any]:
    """The correlation fields of a ``WorkItem`` (what every worker record carries)."""
    return {
        "run_id": item.run_id,
        "api": item.api,
        "target": item.target,
        "event_id": item.request.event_id,
        "trace_id": trace_id_of(item.request.traceparent),
    }
