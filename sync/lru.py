"""A small thread-safe LRU, for the content-addressed caches of a warm worker: prepared specs,
merge bases, validation reports and diffs, stored definitions, encodings, packed version rows."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class Lru:
    """At most ``size`` entries; the least recently used goes first. None is never a value."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def for_object(self, obj: Any, make: Callable[[Any], Any]) -> Any:
        """``make(obj)``, made once per object while it is kept: keyed by ``id(obj)``, the entry
        holds ``obj`` itself, so no other object can take that id meanwhile. For objects never
        changed once made (the pipeline's documents, frozen outcomes); what ``make`` raises is
        not kept."""
        known = self.get(id(obj))
        if known is not None and known[0] is obj:
            return known[1]
        value = make(obj)
        self.put(id(obj), (obj, value))
        return value

    def pop(self, key: Any) -> Any:
        """Remove ``key``; its value, or None if it was not there."""
        with self._lock:
            return self._data.pop(key, None)

    def snapshot(self) -> list[Any]:
        """A snapshot of the keys, least recently used first."""
        with self._lock:
            return list(self._data)

    def values(self) -> list[Any]:
        """A snapshot of the values, most recently used first; reading them uses none of them."""
        with self._lock:
            return list(reversed(self._data.values()))
