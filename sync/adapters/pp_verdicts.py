"""validateApiSwagger acceptances worth remembering for a few minutes.

One event fans out to many connectors, usually with the same merged definition. The platform's
verdict on a definition depends only on its bytes (and the rules of the day), so uploading the
same 512 KB twenty times to hear "accepted" twenty times costs a fan-out seconds and buys nothing.
Only acceptances are kept: a refusal is asked again each time, so every target reports its own
error and a fixed platform is noticed at once. Concurrent askers for the same definition wait for
the first one's answer instead of all uploading at once (single flight).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

TTL_SECONDS = 600.0  # long enough for one fan-out and its retries; short next to rule changes
MAX_ENTRIES = 256


class AcceptedDefinitions:
    """Keys are (service URL, caller oid, sha256 of the exact request body); safe across threads."""

    def __init__(
        self,
        *,
        ttl_seconds: float = TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._accepted: OrderedDict[Hashable, float] = OrderedDict()  # key -> expiry
        self._gates: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def _known(self, key: Hashable) -> bool:
        expiry = self._accepted.get(key)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._accepted[key]
            return False
        return True

    def check(self, key: Hashable, validate: Callable[[], object]) -> bool:
        """Run ``validate`` unless ``key`` was accepted within the TTL; it raises on refusal.
        Returns True when the platform was asked (False: a remembered acceptance answered)."""
        with self._lock:
            if self._known(key):
                return False
            gate = self._gates.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if self._known(key):  # the first asker was accepted while we waited
                    return False
            try:
                validate()
            except BaseException:
                with self._lock:
                    self._forget_gate(key, gate)
                raise
            with self._lock:
                self._accepted[key] = self._clock() + self._ttl
                self._accepted.move_to_end(key)
                while len(self._accepted) > self._max:
                    self._accepted.popitem(last=False)
                self._forget_gate(key, gate)  # after the record: a newcomer sees the acceptance
            return True

    def _forget_gate(self, key: Hashable, gate: threading.Lock) -> None:
        if self._gates.get(key) is gate:
            del self._gates[key]
