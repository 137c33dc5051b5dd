"""A list page's ``nextLink`` comes from the remote service: following it elsewhere would hand our
bearer token to another origin, and a link that repeats would loop forever (found in review)."""

from __future__ import annotations

import json

import pytest

from sync.errors import TargetError, TransientError
from tests.powerplatform.conftest import ENV
from tests.powerplatform.samples import DEFINITION
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


# A list answer of another shape (a gateway's HTML, an array, a nextLink that is no URL) raised
# JSONDecodeError, AttributeError, TypeError, KeyError or ValueError out of the target's read:
# no SyncError, so the work item crashed without a reason and was retried until poisoned.
LIST_ANSWERS = {
    "not-json": b"<html>busy</html>",
    "array": b"[]",
    "value-not-a-list": b'{"value": 5}',
    # falsy non-lists and a missing "value" read as "no connectors" before: a second connector
    # was created (test_a_list_answer_without_a_value_array_creates_no_second_connector)
    "no-value": b"{}",
    "value-null": b'{"value": null}',
    "value-empty-object": b'{"value": {}}',
    "value-empty-string": b'{"value": ""}',
    "error-object": b'{"error": {"code": "Busy", "message": "try later"}}',
    "item-not-an-object": b'{"value": ["x"]}',
    "properties-not-an-object": b'{"value": [{"name": "c", "properties": "x"}]}',
    "next-link-not-a-url": b'{"value": [], "nextLink": "https://[bad/x"}',
    "odata-next-link-not-a-url": b'{"value": [], "@odata.nextLink": "https://[bad/x"}',
}
POWERAPPS_ONLY = {"next-link-not-a-url", "properties-not-an-object"}  # Dataverse rows have neither


@pytest.mark.parametrize("body", LIST_ANSWERS.values(), ids=LIST_ANSWERS.keys())
def test_a_powerapps_list_answer_of_another_shape_is_a_target_error(sim, make_powerapps, body):
    sim.faults.add(status=200, method="GET", path=r"/apis$", body=body, times=50)
    with pytest.raises(TargetError, match="list answer"):
        make_powerapps().read()


@pytest.mark.parametrize(
    "body",
    [
        *(body for name, body in LIST_ANSWERS.items() if name not in POWERAPPS_ONLY),
        b'{"value": [{"description": "x cs:contoso/dv"}]}',
    ],
    ids=[*(name for name in LIST_ANSWERS if name not in POWERAPPS_ONLY), "row-without-id"],
)
def test_a_dataverse_list_answer_of_another_shape_is_a_target_error(sim, make_dataverse, body):
    target = make_dataverse()
    body = body.replace(b"cs:contoso/dv", target.marker.encode())
    sim.faults.add(status=200, method="GET", path=r"/connectors$", body=body, times=50)
    with pytest.raises(TargetError, match="list answer"):
        target.read()


def test_a_list_answer_without_a_value_array_creates_no_second_connector(sim, make_powerapps):
    first = make_powerapps()
    first.write(json.loads(json.dumps(DEFINITION)), first.read())
    [created] = sim.powerapps_ids(ENV)
    sim.faults.add(status=200, method="GET", path=r"/apis$", body=b"{}", times=5)
    second = make_powerapps()  # the ledger lost the id: the marker search decides

    with pytest.raises(TargetError, match="list answer"):
        second.write(json.loads(json.dumps(DEFINITION)), second.read())

    assert sim.powerapps_ids(ENV) == [created]


def test_a_connector_listed_with_the_marker_but_gone_is_a_transient_error(sim, make_powerapps):
    """The list shows the marked connector, its GET answers 404 (deleted; the list lags): asking
    the list again at once found the same id, and the reads recursed until Python's limit
    (~1,900 requests, then a RecursionError, no SyncError) on every delivery."""
    target = make_powerapps(state_id="shared_gone-1")
    page = {"value": [{"name": "shared_gone-1", "properties": {"description": target.marker}}]}
    sim.faults.add(
        status=200, method="GET", path=r"/apis$", body=json.dumps(page).encode(), times=50
    )

    with pytest.raises(TransientError, match="shared_gone-1 is listed with the marker"):
        target.read()

    assert len(sim.requests) <= 4, [r.path for r in sim.requests]


def test_a_dataverse_row_listed_with_the_marker_but_gone_is_a_transient_error(sim, make_dataverse):
    target = make_dataverse()
    gone = "0b7e3a52-1111-4222-8333-444455556666"
    page = {"value": [{"connectorid": gone, "description": f"x {target.marker}"}]}
    sim.faults.add(
        status=200, method="GET", path=r"/connectors$", body=json.dumps(page).encode(), times=50
    )

    with pytest.raises(TransientError, match=f"{gone} is listed with the marker"):
        target.read()

    assert len(sim.requests) <= 4, [r.path for r in sim.requests]
