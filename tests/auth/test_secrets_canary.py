"""Secrets canary (issue 7 item 6): a full sync with a canary webhook secret and a real bearer
token, then every place the service writes is searched for both.

Places searched: every log record at DEBUG from every logger (message, args, extras, traceback),
the raw ledger entities as Azurite stores them (string properties, and the binary chunks and
``…Z`` properties decompressed with the ledger's own codec), the ledger's blob container, the queue
messages (parsed, and as Azurite stores them, poison queue included), the card bodies the webhook received, and every HTTP response (body and headers).
The webhook URL is where the card is POSTed, so the receiver's request line is the one place the
canary is expected; its bodies must not carry it. A second canary is the ``sig`` of the sync's
``specUrl``: the spec server's request line (the download when the run is planned) is the one
place it may reach.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

from sync import settings as names
from sync.adapters import ledger_codec
from sync.adapters.secrets_env import env_var_for
from tests.auth.authority import CALLER_OID
from tests.notify.receiver import Answer, webhook
from tests.pipeline.conftest import SPEC_PATH, sync_map
from tests.pipeline.test_function_app import call, http, received

pytestmark = [pytest.mark.reliability, pytest.mark.azurite]


@pytest.fixture
def every_logger_at_debug(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog on the root at DEBUG, and no logger on the way filtering a level out."""
    manager = logging.root.manager
    before = {
        name: logger.level
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    for name in before:
        logging.getLogger(name).setLevel(logging.NOTSET)
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def record_texts(record: logging.LogRecord) -> Iterator[str]:
    yield record.getMessage()
    yield repr(record.args)
    yield repr({k: v for k, v in record.__dict__.items() if k not in {"args", "msg"}})
    if record.exc_info:
        yield logging.Formatter().formatException(record.exc_info)


def entity_texts(entity: dict[str, Any]) -> Iterator[str]:
    """Every property as text, binary ones decompressed the way the ledger reads them."""
    chunks = sorted(
        k for k in entity if k.startswith(ledger_codec.CHUNK_PREFIX) and k[3:].isdigit()
    )
    if chunks:
        joined = ledger_codec.join_chunks(entity, len(chunks), where="canary")
        yield ledger_codec.zlib_decompress(joined, where="canary").decode("utf-8")
    for name, value in entity.items():
        if isinstance(value, bytes | bytearray):
            yield bytes(value).decode("latin-1")
            if name not in chunks:
                with contextlib.suppress(ledger_codec.LedgerCorruptError, UnicodeDecodeError):
                    yield ledger_codec.zlib_decompress(bytes(value), where=name).decode("utf-8")
        else:
            yield f"{name}={value}"


def stored_texts(settings: Any) -> tuple[list[str], list[str]]:
    """(ledger entity texts, ledger blob texts) straight from Azurite."""
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient

    table = TableClient.from_connection_string(
        settings.storage_connection_string, table_name=settings.ledger_table
    )
    entities = [text for e in table.list_entities() for text in entity_texts(dict(e))]
    blobs: list[str] = []
    container = ContainerClient.from_connection_string(
        settings.storage_connection_string, container_name=settings.ledger_container
    )
    if container.exists():
        for blob in container.list_blobs():
            data = container.download_blob(blob.name).readall()
            blobs.append(data.decode("latin-1"))
            with contextlib.suppress(ledger_codec.LedgerCorruptError, UnicodeDecodeError):
                blobs.append(ledger_codec.zlib_decompress(data, where=blob.name).decode("utf-8"))
    return entities, blobs


def queue_texts(settings: Any) -> list[str]:
    """Every message of the work queue and of its poison queue, decoded as the host reads them
    (peeked: the messages stay for the workers). A caller's ``specUrl`` travelled here in clear
    until 2026-12-07; its spec is now staged when the run is planned."""
    import base64

    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import QueueClient

    texts: list[str] = []
    for name in (settings.work_queue, f"{settings.work_queue}-poison"):
        queue = QueueClient.from_connection_string(settings.storage_connection_string, name)
        with contextlib.suppress(ResourceNotFoundError):
            for message in queue.peek_messages(max_messages=32):
                texts.append(message.content)
                texts.append(base64.b64decode(message.content).decode("utf-8"))
    return texts


def response_text(resp: func.HttpResponse) -> str:
    return resp.get_body().decode("utf-8", "replace") + json.dumps(dict(resp.headers))


def test_no_secret_reaches_logs_ledger_cards_queue_or_responses(
    secured, authority, monkeypatch, every_logger_at_debug
):
    canary = "CANARY" + uuid.uuid4().hex
    token = authority.token()
    found: dict[str, list[str]] = {}

    spec_canary = "SPECSAS" + uuid.uuid4().hex
    spec_url = f"{secured.server.url(SPEC_PATH)}?sv=2024-11-04&sr=b&sig={spec_canary}"

    def scan(where: str, texts: Any) -> None:
        for text in texts:
            for secret, name in (
                (canary, "webhook sig"),
                (token, "bearer token"),
                (spec_canary, "specUrl sig"),
            ):
                if secret in text:
                    found.setdefault(where, []).append(name)

    with webhook([Answer(202)], sig=f"sig={canary}") as receiver:
        assert canary in receiver.url
        doc = sync_map(secured.server)
        doc["notify"] = {"teams": {"webhook": "kv:teams-webhook-url"}}
        secured.map_path.write_text(json.dumps(doc))
        monkeypatch.setenv(names.SECRETS_FROM_ENV, "1")
        monkeypatch.setenv(env_var_for("teams-webhook-url"), receiver.url)
        secured.serve("openapi-v1.yaml")

        responses = []
        dry = http(
            "sync_api",
            "POST",
            "http://localhost/api/sync",
            json.dumps({"api": "contoso-invoicing", "dryRun": True}).encode(),
        )
        responses.append(dry)
        accepted = http(
            "sync_api",
            "POST",
            "http://localhost/api/sync",
            json.dumps({"api": "contoso-invoicing", "specUrl": spec_url}).encode(),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert accepted.status_code == 202, accepted.get_body()
        run_id = json.loads(accepted.get_body())["runId"]
        responses.append(accepted)

        svc = secured.service()
        messages = received(svc)
        assert len(messages) == 2
        scan("queue", [json.dumps(item.to_dict()) for item, _ in messages])
        scan("queue (as stored)", queue_texts(secured.settings))
        for item, handle in messages:
            call("work_item", func.QueueMessage(id="m", body=json.dumps(item.to_dict()).encode()))
            svc.ports.queue.delete(handle)
        responses.append(
            http("run_status", "GET", f"http://x/api/runs/{run_id}", route={"id": run_id})
        )
        for target in ("dev", "prod"):
            responses.append(
                http(
                    "api_version",
                    "GET",
                    "http://x/",
                    route={"api": "contoso-invoicing", "n": "1"},
                    params={"target": target, "include": "definition"},
                )
            )
        wrong = authority.token(aud="api://other")
        responses.append(
            http(
                "sync_api",
                "POST",
                "http://localhost/api/sync",
                json.dumps({"api": "contoso-invoicing"}).encode(),
                headers={"Authorization": f"Bearer {wrong}"},
            )
        )

    # controls: each place searched really holds this run's data
    assert len(receiver.received) == 1, "the card was not delivered to the webhook"
    assert canary in receiver.received[0].path  # the sig travels where it must: the request line
    card_text = receiver.received[0].body.decode("utf-8")
    assert f"oid:{CALLER_OID}" in card_text
    entities, blobs = stored_texts(secured.settings)
    assert any("ListInvoices" in text for text in entities), "definitions were not decompressed"
    assert any(run_id in text for text in entities)
    logs = [t for r in every_logger_at_debug.records for t in record_texts(r)]
    assert any(run_id in text for text in logs)
    assert any(r.levelno == logging.DEBUG for r in every_logger_at_debug.records)
    assert [r.status_code for r in responses] == [200, 202, 200, 200, 200, 401]
    spec_paths = [r.path for r in secured.server.state.requests]
    assert any(spec_canary in path for path in spec_paths)  # where the sig must go: the download

    scan("card body", [card_text, json.dumps(receiver.received[0].headers)])
    scan("ledger table", entities)
    scan("ledger blobs", blobs)
    scan("logs", logs)
    scan("logs (formatted)", [every_logger_at_debug.text])
    scan("http responses", [response_text(r) for r in responses])
    scan("cards file", [json.dumps(secured.cards())])
    assert found == {}, f"secrets leaked: {found}"
