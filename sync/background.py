"""Work an item starts in a background thread while it waits on the network."""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class _Workers:
    """Daemon threads that stay for the next task. Starting a thread blocks the caller until the
    new thread has run (``Thread.start`` waits for it), and on two busy cores that wait was
    5-12 ms of the item's own thread per background start; a task handed to an idle worker
    costs a queue put. Workers are added only when none is idle (so a task never waits behind
    another) and never leave; daemon, like the threads before them, so nothing a process left
    running (an abandoned read) holds up its exit."""

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._idle = 0
        self._unfinished = 0
        self._lock = threading.Lock()

    def unfinished(self) -> int:
        """Tasks handed over and not finished yet (queued or running)."""
        with self._lock:
            return self._unfinished

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            self._unfinished += 1
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1  # that worker takes this task
        if spawn:
            # started before the task is queued: a start that fails ("can't start new thread")
            # leaves nothing behind to run later behind the caller's back (a held ledger record
            # would then wait for a gate no one opens); the new worker waits for the put
            try:
                threading.Thread(target=self._work, name="background", daemon=True).start()
            except BaseException:
                with self._lock:
                    self._unfinished -= 1
                raise
        self._tasks.put((fn, future))
        return future

    def _work(self) -> None:
        while True:
            fn, future = self._tasks.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # delivered to whoever asks for the result
                    future.set_exception(exc)
            del fn, future  # nothing of a finished task stays referenced by an idle worker
            with self._lock:
                self._unfinished -= 1
                self._idle += 1


_WORKERS = _Workers()


def in_background(fn: Callable[[], T], *, name: str) -> Future[T]:
    """``fn()`` on a background worker; the future carries its result or exception. It runs in a
    copy of the caller's context, so its log records carry the item's run, api and target, and
    under ``name`` as the thread's name."""
    context = contextvars.copy_context()

    def run() -> T:
        thread = threading.current_thread()
        thread.name = name
        try:
            return context.run(fn)
        finally:
            thread.name = "background"

    return _WORKERS.submit(run)


def settle(future: Future[Any]) -> None:
    """Return once a background head start no longer does the caller's next work twice. A task
    no worker has started is cancelled: the caller does that work itself, as it would have
    without the head start (on two busy cores a queued task can wait longer than the work
    takes). A running one is waited for: what is left of it is less than doing it again, and
    a second copy would compete with it for the GIL. Its failure is not raised here: the
    caller's own attempt meets the same cause where it is handled."""
    if future.cancel():
        return
    try:
        future.result()
    except Exception:  # the caller's own attempt meets and reports it
        log.debug("background head start failed; the caller does the work itself", exc_info=True)


def unfinished() -> int:
    """Background tasks not finished yet (tests wait for this to reach 0)."""
    return _WORKERS.unfinished()
