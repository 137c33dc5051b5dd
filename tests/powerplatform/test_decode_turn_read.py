"""The PowerApps read decodes the registration (the whole definition comes with it) only once
the item that started it gives up its turn (``sync.decode_turn``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from sync import decode_turn
from sync.adapters import powerapps
from sync.adapters.powerapps import PowerAppsTarget
from sync.background import in_background
from tests.powerplatform.conftest import ENV
from tests.powerplatform.samples import APIKEY_PROPERTIES, DEFINITION
from tests.simulators.powerplatform import Simulator

CID = "shared_turn-5f0629412a7d1fe83e-5f6f049093c9b7a698"


def test_the_registration_is_decoded_once_the_items_turn_is_given_up(
    sim: Simulator,
    make_powerapps: Callable[..., PowerAppsTarget],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": CID})
    decoded = threading.Event()
    real = powerapps.json_or_none

    def spy(response: Any) -> Any:
        decoded.set()
        return real(response)

    monkeypatch.setattr(powerapps, "json_or_none", spy)
    with decode_turn.held() as turn:
        reading = in_background(target.read, name="connector-read")
        deadline = time.monotonic() + 5
        while not sim.requests_to("GET", rf"/apis/{CID}$") and time.monotonic() < deadline:
            time.sleep(0.005)
        assert sim.requests_to("GET", rf"/apis/{CID}$"), "the registration was never asked for"
        assert not decoded.wait(0.2)  # its answer is in, but the item still holds the turn
        turn.give_up()
        current = reading.result(5)
    assert decoded.is_set()
    assert current.definition == DEFINITION and current.connector_id == CID


def test_a_read_on_the_items_own_thread_decodes_at_once(
    sim: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    with decode_turn.held():  # the item's own thread reads: it never waits for itself
        started = time.monotonic()
        current = make_powerapps({"connector": CID}).read()
        assert time.monotonic() - started < decode_turn.WAIT_LIMIT_SECONDS
    assert current.definition == DEFINITION
