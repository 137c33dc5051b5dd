"""The stored definition is read through a URL the platform hands us: its size is capped."""

from __future__ import annotations

import pytest

import sync.adapters.powerapps as powerapps
from sync.errors import TargetError
from tests.powerplatform.conftest import ENV
from tests.powerplatform.samples import APIKEY_PROPERTIES, DEFINITION


def test_a_stored_definition_over_the_cap_is_refused_not_read_into_memory(
    sim, make_powerapps, monkeypatch
):
    sim.seed_powerapps(ENV, "shared_big", DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": "shared_big"})
    assert target.read().definition == DEFINITION  # under the cap: read as usual
    monkeypatch.setattr(powerapps, "MAX_STORED_DEFINITION_BYTES", 64)
    sim.seed_powerapps(ENV, "shared_big", DEFINITION, APIKEY_PROPERTIES)  # written again: no 304
    with pytest.raises(TargetError, match="larger than 64 bytes; not read") as info:
        make_powerapps({"connector": "shared_big"}).read()
    assert "sig=" not in str(info.value)  # the SAS URL is named without its signature
