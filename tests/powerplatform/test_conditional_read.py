"""The stored definition is read with ``If-None-Match``: a blob not written since the last read is
not downloaded again (Blob Storage answers 304), and any write brings the new bytes.

Proved twice: against the simulator's blob endpoint (which follows Get Blob's conditional
headers) and against Azurite's, a real Blob Storage implementation no one here wrote."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sync.adapters import stored_definitions
from sync.errors import TargetError
from sync.spec.canonical import sha256_hex
from tests.powerplatform.conftest import ENV
from tests.powerplatform.samples import APIKEY_PROPERTIES, DEFINITION, changed
from tests.simulators.powerplatform import Simulator

CID = "shared_conditional-5f0629412a7d1fe83e-5f6f049093c9b7a698"


def blob_gets(sim: Simulator) -> list[dict[str, str]]:
    return [r.headers for r in sim.requests_to("GET", r"/blob/api-swagger-files/")]


def definition_url(sim: Simulator, http: httpx.Client) -> str:
    """The registration's SAS URL of the original definition (re-seeding issues a new SAS)."""
    from tests.powerplatform.conftest import mint

    reg = http.get(
        f"{sim.url}/providers/Microsoft.PowerApps/apis/{CID}",
        params={"api-version": "2016-11-01", "$filter": f"environment eq '{ENV}'"},
        headers={"Authorization": "Bearer " + mint("https://service.powerapps.com/")},
    )
    return str(reg.json()["properties"]["apiDefinitions"]["originalSwaggerUrl"])


def test_the_simulators_blob_follows_get_blobs_conditional_headers(sim: Simulator) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    with httpx.Client(timeout=10) as http:
        url = definition_url(sim, http)
        first = http.get(url)
        etag = first.headers["ETag"]
        assert first.status_code == 200 and json.loads(first.content) == DEFINITION
        same = http.get(url, headers={"If-None-Match": etag})
        assert (same.status_code, same.content, same.headers["ETag"]) == (304, b"", etag)
        assert http.get(url, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
        assert http.get(url, headers={"If-None-Match": "*"}).status_code == 304
        assert http.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
        sim.seed_powerapps(ENV, CID, changed(DEFINITION), APIKEY_PROPERTIES)  # written again
        after = http.get(definition_url(sim, http), headers={"If-None-Match": etag})
        assert after.status_code == 200 and after.headers["ETag"] != etag


def test_an_untouched_connector_is_read_again_without_downloading_its_definition(
    sim: Simulator, make_powerapps: Any
) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": CID})
    first = target.read()
    again = make_powerapps({"connector": CID}).read()  # another target object, same process
    assert again.definition == first.definition == DEFINITION
    assert again.definition_sha256 == first.definition_sha256
    first_get, second_get = blob_gets(sim)
    assert "if-none-match" not in first_get
    assert second_get["if-none-match"].startswith('"0x')  # answered 304: nothing downloaded
    pool = target._client._transport._pool  # the 304 was read: its connection is reused
    assert len(pool.connections) == 1 and pool.connections[0].is_idle()


def test_a_connector_written_since_is_downloaded_in_full(sim: Simulator, make_powerapps: Any):
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    assert make_powerapps({"connector": CID}).read().definition == DEFINITION
    edited = changed(DEFINITION)
    sim.seed_powerapps(ENV, CID, edited, APIKEY_PROPERTIES)  # a portal edit: a new blob write
    assert make_powerapps({"connector": CID}).read().definition == edited
    assert make_powerapps({"connector": CID}).read().definition == edited  # and remembered anew


def test_nothing_is_asked_conditionally_once_the_document_itself_is_forgotten(
    sim: Simulator, make_powerapps: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    store = stored_definitions.StoredDefinitions(max_entries=1)
    monkeypatch.setattr(stored_definitions, "SHARED", store)
    make_powerapps({"connector": CID}).read()
    store.parsed(b'{"other": true}', json.loads)  # pushes the definition out (one entry)
    assert make_powerapps({"connector": CID}).read().definition == DEFINITION
    assert all("if-none-match" not in h for h in blob_gets(sim))  # a 304 could not be answered


@pytest.mark.azurite
def test_against_azurites_blob_service_a_304_stands_for_the_bytes_read_before(
    azurite: Any, make_powerapps: Any, sim: Simulator
) -> None:
    from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

    from tests.support.azurite import ACCOUNT, KEY

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client("api-swagger-files")
    if not container.exists():
        container.create_container()
    blob = container.get_blob_client(f"{CID}-{datetime.now(UTC).timestamp()}.json_original")
    blob.upload_blob(json.dumps(DEFINITION, indent=2).encode(), overwrite=True)
    sas = generate_blob_sas(
        ACCOUNT,
        container.container_name,
        blob.blob_name,
        account_key=KEY,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    properties = {"apiDefinitions": {"originalSwaggerUrl": f"{blob.url}?{sas}"}}
    target = make_powerapps({"connector": CID})
    statuses: list[int] = []
    real_send = target._client.send

    def send(request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = real_send(request, **kwargs)
        statuses.append(response.status_code)
        return response

    target._client.send = send  # type: ignore[method-assign]
    try:
        first = target._download_definition(properties, CID)
        again = target._download_definition(properties, CID)
        blob.upload_blob(json.dumps(changed(DEFINITION)).encode(), overwrite=True)
        third = target._download_definition(properties, CID)
    finally:
        del target._client.send
    assert statuses == [200, 304, 200]
    assert first is not None and again == first and first[0] == DEFINITION
    assert third is not None and third[0] == changed(DEFINITION)


def test_an_update_prepares_the_read_backs_comparison_while_the_write_is_in_flight(
    sim: Simulator, make_powerapps: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PATCH's wait is idle time: the written definition's marshal form is made then, so the
    read-back marshals only what it downloads (and still accepts it)."""
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": CID})
    current = target.read()
    edited = changed(DEFINITION)
    prepared: list[object] = []
    real = stored_definitions.expect_soon
    monkeypatch.setattr(
        stored_definitions, "expect_soon", lambda doc: prepared.append(doc) or real(doc)
    )
    target.write(edited, current)
    deadline = time.monotonic() + 5
    while not prepared and time.monotonic() < deadline:  # a background task
        time.sleep(0.01)
    assert len(prepared) == 1 and prepared[0] is edited
    target.verify(edited, sha256_hex(edited))  # the quick read-back accepts it
    assert sim.powerapps_connector(ENV, CID)["definition"] == edited


def test_after_one_read_back_the_stores_spelling_spares_parsing_the_next(
    sim: Simulator, make_powerapps: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator's blob serves what it stored written out again (``json.dumps`` defaults),
    not the compact bytes it was sent. The first read-back is parsed; the next updates' read-backs
    are the written definitions in that spelling, so they are compared as bytes, and a definition
    the store altered is still caught."""
    import sync.adapters.powerapps as powerapps

    monkeypatch.setattr(stored_definitions, "SHARED", stored_definitions.StoredDefinitions())
    parsed: list[str] = []
    real = powerapps.json_object
    monkeypatch.setattr(
        powerapps, "json_object", lambda text, **kw: parsed.append(kw["what"]) or real(text, **kw)
    )
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": CID})
    definition = DEFINITION
    for n in range(3):
        current = target.read()
        definition = {**changed(definition), "x-update": n}
        target.write(definition, current)
        target.verify(definition, sha256_hex(definition))
        assert sim.powerapps_connector(ENV, CID)["definition"] == definition
    assert len(parsed) == 2  # the seeded definition, and the first read-back

    current = target.read()
    written = {**changed(definition), "x-update": 3}
    target.write(written, current)
    # the store keeps another document than was written: read back, parsed, refused
    sim.seed_powerapps(ENV, CID, {**written, "host": "altered.example.com"}, APIKEY_PROPERTIES)
    target._verify_seconds = 0.2  # the full read-back's polling, shortened
    with pytest.raises(TargetError, match="read-back does not match"):
        target.verify(written, sha256_hex(written))
    assert len(parsed) > 2
