"""Read Event Grid and CloudEvents 1.0 events, tolerant of spelling, strict about meaning.

Published samples disagree on spelling (``Type``/``Time``, ``specVersion``, ``metaDataVersion``,
a numeric ``specversion``), so attribute names are matched without case. What decides routing
(``id``, the type, the topic/source, the subject) must be present and be strings; anything else is a
``MalformedEvent`` naming the attribute, never a ``KeyError`` or ``TypeError`` deep in the planner.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sync.events.model import Event, MalformedEvent, Schema, has_unpaired_surrogate

log = logging.getLogger(__name__)

# Event Grid delivers at most 1 MB per event and batches up to 1 MB (a bigger single event is sent
# alone); the extra 64 KiB leaves room for the array and whitespace around the largest legal event.
MAX_BODY_BYTES = 1_048_576 + 65_536
# Event Grid's documented ceiling for events per delivered batch.
MAX_EVENTS = 5_000
MAX_ID_CHARS = 512
MAX_ATTR_CHARS = 4_096
# An event time further ahead of this host's clock counts as its arrival time (see _time).
MAX_CLOCK_SKEW = timedelta(minutes=5)
_SUPPORTED_SPECVERSIONS = ("1.0", "1")


def _lookup(raw: Mapping[str, Any], name: str, *, where: str | None) -> tuple[bool, Any]:
    """Find an attribute whatever its case; two spellings with different values is ambiguous."""
    found = [(name, raw[name])] if name in raw else []
    folded = name.casefold()
    for key, value in raw.items():
        if key != name and isinstance(key, str) and key.casefold() == folded:
            found.append((key, value))
    if not found:
        return False, None
    if any(value != found[0][1] for _, value in found[1:]):
        keys = ", ".join(repr(k) for k, _ in found)
        raise MalformedEvent(
            f"given more than once with different values ({keys})", field=name, where=where
        )
    return True, found[0][1]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _string(
    raw: Mapping[str, Any], name: str, *, where: str | None, required: bool, empty_ok: bool = False
) -> str | None:
    present, value = _lookup(raw, name, where=where)
    if not present or value is None:
        if required:
            raise MalformedEvent("is missing", field=name, where=where)
        return None
    if not isinstance(value, str):
        raise MalformedEvent(
            f"must be a string, got {type(value).__name__} {_short(value)}", field=name, where=where
        )
    if not value and not empty_ok:
        raise MalformedEvent("must not be empty", field=name, where=where)
    limit = MAX_ID_CHARS if name == "id" else MAX_ATTR_CHARS
    if len(value) > limit:
        raise MalformedEvent(f"is longer than {limit} characters", field=name, where=where)
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in value):
        raise MalformedEvent("contains control characters", field=name, where=where)
    if has_unpaired_surrogate(value):
        raise MalformedEvent("contains an unpaired surrogate", field=name, where=where)
    return value


def _time(raw: Mapping[str, Any], name: str, *, where: str | None) -> str | None:
    """UTC, fixed width (microseconds always shown) so ISO strings sort as times do."""
    present, value = _lookup(raw, name, where=where)
    if not present or value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and "T" in value.upper() and len(value) <= 64:
        try:
            # RFC 3339 allows "t" and "z", which Python 3.11 refuses; "T" and "Z" are the only
            # letters of a valid one, so upper-casing changes nothing else
            moment = datetime.fromisoformat(value.strip().upper())
        except ValueError:
            raise MalformedEvent(
                f"is not an ISO-8601 date-time: {_short(value)}", field=name, where=where
            ) from None
    else:
        raise MalformedEvent(
            f"is not an ISO-8601 date-time: {_short(value)}", field=name, where=where
        )
    in_utc = _in_utc(moment)
    if in_utc is None:
        raise MalformedEvent(
            f"is outside the range of dates: {_short(value)}", field=name, where=where
        )
    moment = in_utc
    arrived = datetime.now(UTC)
    if moment > arrived + MAX_CLOCK_SKEW:
        # Events naming a spec are ordered by time, and one from the future would make every
        # later event look older than it for good: it counts as having happened on arrival.
        log.warning(
            "event %s %s is more than %s ahead of this host's clock; its arrival time is used",
            name,
            moment.isoformat(),
            MAX_CLOCK_SKEW,
        )
        moment = arrived
    return _fixed_width(moment)


def _in_utc(moment: datetime) -> datetime | None:
    """``moment`` in UTC (one without an offset read as UTC); None when it has no UTC form, as
    9999-12-31T23:30:00-01:00, past the last datetime in UTC."""
    try:
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        return None


def _fixed_width(moment: datetime) -> str:
    """A UTC time with microseconds always shown, so ISO strings sort as times do."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _data(raw: Mapping[str, Any], *, where: str | None) -> dict[str, Any]:
    present, base64 = _lookup(raw, "data_base64", where=where)
    if present and base64 is not None:
        raise MalformedEvent(
            "binary event data is not supported; publish data as a JSON object",
            field="data_base64",
            where=where,
        )
    present, value = _lookup(raw, "data", where=where)
    if not present or value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedEvent(
            f"must be a JSON object, got {type(value).__name__}", field="data", where=where
        )
    return dict(value)


def detect_schema(raw: Mapping[str, Any], *, where: str | None = None) -> Schema:
    """CloudEvents carry ``specversion``; Event Grid events carry ``eventType``."""
    if _lookup(raw, "specversion", where=where)[0]:
        return "cloudevents"
    if _lookup(raw, "eventType", where=where)[0]:
        return "eventgrid"
    if _lookup(raw, "source", where=where)[0] and _lookup(raw, "type", where=where)[0]:
        raise MalformedEvent(
            "is missing (looks like a CloudEvent: has source and type)",
            field="specversion",
            where=where,
        )
    raise MalformedEvent(
        "is missing: neither an Event Grid event (eventType) nor a CloudEvent (specversion)",
        field="eventType",
        where=where,
    )


def normalize_event(raw: Mapping[str, Any], *, where: str | None = None) -> Event:
    """One event dict, either schema, to an ``Event``; ``where`` names it in errors."""
    if not isinstance(raw, Mapping):
        raise MalformedEvent(
            f"an event must be a JSON object, got {type(raw).__name__}", field="event", where=where
        )
    if any(not isinstance(k, str) for k in raw):
        raise MalformedEvent("attribute names must be strings", field="event", where=where)
    schema = detect_schema(raw, where=where)
    if schema == "cloudevents":
        _, version = _lookup(raw, "specversion", where=where)
        # one published sample has the number 1.0; accept the number, not any other version
        text = (
            str(version)
            if isinstance(version, (str, int, float)) and not isinstance(version, bool)
            else None
        )
        if text not in _SUPPORTED_SPECVERSIONS:
            raise MalformedEvent(
                f"unsupported CloudEvents version {_short(version)} (1.0 is supported)",
                field="specversion",
                where=where,
            )
        return Event(
            id=_string(raw, "id", where=where, required=True) or "",
            type=_string(raw, "type", where=where, required=True) or "",
            topic=_string(raw, "source", where=where, required=True) or "",
            subject=_string(raw, "subject", where=where, required=False, empty_ok=True) or "",
            time=_time(raw, "time", where=where),
            data=_data(raw, where=where),
            schema="cloudevents",
        )
    return Event(
        id=_string(raw, "id", where=where, required=True) or "",
        type=_string(raw, "eventType", where=where, required=True) or "",
        # a publisher may omit topic (Event Grid fills it on delivery); subject may be ""
        topic=_string(raw, "topic", where=where, required=False, empty_ok=True) or "",
        subject=_string(raw, "subject", where=where, required=True, empty_ok=True) or "",
        time=_time(raw, "eventTime", where=where),
        data=_data(raw, where=where),
        schema="eventgrid",
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Two parsers reading one body differently is how routing gets smuggled; refuse duplicates."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedEvent(f"duplicate key {_short(key)} in JSON", field="body")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise MalformedEvent(f"{name} is not valid JSON", field="body")


def events_from_body(
    body: bytes,
    *,
    max_bytes: int = MAX_BODY_BYTES,
    skipped: list[MalformedEvent] | None = None,
) -> list[Event]:
    """An HTTP delivery body: an array of Event Grid events, one CloudEvent, or a CloudEvents batch.

    Size is checked before parsing so a hostile body costs nothing; the batch must be one schema
    (Event Grid never mixes them in one delivery, so a mix means a hand-made body). Given a
    ``skipped`` list, a malformed event of a batch is added to it (and logged) instead of
    refusing the batch: a webhook answered 400 is not delivered again, and the batch's good
    events would be lost with the bad one.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise MalformedEvent(f"must be bytes, got {type(body).__name__}", field="body")
    if len(body) > max_bytes:
        raise MalformedEvent(f"is {len(body):,} bytes; the limit is {max_bytes:,}", field="body")
    try:
        text = bytes(body).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedEvent(f"is not UTF-8 (byte offset {exc.start})", field="body") from None
    if not text.strip():
        raise MalformedEvent("is empty", field="body")
    try:
        parsed = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise MalformedEvent(
            f"is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field="body"
        ) from None
    except RecursionError:
        raise MalformedEvent("is nested too deeply", field="body") from None
    except ValueError as exc:  # e.g. an integer past Python's 4,300-digit conversion limit
        raise MalformedEvent(f"is not usable JSON: {exc}", field="body") from None
    if isinstance(parsed, Mapping):
        return [normalize_event(parsed)]
    if not isinstance(parsed, list):
        raise MalformedEvent(
            f"must be a JSON object or array of events, got {type(parsed).__name__}", field="body"
        )
    if not parsed:
        raise MalformedEvent("is an empty array: no events", field="body")
    if len(parsed) > MAX_EVENTS:
        raise MalformedEvent(
            f"holds {len(parsed):,} events; the limit is {MAX_EVENTS:,}", field="body"
        )
    events = []
    for i, item in enumerate(parsed):
        try:
            events.append(normalize_event(item, where=f"events[{i}]"))
        except MalformedEvent as exc:
            if skipped is None:
                raise
            log.warning("malformed event acknowledged and ignored: %s", exc)
            skipped.append(exc)
    if not events:
        raise (
            skipped[0] if skipped else MalformedEvent("is an empty array: no events", field="body")
        )
    schemas = {e.schema for e in events}
    if len(schemas) > 1:
        first = next(i for i, e in enumerate(events) if e.schema != events[0].schema)
        raise MalformedEvent(
            "mixes Event Grid and CloudEvents schemas in one batch",
            field="body",
            where=f"events[{first}]",
        )
    return events


def _host_time(value: datetime | str | None) -> str | None:
    if isinstance(value, datetime):
        moment = _in_utc(value)  # None: no UTC form, the time is unknown
        return _fixed_width(moment) if moment is not None else None
    return value


def event_grid_dict(
    *,
    id: str | None,
    topic: str | None,
    subject: str | None,
    event_type: str | None,
    event_time: datetime | str | None,
    data: Any,
    data_version: str | None,
) -> dict[str, Any]:
    """The Event Grid schema dict for what ``func.EventGridEvent`` exposes (id, topic, subject,
    event_type, event_time, get_json(), data_version), so the trigger stays free of parsing."""
    return {
        "id": id,
        "topic": topic,
        "subject": subject,
        "eventType": event_type,
        "eventTime": _host_time(event_time),
        "data": data,
        "dataVersion": data_version,
    }


def cloud_event_dict(
    *,
    id: str | None,
    source: str | None,
    type: str | None,
    specversion: str | float | None,
    time: datetime | str | None,
    subject: str | None,
    data: Any,
    datacontenttype: str | None = None,
    dataschema: str | None = None,
    extension_attrs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The CloudEvents dict for what ``func.CloudEvent`` exposes (azure-functions 1.26).

    The host puts every attribute it does not know into ``extension_attrs`` - including misspelt
    core attributes such as ``Type`` - so they are passed back in and spelling tolerance applies.
    """
    result: dict[str, Any] = {}
    for key, value in (extension_attrs or {}).items():
        if isinstance(key, str) and value is not None:
            result[key] = value
    core = {
        "id": id,
        "source": source,
        "type": type,
        "specversion": specversion,
        "time": _host_time(time),
        "subject": subject,
        "datacontenttype": datacontenttype,
        "dataschema": dataschema,
        "data": data,
    }
    for key, value in core.items():
        # None means "the host did not find it"; keep a misspelt extension in that case
        if value is not None or key not in {k.casefold() for k in result}:
            result[key] = value
    return {k: v for k, v in result.items() if v is not None or k in core}


def host_event_dict(event: Any) -> dict[str, Any]:
    """``func.EventGridEvent`` or ``func.CloudEvent`` (duck-typed: ``sync`` never imports
    azure.functions) to a schema dict; the trigger then calls ``normalize_event`` on it."""
    if hasattr(event, "specversion") and hasattr(event, "source"):
        return cloud_event_dict(
            id=event.id,
            source=event.source,
            type=event.type,
            specversion=event.specversion,
            time=event.time,
            subject=event.subject,
            data=event.get_json(),
            datacontenttype=getattr(event, "datacontenttype", None),
            dataschema=getattr(event, "dataschema", None),
            extension_attrs=getattr(event, "extension_attrs", None),
        )
    if hasattr(event, "event_type") and hasattr(event, "topic"):
        return event_grid_dict(
            id=event.id,
            topic=event.topic,
            subject=event.subject,
            event_type=event.event_type,
            event_time=event.event_time,
            data=event.get_json(),
            data_version=getattr(event, "data_version", None),
        )
    raise MalformedEvent(
        f"not an Event Grid or CloudEvents trigger object: {type(event).__name__}", field="event"
    )


def from_host_event(event: Any) -> Event:
    """What the Event Grid trigger calls: the host's event object straight to an ``Event``."""
    return normalize_event(host_event_dict(event))
