"""How a target's write tells the item's thread that the definition has left.

Why: work the item starts beside a write (``sync.early_record``) competes for the GIL with the
write's own preparation and upload when it starts before them; started once the request body has
gone out whole, it runs while the item's thread only waits for the platform's answer. The item
sets a callback for its write (``on_body_sent``, a context variable, so concurrent items each
have their own); a target that can tell calls ``body_sent`` at that moment and says so with a
class attribute ``reports_body_sent = True``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ON_SENT: ContextVar[Callable[[], None] | None] = ContextVar("on_write_body_sent", default=None)


@contextmanager
def on_body_sent(callback: Callable[[], None] | None) -> Iterator[None]:
    """``callback`` for the writes made inside the block (on this thread's context)."""
    token = _ON_SENT.set(callback)
    try:
        yield
    finally:
        _ON_SENT.reset(token)


def body_sent() -> None:
    """Called by a target when the request carrying the definition has left whole."""
    callback = _ON_SENT.get()
    if callback is not None:
        callback()
