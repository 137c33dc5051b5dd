"""The work queue on Azurite: base64 JSON as the Functions trigger expects, poison handling."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from azure.core.exceptions import ResourceExistsError

from sync.adapters.queue_storage import (
    MAX_MESSAGE_BYTES,
    StorageWorkQueue,
    decode_item,
    encode_item,
)
from sync.errors import ConfigError, PermanentError
from sync.models import SyncRequest, WorkItem, new_run_id
from sync.settings import Settings

pytestmark = pytest.mark.azurite


def _item(target: str = "prod", **request) -> WorkItem:
    return WorkItem(
        run_id=new_run_id(),
        api="contoso-invoicing",
        target=target,
        request=SyncRequest(api="contoso-invoicing", reason="event", event_id="evt-1", **request),
    )


def _raw_client(azurite, queue: StorageWorkQueue, name: str | None = None):
    from azure.storage.queue import QueueClient

    client = QueueClient.from_connection_string(
        azurite.connection_string, queue_name=name or queue.queue_name
    )
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def test_send_receive_round_trip(queue):
    item = _item(targets=("prod", "test"), commit="abc")
    queue.send(item)
    got = queue.receive(max_messages=5, visibility_timeout=30)
    assert [g[0] for g in got] == [item]
    queue.delete(got[0][1])
    assert queue.receive(max_messages=5, visibility_timeout=30) == []


def test_message_text_is_base64_json_like_the_trigger_expects(azurite, queue):
    item = _item()
    queue.send(item)
    raw = _raw_client(azurite, queue).receive_message(visibility_timeout=30)
    decoded = json.loads(base64.b64decode(raw.content, validate=True))
    assert decoded["runId"] == item.run_id
    assert decoded["target"] == "prod"
    assert decoded["request"]["event_id"] == "evt-1"
    assert WorkItem.from_dict(decoded) == item


def test_delayed_item_is_invisible_until_due(azurite, queue):
    queue.send(_item(), visibility_timeout=3600)
    assert queue.receive(max_messages=5, visibility_timeout=30) == []
    assert _raw_client(azurite, queue).get_queue_properties().approximate_message_count == 1


def test_bad_visibility_timeouts_are_refused(queue):
    with pytest.raises(PermanentError, match="visibility_timeout"):
        queue.send(_item(), visibility_timeout=-1)
    with pytest.raises(PermanentError, match="visibility_timeout"):
        queue.receive(visibility_timeout=0)
    with pytest.raises(PermanentError, match="delay_seconds"):
        queue.release(object(), delay_seconds=8 * 24 * 3600)


def test_released_message_with_delay_stays_hidden(queue):
    queue.send(_item())
    [(_, handle)] = queue.receive(visibility_timeout=60)
    queue.release(handle, delay_seconds=3600)
    assert queue.receive(visibility_timeout=60) == []


def test_oversized_item_is_refused_before_sending(queue):
    huge = _item(subject="s" * MAX_MESSAGE_BYTES)
    with pytest.raises(PermanentError, match="queue limit"):
        queue.send(huge)
    assert queue.receive(max_messages=5, visibility_timeout=30) == []


def test_too_many_deliveries_move_to_poison(queue):
    item = _item()
    queue.send(item)
    for _ in range(2):
        [(got, handle)] = queue.receive(visibility_timeout=60, max_dequeue_count=2)
        assert got == item
        queue.release(handle)  # the attempt failed: give it back at once
    assert queue.receive(visibility_timeout=60, max_dequeue_count=2) == []
    poison = queue.peek_poison()
    assert [p.item for p in poison] == [item]
    assert queue.receive(max_messages=5, visibility_timeout=30) == []


@pytest.mark.parametrize(
    "text",
    [
        "not base64!",
        base64.b64encode(b"{not json").decode(),
        base64.b64encode(b'{"runId": "x"}').decode(),
    ],
)
def test_undecodable_message_goes_to_poison(azurite, queue, text):
    _raw_client(azurite, queue).send_message(text)
    assert queue.receive(max_messages=5, visibility_timeout=30) == []
    poison = queue.peek_poison()
    assert [(p.text, p.item) for p in poison] == [(text, None)]


@pytest.mark.parametrize("text", ["", "@@@", base64.b64encode(b"[1,2]").decode()])
def test_decode_item_rejects_non_items(text):
    with pytest.raises(PermanentError, match="not a base64 JSON work item"):
        decode_item(text)


def test_encode_decode_are_inverse():
    item = _item(targets=("a",), dry_run=True)
    assert decode_item(encode_item(item)) == item


def test_from_settings_picks_connection_string_or_endpoint(azurite):
    local = StorageWorkQueue.from_settings(
        Settings(storage_connection_string=azurite.connection_string, work_queue="work-one")
    )
    assert (local.queue_name, local.poison_queue_name) == ("work-one", "work-one-poison")
    made: list[str] = []
    remote = StorageWorkQueue.from_settings(
        Settings(queue_endpoint="https://acct.queue.core.windows.net"),
        credential_factory=lambda: made.append("cred") or object(),
    )
    assert made == []  # the credential is built on first use, not at construction
    assert remote.queue_name == "sync-work"
    with pytest.raises(ConfigError, match="SYNC_QUEUE_ENDPOINT"):
        StorageWorkQueue.from_settings(Settings())


def test_a_message_another_worker_took_over_is_not_an_error(queue, caplog):
    """Work that outlasted the visibility timeout: another receiver holds the message now (new
    pop receipt), then deletes it; the first worker's late delete reports it, without raising."""
    import time

    queue.send(_item())
    [(_, late)] = queue.receive(visibility_timeout=1)
    time.sleep(2.5)  # well past the 1 s visibility timeout, even on a slow machine
    [(_, current)] = queue.receive(visibility_timeout=60)
    assert queue.delete(late) is False  # 400 PopReceiptMismatch
    assert "received again by another worker" in caplog.text
    assert queue.delete(current) is True
    assert queue.delete(late) is False  # 404 MessageNotFound: gone altogether
    assert queue.receive(visibility_timeout=60) == []


def test_other_refusals_of_a_delete_still_raise(azurite, queue):
    queue.send(_item())
    [(_, handle)] = queue.receive(visibility_timeout=60)
    _raw_client(azurite, queue).delete_queue()  # 404 QueueNotFound: the setup is wrong
    with pytest.raises(PermanentError, match="queue answered HTTP 404"):
        queue.delete(handle)


def test_decode_item_rejects_json_nested_past_the_recursion_limit():
    with pytest.raises(PermanentError, match="not a base64 JSON work item"):
        decode_item(base64.b64encode(b"[" * 100_000).decode())
