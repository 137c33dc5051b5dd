"""Background workers: a worker that cannot be started leaves no task behind."""

from __future__ import annotations

import threading

import pytest

from sync import background


def test_a_task_whose_worker_cannot_start_never_runs_later(monkeypatch):
    """The task was queued before ``Thread.start``: when the start failed ("can't start new
    thread") the caller got the error, yet the next worker ran the task behind its back, and
    an early ledger record waited for ever for a gate no one would open. Found in review on
    2026-12-07."""
    workers = background._Workers()
    real_start = threading.Thread.start
    failures = [RuntimeError("can't start new thread")]

    def start(self: threading.Thread) -> None:
        if failures:
            raise failures.pop()
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    ran: list[str] = []
    with pytest.raises(RuntimeError, match="can't start new thread"):
        workers.submit(lambda: ran.append("orphan"))
    assert workers.unfinished() == 0
    assert workers.submit(lambda: "next").result(timeout=5) == "next"
    assert ran == []
