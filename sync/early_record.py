"""The version's ledger transaction, prepared while the connector write is in flight.

Why: building a Table Storage transaction is CPU the item's thread would otherwise spend after
the write (azure-core writes the multipart body with the ``email`` package and applies the
batch policies in two thread pools: ~7 ms of a 512 KB update's critical path on two cores,
measured 2026-12-07), while during the write it has nothing to do but wait for the platform.
So the ledger's ``record_version`` runs in the background from the moment the pending marker
is written, and stops at its ``hold`` (called just before anything is sent): only once the
write is verified does the item open the gate (``commit``), and on any other ending it closes
it (``abandon``) and nothing at all reaches storage. What is recorded is what the sequential
path would record, built from the same marked state row and connector id; the pipeline falls
back to that path whenever the write ends with another id (a create).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from sync.background import in_background

T = TypeVar("T")
log = logging.getLogger(__name__)


class RecordWithheld(Exception):
    """Raised at the hold of a record the item abandoned: nothing is sent. Not an ``AzureError``
    (azure-core's retry policy would retry it) and not a ``SyncError`` (no one reports it)."""


class Gate:
    """Decided once, by the item's thread; waited at by the background record."""

    def __init__(self) -> None:
        self._decided = threading.Event()
        self._open = False

    def open(self) -> None:
        self._open = True
        self._decided.set()

    def close(self) -> None:
        self._decided.set()

    def wait(self) -> None:
        """Return once opened; raise ``RecordWithheld`` once closed. Called once per
        transaction the ledger submits (azure-core takes a call's request hook out of its
        options at the first attempt, so its own retries do not call it again; the ledger's
        resend without a lost lease is a second transaction and does): after the first
        decision it returns or raises at once."""
        self._decided.wait()
        if not self._open:
            raise RecordWithheld("the write was not verified: the version is not recorded")


class EarlyRecord(Generic[T]):
    """``send(hold)`` in the background from ``start`` on (once the write's body has left, see
    ``sync.write_progress``); the item ends it with exactly one of ``commit`` (the result of
    ``send``, or its exception; started then if it was not) or ``abandon`` (nothing sent)."""

    def __init__(self, connector_id: str, send: Callable[[Callable[[], None]], T]) -> None:
        self.connector_id = connector_id  # the id the record was built with
        self._send = send
        self._gate = Gate()
        self._lock = threading.Lock()
        self._future: concurrent.futures.Future[T] | None = None
        self._ended = False

    def start(self) -> None:
        """Begin preparing in the background; once only, and not after ``abandon``."""
        with self._lock:
            if self._future is None and not self._ended:
                send, wait = self._send, self._gate.wait
                self._future = in_background(lambda: send(wait), name="record-early")

    def commit(self) -> T:
        self.start()
        with self._lock:
            self._ended = True
            future = self._future
        assert future is not None  # started above, and only abandon ends it without a start
        self._gate.open()
        return future.result()

    def abandon(self) -> None:
        """Close the gate and wait for the background call to end (nothing outlives its item);
        what it raised is expected (``RecordWithheld``) or moot (the version is not recorded)."""
        with self._lock:
            self._ended = True
            future = self._future
        self._gate.close()
        if future is None:
            return
        concurrent.futures.wait([future])
        exc = future.exception()
        if exc is not None and not isinstance(exc, RecordWithheld):
            log.debug("the abandoned record had failed before its hold: %s", exc)
