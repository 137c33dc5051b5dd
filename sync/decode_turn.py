"""When an item's background reads may decode their answers: once its own thread waits.

Why: a work item starts the connector read in the background as soon as the new spec arrives,
so that the platform's round trip overlaps the spec's preparation (parse, ``$ref`` guard, hash).
Where the answer comes back before that preparation ends (a nearby platform, or a loaded
machine), decoding it (the registration's JSON, ~2 ms per 512 KB, done in C without letting go
of the GIL) ran beside the item's own CPU-bound preparation: the two threads took turns on the
GIL, the item's critical path grew by the decode and the hand-overs, and the process spent
more CPU in all (measured on 2 cores, docs/benchmarks.md, 2026-12-07 after 12:45). So the item
holds a turn while it prepares and gives it up when it starts waiting on the network (the
lease); a background read that has its bytes waits for that before decoding them. In Azure the
platform answers in hundreds of ms, after the turn has been given up, and nothing waits.

The turn travels with the item's context (``contextvars``), which ``sync.background`` copies
into every task the item starts; a read started outside an item's turn never waits. The item
gives the turn up explicitly before it waits for the read itself, and in any case when its
``held`` block ends; ``WAIT_LIMIT_SECONDS`` bounds every wait, so a missed hand-over (a defect)
delays a read, it never hangs an item.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from contextvars import ContextVar

WAIT_LIMIT_SECONDS = 5.0

log = logging.getLogger(__name__)
# (the item's event, set once it gives the turn up; the thread that holds it)
_TURN: ContextVar[tuple[threading.Event, int] | None] = ContextVar("sync_decode_turn", default=None)


class Turn:
    """The item's hold on its background reads' decoding; ``give_up`` lets them go on."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def give_up(self) -> None:
        self._event.set()

    @property
    def held(self) -> bool:
        return not self._event.is_set()


@contextlib.contextmanager
def held() -> Iterator[Turn]:
    """Hold the turn for the block: background tasks started in it that ``wait_for_turn`` wait
    until ``Turn.give_up`` or the end of the block, whichever comes first."""
    event = threading.Event()
    token = _TURN.set((event, threading.get_ident()))
    try:
        yield Turn(event)
    finally:
        event.set()
        _TURN.reset(token)


def wait_for_turn(limit_seconds: float = WAIT_LIMIT_SECONDS) -> bool:
    """Wait until the item that started this task gives up its turn; at once outside an item's
    turn and on the item's own thread (a read it makes itself). False when the limit ran out
    first: the item waited for this task while holding its turn, which ``held``'s callers must
    never do; logged, and the task goes on."""
    turn = _TURN.get()
    if turn is None or turn[1] == threading.get_ident() or turn[0].wait(limit_seconds):
        return True
    log.warning("a background read waited %.1f s for its item's turn; decoding now", limit_seconds)
    return False
