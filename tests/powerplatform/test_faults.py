"""What the targets do when the platform misbehaves: throttling, server errors, gateways that
answer HTML, slow answers, and a resource provider that refuses app-only tokens."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sync.adapters.dataverse import DataverseTarget
from sync.adapters.http import RetryableStatus
from sync.adapters.powerapps import PowerAppsTarget
from sync.errors import TargetError, TransientError
from sync.models import CurrentConnector
from tests.powerplatform.conftest import ENV, FakeTokens, new_guid
from tests.powerplatform.samples import APIKEY_PROPERTIES, DEFINITION, changed
from tests.simulators.powerplatform import Simulator

pytestmark = pytest.mark.reliability
CID = "shared_contoso-5f0629412a7d1fe83e-5f6f049093c9b7a698"


@pytest.fixture
def seeded(sim: Simulator) -> Simulator:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    return sim


def test_429_with_retry_after_then_success(
    seeded: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    target = make_powerapps({"connector": CID})
    current = target.read()
    seeded.faults.add(status=429, method="PATCH", retry_after=1, times=1)
    assert target.write(changed(DEFINITION), current) == CID
    assert len(seeded.requests_to("PATCH")) == 2
    assert seeded.powerapps_connector(ENV, CID)["definition"] == changed(DEFINITION)


def test_retry_after_is_honoured_by_the_shared_policy(
    seeded: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    seeded.faults.add(status=429, method="GET", path=r"/apis/", retry_after=7, times=10)
    with pytest.raises(RetryableStatus) as caught:
        make_powerapps({"connector": CID}).read()
    assert caught.value.retry_after == 7
    assert caught.value.status == 429
    assert "HTTP 429 TooManyRequests" in caught.value.message


def test_a_retry_after_beyond_the_budget_ends_the_call_at_once(
    seeded: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    """Waiting 30 s inside a call with a few seconds' budget would eat into the lease and the
    function's time (found by review: a 1 s budget waited 4 s); the error carries the wait,
    which the queue's retry honours."""
    import time

    seeded.faults.add(status=429, method="GET", path=r"/apis/", retry_after=30, times=10)
    started = time.monotonic()
    with pytest.raises(RetryableStatus) as caught:
        make_powerapps({"connector": CID}).read()
    assert time.monotonic() - started < 5
    assert caught.value.retry_after == 30
    assert len(seeded.requests_to("GET", r"/apis/")) == 1


def test_a_definition_download_that_keeps_timing_out_is_a_named_transient_error(
    seeded: Simulator, cloud
) -> None:
    """The blob GET of the stored definition is not sent through the platform's client call: a
    raw httpx error escaped the pipeline's error handling (found by review)."""
    import httpx

    from tests.powerplatform.conftest import DictSecrets

    seeded.faults.add(status=None, method="GET", path=r"^/blob/", delay=0.6, times=20)
    with httpx.Client(timeout=0.2) as client:
        target = PowerAppsTarget(
            api="contoso",
            name="prod",
            params={"environment": ENV, "credential": "pp-user", "connector": CID},
            cloud=cloud,
            tokens=FakeTokens(),
            secrets=DictSecrets(),
            client=client,
            get_state_connector_id=lambda: None,
            budget_seconds=1,
        )
        with pytest.raises(TransientError) as caught:
            target.read()
    assert "timed out" in str(caught.value) and "ReadTimeout" in str(caught.value)
    assert "contoso/prod" in str(caught.value) and "sig=" not in str(caught.value)


def test_500_every_time_fails_with_status_code_and_tracking_id(
    seeded: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    target = make_powerapps({"connector": CID})
    current = target.read()
    seeded.faults.add(status=500, method="PATCH", times=50)
    with pytest.raises(TransientError) as caught:
        target.write(changed(DEFINITION), current)
    text = str(caught.value)
    assert "PowerApps API answered HTTP 500 InternalServerError" in text
    assert "tracking id" in text.lower()
    assert caught.value.where and "contoso/prod" in caught.value.where
    assert len(seeded.requests_to("PATCH")) == 4  # the attempts the test budget allows


def test_non_json_502_is_described_not_crashed_on(
    seeded: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    target = make_powerapps({"connector": CID})
    current = target.read()
    seeded.faults.add(
        status=502,
        method="PATCH",
        times=50,
        body=b"<html><body>Bad Gateway</body></html>",
        content_type="text/html",
    )
    with pytest.raises(
        TransientError, match=r"HTTP 502: non-JSON body \(text/html\): <html><body>Bad Gateway"
    ):
        target.write(changed(DEFINITION), current)


def test_empty_502_then_success(
    seeded: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    target = make_powerapps({"connector": CID})
    current = target.read()
    seeded.faults.add(status=502, method="PATCH", times=2, body=b"")
    assert target.write(changed(DEFINITION), current) == CID
    assert len(seeded.requests_to("PATCH")) == 3


def test_4xx_is_permanent_and_not_retried(
    seeded: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    target = make_powerapps({"connector": CID})
    current = target.read()
    seeded.faults.add(
        status=400,
        method="PATCH",
        code="ApiHubsRequestFailed",
        message="Request to APIM failed: PUT policy InternalServerError.",
    )
    with pytest.raises(
        TargetError, match=r"HTTP 400 ApiHubsRequestFailed: Request to APIM failed"
    ) as caught:
        target.write(changed(DEFINITION), current)
    assert caught.value.status == 400
    assert len(seeded.requests_to("PATCH")) == 1


def test_slow_answer_times_out_as_transient(seeded: Simulator, cloud, make_powerapps) -> None:
    import httpx

    seeded.faults.add(status=None, method="GET", path=r"/apis/", delay=1.0, times=10)
    with httpx.Client(timeout=0.2) as client:
        target = PowerAppsTarget(
            api="contoso",
            name="prod",
            params={"environment": ENV, "connector": CID, "credential": "c"},
            cloud=cloud,
            tokens=FakeTokens(),
            secrets=None,
            client=client,
            budget_seconds=5,
        )  # type: ignore[arg-type]
        with pytest.raises(TransientError, match="did not answer GET in time"):
            target.read()


def test_slow_answer_within_timeout_succeeds(
    seeded: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    seeded.faults.add(status=None, method="GET", path=r"/apis/", delay=0.3, times=1)
    assert make_powerapps({"connector": CID}).read().definition == DEFINITION


def test_app_only_token_refusal_says_what_to_do(
    seeded: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    seeded.faults.refuse_app_tokens = True
    target = make_powerapps({"connector": CID}, tokens=FakeTokens(idtyp="app"))
    with pytest.raises(TargetError) as caught:
        target.read()
    text = str(caught.value)
    assert "HTTP 401 InvalidAuthenticationToken" in text
    assert "app-only" in text and "delegated" in text and "Dataverse" in text
    assert caught.value.status == 401
    assert len(seeded.requests_to("GET")) == 1  # a refused token is not retried


def test_user_token_passes_the_app_only_refusal(
    seeded: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    seeded.faults.refuse_app_tokens = True
    assert make_powerapps({"connector": CID}).read().connector_id == CID


def _seeded_dataverse(
    sim: Simulator, make_dataverse: Callable[..., DataverseTarget]
) -> tuple[DataverseTarget, CurrentConnector]:
    """A Dataverse target configured with a seeded connector row, and what it read."""
    cid = new_guid()
    sim.seed_dataverse(cid, name="cs_x", definition=DEFINITION)
    target = make_dataverse({"connector": cid})
    return target, target.read()


def test_dataverse_429_then_success(
    sim: Simulator, make_dataverse: Callable[..., DataverseTarget]
) -> None:
    target, current = _seeded_dataverse(sim, make_dataverse)
    sim.faults.add(
        status=429,
        method="PATCH",
        retry_after=2,
        code="0x80072322",
        message="Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
    )
    target.write(changed(DEFINITION), current)
    assert len(sim.requests_to("PATCH")) == 2
    assert target.read_back() == changed(DEFINITION)


def test_dataverse_500_gives_odata_code_and_request_id(
    sim: Simulator, make_dataverse: Callable[..., DataverseTarget]
) -> None:
    target, current = _seeded_dataverse(sim, make_dataverse)
    sim.faults.add(
        status=500,
        method="PATCH",
        times=20,
        code="0x80040216",
        message="An unexpected error occurred.",
    )
    with pytest.raises(
        TransientError,
        match=r"Dataverse Web API answered HTTP 500 0x80040216: An unexpected error occurred\. \(tracking id ",
    ):
        target.write(changed(DEFINITION), current)


DEEP = b"[" * 100_000 + b"]" * 100_000  # past the parser's recursion limit

REGISTRATION_ANSWERS = {
    "not-json": b"<html>busy</html>",
    "api-definitions-not-an-object": b'{"properties": {"apiDefinitions": "x"}}',
    "definition-url-not-a-url": (
        b'{"properties": {"apiDefinitions": {"originalSwaggerUrl": "https://[bad/x?sig=s3cret"}}}'
    ),
    "definition-url-not-a-string": b'{"properties": {"apiDefinitions": {"originalSwaggerUrl": 5}}}',
    "nested-too-deep": DEEP,
}


@pytest.mark.parametrize("body", REGISTRATION_ANSWERS.values(), ids=REGISTRATION_ANSWERS.keys())
def test_a_registration_answer_of_another_shape_is_a_target_error(
    seeded: Simulator, make_powerapps: Callable[..., PowerAppsTarget], body: bytes
) -> None:
    """HTML, an apiDefinitions that is no object or a definition URL urlsplit refuses raised
    JSONDecodeError, AttributeError or ValueError out of read(): no reason, retried until
    poisoned. The URL's signature is never shown."""
    seeded.faults.add(status=200, method="GET", path=r"/apis/", body=body, times=50)
    with pytest.raises(TargetError) as caught:
        make_powerapps({"connector": CID}).read()
    assert "s3cret" not in str(caught.value)


ROW_ANSWERS = {
    "not-json": b"<html>busy</html>",
    "an-array": b'[{"connectorid": "x"}]',
    "a-string": b'"x"',
    "definition-not-a-string": b'{"connectorid": "x", "openapidefinition": 5}',
    "definition-an-object": b'{"connectorid": "x", "openapidefinition": {"swagger": "2.0"}}',
    "nested-too-deep": DEEP,
}


@pytest.mark.parametrize("body", ROW_ANSWERS.values(), ids=ROW_ANSWERS.keys())
def test_a_dataverse_row_answer_of_another_shape_is_a_target_error(
    sim: Simulator, make_dataverse: Callable[..., DataverseTarget], body: bytes
) -> None:
    """HTML, a JSON array or an openapidefinition that is no text raised JSONDecodeError,
    AttributeError or TypeError out of read() and read_back(): no reason, retried until
    poisoned."""
    cid = new_guid()
    sim.seed_dataverse(cid, name="cs_x", definition=DEFINITION)
    target = make_dataverse({"connector": cid})
    sim.faults.add(status=200, method="GET", path=r"/connectors\(", body=body, times=50)
    with pytest.raises(TargetError, match="connector "):
        target.read()
    with pytest.raises(TargetError, match="connector "):
        target.read_back()


def test_a_stored_definition_nested_past_the_recursion_limit_is_a_target_error(
    seeded: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    """json.loads raised RecursionError out of read(): no reason, retried until poisoned."""
    seeded.faults.add(status=200, method="GET", path=r"/blob/", body=DEEP, times=50)
    with pytest.raises(TargetError, match="is not JSON"):
        make_powerapps({"connector": CID}).read()


def test_a_create_answer_nested_past_the_recursion_limit_names_the_missing_id(
    make_powerapps: Callable[..., PowerAppsTarget],
) -> None:
    answer = httpx.Response(201, content=DEEP)
    with pytest.raises(TargetError, match="without a connector 'name'"):
        make_powerapps()._new_id(answer)


LONE_SURROGATE = rb'{"swagger": "2.0", "info": {"title": "t\ud800", "version": "1"}, "paths": {}}'


def test_a_stored_definition_with_an_unpaired_surrogate_is_a_target_error(
    seeded: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    """JSON lets ``\\ud800`` through and no UTF-8 form exists for it: hashing the parsed
    definition raised UnicodeEncodeError out of read(), no reason, retried until poisoned."""
    seeded.faults.add(status=200, method="GET", path=r"/blob/", body=LONE_SURROGATE, times=50)
    with pytest.raises(TargetError, match=r"stored definition at .* unpaired surrogate"):
        make_powerapps({"connector": CID}).read()


def test_a_dataverse_definition_with_an_unpaired_surrogate_is_a_target_error(
    sim: Simulator, make_dataverse: Callable[..., DataverseTarget]
) -> None:
    """The row's openapidefinition is text inside JSON: the outer escape puts the surrogate
    itself into the text, where the inner parse takes it as it is."""
    cid = new_guid()
    sim.seed_dataverse(cid, name="cs_x", definition=DEFINITION)
    inner = LONE_SURROGATE.decode().replace("\\", "\\\\").replace('"', '\\"')
    row = f'{{"connectorid": "{cid}", "openapidefinition": "{inner}"}}'.encode()
    raw = f'{{"connectorid": "{cid}", "openapidefinition": "{{\\"a\\": \\"\\ud800\\"}}"}}'
    for body in (row, raw.encode()):
        sim.faults.add(status=200, method="GET", path=r"/connectors\(", body=body, times=50)
        with pytest.raises(TargetError, match="unpaired surrogate"):
            make_dataverse({"connector": cid}).read()
        sim.faults.clear()
