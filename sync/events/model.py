"""The one shape every delivered event is turned into, and the error for events we cannot read.

Event Grid hands us two schemas (its own and CloudEvents 1.0), through two doors (the Functions
trigger and a plain HTTP webhook); the planner should only ever see one shape, so every door
converts into ``Event`` and every refusal is a ``MalformedEvent`` naming the offending field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sync.errors import PermanentError

Schema = Literal["eventgrid", "cloudevents"]


def has_unpaired_surrogate(value: str) -> bool:
    """JSON's lone ``\\ud800`` has no UTF-8 form: a run row or queue message carrying it could not
    be written, and the event would be retried for a day. Event fields holding one are refused."""
    return any("\ud800" <= ch <= "\udfff" for ch in value)


class MalformedEvent(PermanentError):
    """An event (or delivery body) we cannot read; retrying the same bytes cannot help.

    ``field`` is the attribute at fault (``eventType``, ``data.api``, ``body``) so an operator can
    fix the publisher without reading our code; ``where`` says which event of a batch.
    """

    def __init__(self, message: str, *, field: str, where: str | None = None) -> None:
        super().__init__(f"{field}: {message}", where=where)
        self.field = field


@dataclass(frozen=True)
class Event:
    """A delivered event, schema differences removed.

    ``topic`` is the Event Grid topic or the CloudEvents ``source`` ("" when a publisher omitted
    it); ``subject`` is "" when absent; ``time`` is UTC ISO-8601 with microseconds (fixed width,
    so times compare correctly as strings in the ledger) or None.
    """

    id: str
    type: str
    topic: str
    subject: str
    time: str | None
    data: dict[str, Any] = field(default_factory=dict)
    schema: Schema = "eventgrid"

    def is_type(self, event_type: str) -> bool:
        """Event types are compared without case: publishers disagree on it, meaning does not."""
        return self.type.casefold() == event_type.casefold()
