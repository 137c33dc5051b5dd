"""Debounce: the first caller inside a window wins; after the window the next one does."""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.azurite


def test_first_caller_wins_the_window(ledger):
    key = "appservice:/subscriptions/x/sites/contoso#restart?"  # any text, even RowKey-hostile
    assert ledger.debounce(key, 60) is True
    assert ledger.debounce(key, 60) is False
    assert ledger.debounce(key + "-other", 60) is True


def test_after_the_window_the_next_caller_wins(ledger):
    assert ledger.debounce("k", 0.2) is True
    time.sleep(0.3)
    assert ledger.debounce("k", 60) is True
    assert ledger.debounce("k", 60) is False


def _race(ledger, key: str, callers: int = 6) -> list[bool]:
    """``callers`` threads released together, each asking to debounce ``key`` for 60 s."""
    barrier = threading.Barrier(callers)
    answers: list[bool] = []

    def call() -> None:
        barrier.wait()
        answers.append(ledger.debounce(key, 60))

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_concurrent_callers_only_one_wins(ledger):
    assert sorted(_race(ledger, "burst")) == [False] * 5 + [True]


def test_concurrent_callers_after_expiry_only_one_wins(ledger):
    assert ledger.debounce("burst2", 0.2) is True
    time.sleep(0.3)
    assert sorted(_race(ledger, "burst2")) == [False] * 5 + [True]


def test_non_positive_window_is_refused(ledger):
    from sync.errors import PermanentError

    with pytest.raises(PermanentError, match="debounce window"):
        ledger.debounce("k", 0)
