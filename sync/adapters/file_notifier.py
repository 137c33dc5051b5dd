"""Notifications for local runs and the CLI: the webhook message as a JSON line, or a log line.

The file holds exactly what Teams would receive (one message per line), so a local run can be
checked, or pasted into the Adaptive Cards designer, without a webhook.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sync.models import RunSummary
from sync.notify.cards import build_message, encode_message, summarize

log = logging.getLogger(__name__)


class FileNotifier:
    """``sync.ports.Notifier`` that appends to ``path``, or logs a summary when ``path`` is None."""

    def __init__(self, path: str | Path | None = None, *, maker_portal: str | None = None) -> None:
        self._path = Path(path) if path else None
        self._maker_portal = maker_portal
        self._lock = threading.Lock()

    def notify(self, run: RunSummary) -> str:
        """ "written", or "failed: <why>" when the file cannot be written (never raises)."""
        if self._path is None:
            log.info("run finished: %s", summarize(run))
            return "written"
        try:
            line = encode_message(build_message(run, maker_portal=self._maker_portal))
            with self._lock, self._path.open("ab") as handle:
                handle.write(line + b"\n")
        except OSError as exc:
            why = f"cannot write {self._path}: {exc.strerror or type(exc).__name__}"
            log.warning("notification for run %s not written: %s", run.run_id, why)
            return f"failed: {why}"
        except Exception as exc:  # a notification must never fail a sync
            log.exception("notification for run %s could not be built", run.run_id)
            return f"failed: unexpected {type(exc).__name__}"
        return "written"
