"""``sync.decode_turn``: a background task waits for its item's turn, never longer than the limit,
and never on the item's own thread."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time

import pytest

from sync import decode_turn
from sync.background import in_background


def test_outside_an_items_turn_nothing_waits() -> None:
    assert in_background(lambda: decode_turn.wait_for_turn(0.01), name="t").result(5) is True


def test_a_task_started_in_the_turn_waits_until_it_is_given_up() -> None:
    decoded = threading.Event()

    def task() -> bool:
        came = decode_turn.wait_for_turn(5)
        decoded.set()
        return came

    with decode_turn.held() as turn:
        future = in_background(task, name="t")
        assert not decoded.wait(0.2)  # still the item's turn: the task has not gone on
        assert turn.held
        turn.give_up()
        assert future.result(5) is True
        assert not turn.held


def test_the_end_of_the_block_gives_the_turn_up() -> None:
    with decode_turn.held():
        future = in_background(lambda: decode_turn.wait_for_turn(5), name="t")
    assert future.result(5) is True  # the block's end let it go on well inside the limit


def test_the_items_own_thread_never_waits_for_its_own_turn() -> None:
    with decode_turn.held() as turn:
        started = time.monotonic()
        assert decode_turn.wait_for_turn(5) is True
        assert time.monotonic() - started < 1  # not the 5 s limit
        assert turn.held


def test_a_task_stops_waiting_at_the_limit_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sync.decode_turn"), decode_turn.held():
        came = in_background(lambda: decode_turn.wait_for_turn(0.05), name="t").result(5)
    assert came is False
    assert "waited 0.1 s for its item's turn" in caplog.text


def test_turns_of_different_items_are_their_own() -> None:
    with decode_turn.held() as first:
        waiting = in_background(lambda: decode_turn.wait_for_turn(5), name="t")
        other = threading.Thread(target=lambda: decode_turn.held().__enter__().give_up())
        other.start()
        other.join()
        done, _ = concurrent.futures.wait([waiting], timeout=0.2)
        assert not done  # another item's turn does not release this one's task
        first.give_up()
        assert waiting.result(5) is True
