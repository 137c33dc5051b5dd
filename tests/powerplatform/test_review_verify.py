"""A read-back must hold the JSON that was written, as its canonical sha256 says, not merely
what Python's ``==`` takes for equal: ``1``, ``1.0`` and ``true`` compare equal in Python. The
verify shortcuts used ``==``, so a platform that stored other numbers passed, and the ledger
recorded a sha the connector did not hold (a false drift report next, or an endless rewrite
under ``drift: overwrite``). Found in review."""

from __future__ import annotations

import copy
import json

import pytest

from sync.adapters.pp_target import verify
from sync.errors import TargetError
from sync.spec.canonical import sha256_hex
from tests.powerplatform.samples import DEFINITION
from tests.simulators import powerplatform as simulator


def numbers_written() -> dict:
    written = copy.deepcopy(DEFINITION)
    written["info"]["x-ratio"] = 1.0
    written["info"]["x-flag"] = True
    return written


def numbers_stored(definition: dict) -> dict:
    stored = json.loads(json.dumps(definition))
    stored["info"]["x-ratio"] = 1
    stored["info"]["x-flag"] = 1
    return stored


def test_verify_refuses_a_read_back_equal_only_to_python() -> None:
    written = numbers_written()
    stored = numbers_stored(written)
    assert stored == written and sha256_hex(stored) != sha256_hex(written)

    with pytest.raises(TargetError, match="read-back does not match"):
        verify(lambda: stored, written, seconds=0.2, where="t")


def test_verify_takes_an_equal_read_back() -> None:
    written = numbers_written()
    verify(lambda: json.loads(json.dumps(written)), written, seconds=0.2, where="t")


def test_a_platform_that_stores_other_numbers_fails_the_powerapps_read_back(
    sim, make_powerapps, monkeypatch
):
    target = make_powerapps()
    target.write(copy.deepcopy(DEFINITION), target.read())
    real = simulator._PaConnector.add_version

    def rewriting(self, visible_from, definition):
        return real(self, visible_from, numbers_stored(definition))

    monkeypatch.setattr(simulator._PaConnector, "add_version", rewriting)
    again = make_powerapps(state_id=target._connector_id, verify_seconds=0.5)
    written = numbers_written()
    again.write(written, again.read())

    with pytest.raises(TargetError, match="read-back does not match"):
        again.verify(written, sha256_hex(written))
