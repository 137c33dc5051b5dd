"""Work an item starts in a background thread while it waits on the network."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


def in_background(fn: Callable[[], T], *, name: str) -> Future[T]:
    """``fn()`` in a daemon thread; the future carries its result or exception. The thread runs
    in a copy of the caller's context, so its log records carry the item's run, api and target."""
    future: Future[T] = Future()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            future.set_result(context.run(fn))
        except BaseException as exc:  # delivered to whoever asks for the result
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
