"""A worker process that stops for ever right after writing the connector, so a test can kill it
(SIGKILL) between the connector write and the ledger write, as a crash or a scale-in would.

Run as ``python -m tests.reliability.slow_worker <settings.json> <marker file>``: it drains the
work queue once; after the first connector write it creates the marker file and sleeps.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from sync.bootstrap import build
from sync.settings import Settings
from sync.worker_loop import drain


class _StopAfterWrite:
    """Wraps a real target; the write happens for real, then the process waits to be killed."""

    def __init__(self, inner: Any, marker: Path) -> None:
        self._inner = inner
        self._marker = marker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write(self, definition: dict[str, Any], current: Any) -> str | None:
        result = self._inner.write(definition, current)
        self._marker.write_text("written")
        time.sleep(60)  # bounded: the test kills us long before
        return result


def main(argv: list[str]) -> None:
    raw = json.loads(Path(argv[0]).read_text())
    raw["allow_private_hosts"] = frozenset(raw["allow_private_hosts"])
    settings = Settings(**raw)
    marker = Path(argv[1])
    svc = build(settings)
    real = svc.ports.targets
    svc = build(settings, targets=lambda api, name: _StopAfterWrite(real(api, name), marker))
    drain(svc, max_items=1, wait_seconds=5, visibility_timeout=2)


if __name__ == "__main__":
    main(sys.argv[1:])
