"""A connector write about to happen, as the pending marker saves it (``Ledger.mark_pending``).

Its own module, not ``sync.models``: a frozen dataclass costs ~1.3 ms to create, and the models
are imported by every cold start while this is needed only once a write is about to happen (the
pipeline imports it there; the ledger adapter is itself imported on first use).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PendingWrite:
    """A connector write about to happen, saved with the pending marker before it: if the write
    lands and its ledger record is lost, the next sync can still record it and merge against its
    upstream (RELIABILITY.md), whatever the spec became meanwhile."""

    run_id: str
    at: str
    upstream: dict[str, Any]
    applied: dict[str, Any]
    upstream_sha256: str
    applied_sha256: str
