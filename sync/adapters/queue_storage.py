"""The work queue on Azure Queue Storage: what the planner sends and the worker trigger consumes.

Message text is base64 of the WorkItem JSON because the Functions queue trigger decodes base64 by
default (host.json ``extensions.queues.messageEncoding``). ``receive``/``delete``/``peek_poison``
exist for the local CLI worker loop, which runs items without a Functions host and mimics the
host's poison handling (after ``max_dequeue_count`` deliveries a message moves to
``<queue>-poison``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sync.adapters.storage_clients import StorageAccount, call_storage, default_credential
from sync.errors import ConfigError, PermanentError
from sync.models import WorkItem

if TYPE_CHECKING:
    from sync.settings import Settings

log = logging.getLogger(__name__)
LOST_MESSAGE_CODES = frozenset({"PopReceiptMismatch", "MessageNotFound"})  # see delete

MAX_MESSAGE_BYTES = 64 * 1024  # Queue Storage limit on the message text
MAX_VISIBILITY_SECONDS = 7 * 24 * 3600
HOST_MAX_DEQUEUE_COUNT = 5  # the Functions host default, as host.json's queues.maxDequeueCount
QUEUE_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z")


def encode_item(item: WorkItem) -> str:
    """base64(JSON) as the trigger expects; refuses anything the queue would reject."""
    text = base64.b64encode(
        json.dumps(item.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()
    ).decode("ascii")
    if len(text) >= MAX_MESSAGE_BYTES:
        raise PermanentError(
            f"work item for {item.api}/{item.target} (run {item.run_id}) is {len(text)} bytes "
            f"encoded, the queue limit is {MAX_MESSAGE_BYTES}",
            where="queue.send",
        )
    return text


def decode_item(text: str) -> WorkItem:
    """The inverse of ``encode_item``; a message no one here wrote is a ``PermanentError``."""
    try:
        data = json.loads(base64.b64decode(text, validate=True))
        return WorkItem.from_dict(data)
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise PermanentError(
            f"queue message is not a base64 JSON work item ({type(exc).__name__})",
            where="queue.receive",
        ) from None


@dataclass(frozen=True)
class PoisonMessage:
    """A message the host (or the local loop) gave up on; ``item`` is None if it did not decode."""

    id: str
    text: str
    dequeue_count: int
    inserted_on: str | None
    item: WorkItem | None


def _storage_errors(where: str, call: Callable[[], Any]) -> Any:
    """Map azure-core errors (already retried by the SDK pipeline) onto the service's errors."""
    return call_storage(where, call, service="queue", with_reason=False)


class StorageWorkQueue:
    """``sync.ports.WorkQueue`` on Azure Queue Storage (plus the local worker-loop operations)."""

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        queue_endpoint: str | None = None,
        credential: Any = None,
        queue_name: str,
        poison_queue_name: str | None = None,
        credential_factory: Callable[[], Any] | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        """``client_options`` go to the azure SDK clients (e.g. ``retry_total``, timeouts)."""
        if not connection_string and not queue_endpoint:
            raise ConfigError(
                "the work queue needs a storage connection string or a queue endpoint",
                path="SYNC_QUEUE_ENDPOINT",
            )
        for name in (queue_name, poison_queue_name or f"{queue_name}-poison"):
            if not QUEUE_NAME.match(name or ""):
                raise ConfigError(
                    f"queue name {name!r} does not match {QUEUE_NAME.pattern}",
                    path="SYNC_WORK_QUEUE",
                )
        self._account = StorageAccount(
            connection_string=connection_string,
            credential=credential,
            credential_factory=credential_factory,
            client_options=client_options,
        )
        self._queue_endpoint = queue_endpoint
        self.queue_name = queue_name
        self.poison_queue_name = poison_queue_name or f"{queue_name}-poison"
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, credential_factory: Callable[[], Any] | None = None
    ) -> StorageWorkQueue:
        if settings.storage_connection_string:
            return cls(
                connection_string=settings.storage_connection_string,
                queue_name=settings.work_queue,
                poison_queue_name=settings.poison_queue,
            )
        if not settings.queue_endpoint:
            raise ConfigError(
                "set SYNC_QUEUE_ENDPOINT (or SYNC_STORAGE_CONNECTION_STRING locally)",
                path="SYNC_QUEUE_ENDPOINT",
            )
        return cls(
            queue_endpoint=settings.queue_endpoint,
            queue_name=settings.work_queue,
            poison_queue_name=settings.poison_queue,
            credential_factory=credential_factory or default_credential,
        )

    def _client(self, name: str) -> Any:
        """One client per queue, the queue created on first use (not at import or construction)."""
        client = self._clients.get(name)
        if client is not None:
            return client
        with self._lock:
            if name not in self._clients:
                from azure.core.exceptions import ResourceExistsError
                from azure.storage.queue import QueueClient

                client = self._account.client(QueueClient, self._queue_endpoint, queue_name=name)
                try:
                    _storage_errors(f"queue.create({name})", client.create_queue)
                except PermanentError as exc:
                    if not isinstance(exc.__cause__, ResourceExistsError):
                        raise
                self._clients[name] = client
        return self._clients[name]

    def send(self, item: WorkItem, *, visibility_timeout: int | None = None) -> None:
        """Enqueue one item; ``visibility_timeout`` (seconds) delays it, e.g. to wait out a hold."""
        if visibility_timeout is not None and not 0 <= visibility_timeout <= MAX_VISIBILITY_SECONDS:
            raise PermanentError(
                f"visibility_timeout {visibility_timeout!r} is outside 0..{MAX_VISIBILITY_SECONDS}",
                where="queue.send",
            )
        text = encode_item(item)
        client = self._client(self.queue_name)
        _storage_errors(
            f"queue.send({self.queue_name})",
            lambda: client.send_message(text, visibility_timeout=visibility_timeout),
        )
        log.info("queued %s/%s for run %s", item.api, item.target, item.run_id)

    def receive(
        self,
        max_messages: int = 1,
        visibility_timeout: int = 300,
        *,
        max_dequeue_count: int = HOST_MAX_DEQUEUE_COUNT,
        poisoned: list[WorkItem] | None = None,
    ) -> list[tuple[WorkItem, Any]]:
        """Take up to ``max_messages`` (hidden for ``visibility_timeout`` s) as (item, handle).

        Like the Functions host, a message delivered more than ``max_dequeue_count`` times, or one
        that does not decode, goes to the poison queue instead of being returned. The items moved
        for their deliveries are appended to ``poisoned``: under the host, the poison queue's
        trigger records them; a local loop has none and must do it itself.
        """
        if not 1 <= visibility_timeout <= MAX_VISIBILITY_SECONDS:
            raise PermanentError(
                f"visibility_timeout {visibility_timeout!r} is outside 1..{MAX_VISIBILITY_SECONDS}",
                where="queue.receive",
            )
        client = self._client(self.queue_name)
        messages = _storage_errors(
            f"queue.receive({self.queue_name})",
            lambda: list(
                client.receive_messages(
                    messages_per_page=max(1, min(max_messages, 32)),
                    visibility_timeout=visibility_timeout,
                    max_messages=max_messages,
                )
            ),
        )
        out: list[tuple[WorkItem, Any]] = []
        for message in messages:
            try:
                item = decode_item(message.content)
            except PermanentError as exc:
                log.warning(
                    "message %s is not a work item (%s); moving it to poison", message.id, exc
                )
                self._to_poison(message)
                continue
            if message.dequeue_count > max_dequeue_count:
                log.warning(
                    "message %s for %s/%s was delivered %d times; moving it to poison",
                    message.id,
                    item.api,
                    item.target,
                    message.dequeue_count,
                )
                self._to_poison(message)
                if poisoned is not None:
                    poisoned.append(item)
                continue
            out.append((item, message))
        return out

    def delete(self, handle: Any) -> bool:
        """Acknowledge a received message (its pop receipt proves we still hold it).

        False when it is no longer ours: work that outlasted the visibility timeout let another
        receiver take the message (a new pop receipt, so ours gets 400 PopReceiptMismatch) or
        finish and delete it (404 MessageNotFound). The work done stays done and that delivery
        does it again (items are idempotent), as the host's own listener treats it; it is not a
        failure of this worker's loop."""
        from azure.core.exceptions import HttpResponseError

        client = self._client(self.queue_name)

        def delete() -> bool:
            try:
                client.delete_message(handle)
            except HttpResponseError as exc:
                code = getattr(exc, "error_code", None)  # the SDK's StorageErrorCode, or a string
                if getattr(code, "value", code) not in LOST_MESSAGE_CODES:
                    raise
                log.warning(
                    "queue message %s was received again by another worker before it was "
                    "deleted here (%s); that delivery runs it again",
                    getattr(handle, "id", "?"),
                    getattr(code, "value", code),
                )
                return False
            return True

        return bool(_storage_errors(f"queue.delete({self.queue_name})", delete))

    def release(self, handle: Any, delay_seconds: int = 0) -> None:
        """Give a received message back (visible again after ``delay_seconds``), like a host retry.

        The dequeue count is kept, so a message released too often still ends in poison.
        """
        if not 0 <= delay_seconds <= MAX_VISIBILITY_SECONDS:
            raise PermanentError(
                f"delay_seconds {delay_seconds!r} is outside 0..{MAX_VISIBILITY_SECONDS}",
                where="queue.release",
            )
        client = self._client(self.queue_name)
        _storage_errors(
            f"queue.release({self.queue_name})",
            lambda: client.update_message(handle, visibility_timeout=delay_seconds),
        )

    def _to_poison(self, message: Any) -> None:
        poison = self._client(self.poison_queue_name)
        _storage_errors(
            f"queue.send({self.poison_queue_name})", lambda: poison.send_message(message.content)
        )
        self.delete(message)

    def peek_poison(self, max_messages: int = 32) -> list[PoisonMessage]:
        """Look at the poison queue without taking anything (for the CLI and the demo)."""
        poison = self._client(self.poison_queue_name)
        peeked = _storage_errors(
            f"queue.peek({self.poison_queue_name})",
            lambda: poison.peek_messages(max_messages=max(1, min(max_messages, 32))),
        )
        out = []
        for message in peeked:
            try:
                item: WorkItem | None = decode_item(message.content)
            except PermanentError:
                item = None
            inserted = message.inserted_on.isoformat() if message.inserted_on else None
            out.append(
                PoisonMessage(
                    id=message.id,
                    text=message.content,
                    dequeue_count=message.dequeue_count or 0,
                    inserted_on=inserted,
                    item=item,
                )
            )
        return out
