"""A list page's ``nextLink`` comes from the remote service: following it elsewhere would hand our
bearer token to another origin, and a link that repeats would loop forever (found in review)."""

from __future__ import annotations

import json

import pytest

from sync.errors import TargetError
from tests.support.spec_server import SpecServer


@pytest.fixture
def elsewhere():
    server = SpecServer().start()
    try:
        yield server
    finally:
        server.stop()


def test_a_next_link_to_another_origin_is_refused_without_sending_the_token(
    sim, make_powerapps, elsewhere
):
    page = {"value": [], "nextLink": elsewhere.url("/steal?page=2")}
    sim.faults.add(status=200, method="GET", path=r"/apis$", body=json.dumps(page).encode())
    with pytest.raises(TargetError, match="nextLink"):
        make_powerapps().read()
    assert elsewhere.requests == []


def test_a_next_link_that_repeats_is_refused_instead_of_looping(sim, make_powerapps):
    target = make_powerapps()
    same = target._url("apis")
    page = {"value": [], "nextLink": same}
    sim.faults.add(
        status=200, method="GET", path=r"/apis$", body=json.dumps(page).encode(), times=50
    )
    with pytest.raises(TargetError, match="nextLink"):
        target.read()
