"""Counting what a sync sends, and the network floor: the same minimal requests sent directly with
httpx (keep-alive, no retries, no engine) to the same local servers.

Why a floor measured in the same run: absolute times on a shared 2-core box drift by 2-3x between
runs; our I/O overhead is only meaningful as a ratio against requests timed next to it.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import hmac
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from bench.stack import ENV, Stack, user_token
from tests.support.azurite import ACCOUNT, KEY

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "MERGE", "DELETE"})
LEDGER_WRITES = ("save_state", "acquire_lease", "release_lease", "record_version")
RUN_WRITES = ("start_run", "finish_item", "mark_notified", "debounce")


@contextlib.contextmanager
def count_storage_requests() -> Iterator[Counter[str]]:
    """Every request the Azure SDKs send (tables, queues, blobs), by 'METHOD service'."""
    from azure.core.pipeline.transport import RequestsTransport

    counts: Counter[str] = Counter()
    original = RequestsTransport.send

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        port = urlsplit(request.url).port
        counts[f"{request.method} {port}"] += 1
        return original(self, request, **kwargs)

    RequestsTransport.send = send  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        RequestsTransport.send = original  # type: ignore[method-assign]


@dataclass(frozen=True)
class StorageRequest:
    """One request as the Azure SDK's transport sent it (the body the service's ledger wrote)."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


@contextlib.contextmanager
def record_storage_requests() -> Iterator[list[StorageRequest]]:
    """Every request the Azure SDKs send, with its headers and body, in order: through
    azure-core's transport over httpx (sync.adapters.httpx_transport, since 2026-12-07) or
    requests' where the environment keeps that one."""
    from azure.core.pipeline.transport import RequestsTransport

    from sync.adapters import httpx_transport

    seen: list[StorageRequest] = []
    classes: list[type] = [RequestsTransport]
    if (ours := httpx_transport.transport_class()) is not None:
        classes.append(ours)
    originals = {cls: cls.send for cls in classes}

    def recording(original: Any) -> Any:
        def send(self: Any, request: Any, **kwargs: Any) -> Any:
            data = request.data
            body = data.encode() if isinstance(data, str) else data
            if body is not None and not isinstance(body, bytes):
                raise RuntimeError(f"floor: cannot replay a {type(body).__name__} body")
            seen.append(StorageRequest(request.method, request.url, dict(request.headers), body))
            return original(self, request, **kwargs)

        return send

    for cls, original in originals.items():
        cls.send = recording(original)  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        for cls, original in originals.items():
            cls.send = original  # type: ignore[method-assign]


_ROW_KEY_IN_BODY = re.compile(rb'"RowKey": "([^"]*)"')
_INNER_POST = re.compile(rb"^POST [^\r\n]* HTTP/1\.1\r?\n(?:[^\r\n]+\r?\n)*\r?\n(\{[^\r\n]*)", re.M)
_INNER_IF_MATCH = re.compile(rb"^If-Match: [^\r\n]*", re.M)
_INNER_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})", re.M)
_INNER_REQUEST = re.compile(rb"^(?:POST|PUT|PATCH|MERGE|DELETE) \S+ HTTP/1\.1\r?$", re.M)
_SIGNED = frozenset({"authorization", "x-ms-date", "date", "content-length"})


def _inserted_keys(requests: list[StorageRequest]) -> list[bytes]:
    """RowKeys the update inserted (entity POSTs, also inside a batch): a replay must use new ones."""
    bodies: list[bytes] = []
    for request in requests:
        if request.method == "POST" and request.body:
            if "$batch" in request.url:
                bodies += [m.group(1) for m in _INNER_POST.finditer(request.body)]
            else:
                bodies.append(request.body)
    return [found.group(1) for body in bodies if (found := _ROW_KEY_IN_BODY.search(body))]


def floor_partition(partition: str) -> str:
    """Where the replay writes instead of the target's own partition: the same length, so the
    bodies and a batch's inner Content-Length stay as they were."""
    api, sep, target = partition.partition("~")
    moved = "f" * len(api) + sep + target
    if not sep or moved == partition:
        raise RuntimeError(f"floor: no partition of the same length beside {partition!r}")
    return moved


def replayable(requests: list[StorageRequest], partition: str) -> list[StorageRequest]:
    """The update's storage requests made to succeed once more, without touching what the update
    left: the target's ``partition`` becomes ``floor_partition`` (seeded by
    ``seed_floor_partition``), every inserted RowKey a fresh key of the same length (bodies and a
    batch's inner Content-Length stay as they were), everywhere they are named, and the ETag
    conditions become ``*`` (the rows exist; the ETags the update saw are gone). Bodies, methods
    and the batch's operations are otherwise the update's own, so Azurite does the same work."""
    renamed = {
        key: secrets.token_hex(len(key))[: len(key)].encode() for key in _inserted_keys(requests)
    }
    moved = floor_partition(partition)
    # The partition key, as written and percent-encoded, wherever it occurs: point URLs, $filter
    # queries, entity JSON and the operations of a batch. The "<api>~<target>" form occurs
    # nowhere else (messages name a target as "<api>/<target>"; base64 has no "~").
    forms = {partition: moved, quote(partition, safe=""): quote(moved, safe="")}
    replayed = []
    for request in requests:
        url, body = request.url, request.body
        for old_form, new_form in forms.items():
            url = url.replace(old_form, new_form)
            if body is not None:
                body = body.replace(old_form.encode(), new_form.encode())
        if partition in unquote(url) or (body is not None and partition.encode() in body):
            raise RuntimeError(
                f"floor: the replay of {request.method} {url} still names {partition}"
            )
        for old, new in renamed.items():
            url = url.replace(f"RowKey='{old.decode()}'", f"RowKey='{new.decode()}'")
            if body is not None:
                body = body.replace(b'"RowKey": "' + old + b'"', b'"RowKey": "' + new + b'"')
                body = body.replace(b"RowKey='" + old + b"'", b"RowKey='" + new + b"'")
        if body is not None:
            body = _INNER_IF_MATCH.sub(b"If-Match: *", body)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SIGNED}
        if any(k.lower() == "if-match" for k in headers):
            headers = {k: ("*" if k.lower() == "if-match" else v) for k, v in headers.items()}
        replayed.append(StorageRequest(request.method, url, headers, body))
    return replayed


def send_replay(client: httpx.Client, requests: list[StorageRequest]) -> None:
    """Send ``replayable`` requests (Shared Key Lite, fresh dates); any refusal stops the bench."""
    for request in requests:
        path = urlsplit(request.url).path
        headers = {**request.headers, **table_auth(request.method, path)}
        if "Accept" in request.headers:
            headers["Accept"] = request.headers["Accept"]
        response = client.request(
            request.method, request.url, headers=headers, content=request.body
        )
        if response.status_code >= 300:
            raise RuntimeError(
                f"floor replay {request.method} {path}: {response.status_code} {response.text[:300]}"
            )
        if "$batch" not in path:
            continue
        inner = [int(code) for code in _INNER_STATUS.findall(response.content)]
        sent = len(_INNER_REQUEST.findall(request.body or b""))
        if not inner or len(inner) != sent or any(code >= 300 for code in inner):
            raise RuntimeError(
                f"floor replay batch of {sent} operations answered {inner}: {response.text[:500]}"
            )


@contextlib.contextmanager
def count_ledger_writes() -> Iterator[Counter[str]]:
    """Calls of the ledger's write methods (class-level wrap, so the lazy port is covered)."""
    from sync.adapters.ledger_tables import TableLedger

    counts: Counter[str] = Counter()
    originals = {name: getattr(TableLedger, name) for name in (*LEDGER_WRITES, *RUN_WRITES)}

    def wrap(name: str, fn: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return fn(self, *args, **kwargs)

        return wrapper

    for name, fn in originals.items():
        setattr(TableLedger, name, wrap(name, fn))
    try:
        yield counts
    finally:
        for name, fn in originals.items():
            setattr(TableLedger, name, fn)


def table_auth(method: str, path: str) -> dict[str, str]:
    """SharedKeyLite for the Table service: HMAC over the date and the canonical resource."""
    date = email.utils.formatdate(usegmt=True)
    resource = f"/{ACCOUNT}{path}"
    sig = hmac.new(base64.b64decode(KEY), f"{date}\n{resource}".encode(), hashlib.sha256).digest()
    return {
        "x-ms-date": date,
        "x-ms-version": "2019-02-02",
        "Accept": "application/json;odata=nometadata",
        "Authorization": f"SharedKeyLite {ACCOUNT}:{base64.b64encode(sig).decode()}",
    }


def network_floor(
    stack: Stack, storage: list[StorageRequest], patch_body: bytes, spec_api: str, partition: str
) -> dict[str, float]:
    """Seconds for the minimal request set of one update, sent directly and one after another:
    spec GET, RP GET + a conditional GET of the definition blob (304, as the service's pre-read of
    an untouched connector), validate, PATCH, the definition blob again as the read-back, then the
    update's own storage requests replayed (``replayable``: same methods, bodies and batch).
    ``replay`` is that floor; ``reads`` is the older stand-in measured in the same round, as many
    reads of a missing row as there were storage requests, which undercharged the writes (a
    60 KB version transaction among them)."""
    token = user_token()
    rp = f"{stack.sim.url}/providers/Microsoft.PowerApps"
    cid = stack.connector_id("floor")
    query = {"api-version": "2016-11-01", "$filter": f"environment eq '{ENV}'"}
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    definition = json.loads(patch_body)["properties"]["openApiDefinition"]
    # the body the service sends to validateApiSwagger: the definition's compact JSON, made before
    # the clock starts (the service encodes it once, for the size check, and sends it twice)
    validate_body = json.dumps(definition, separators=(",", ":"), ensure_ascii=False).encode()
    table = f"bench{stack.suffix}"
    table_port = stack.azurite.table_port
    table_path = f"/{ACCOUNT}/{table}(PartitionKey='floor',RowKey='floor')"
    replay = replayable(storage, partition)
    with httpx.Client(timeout=30) as client:
        client.get(stack.server.url(f"/{spec_api}.json"))  # connections open, as in a warm app
        seen = client.get(f"{rp}/apis/{cid}", params=query, headers=auth).json()
        seen_blob = seen["properties"]["apiDefinitions"]["originalSwaggerUrl"]
        etag = client.get(seen_blob).headers["ETag"]  # what a warm worker's read-back remembered
        client.get(
            f"http://127.0.0.1:{table_port}{table_path}", headers=table_auth("GET", table_path)
        )
        started = time.perf_counter()
        client.get(stack.server.url(f"/{spec_api}.json")).raise_for_status()
        reg = client.get(f"{rp}/apis/{cid}", params=query, headers=auth)  # read
        reg.raise_for_status()
        blob = reg.json()["properties"]["apiDefinitions"]["originalSwaggerUrl"]
        if client.get(blob, headers={"If-None-Match": etag}).status_code != 304:  # as the service
            raise RuntimeError("floor: the untouched definition blob did not answer 304")
        client.post(
            f"{rp}/objectIds/0c1e6f0a-3b7d-4c55-9a4e-2f1e8b7a9c01/validateApiSwagger",
            params={"api-version": "2016-11-01"},
            content=validate_body,
            headers=auth,
        ).raise_for_status()
        client.patch(
            f"{rp}/apis/{cid}", params=query, content=patch_body, headers=auth
        ).raise_for_status()
        client.get(blob).raise_for_status()  # read back: the service's quick path, one GET
        platform = time.perf_counter()
        send_replay(client, replay)
        replayed = time.perf_counter()
        for _ in range(len(storage)):
            response = client.get(
                f"http://127.0.0.1:{table_port}{table_path}", headers=table_auth("GET", table_path)
            )
            if response.status_code not in (200, 404):
                raise RuntimeError(f"floor table read refused: {response.status_code}")
        read = time.perf_counter()
    return {
        "replay": (platform - started) + (replayed - platform),
        "reads": (platform - started) + (read - replayed),
        "storage_replay": replayed - platform,
        "storage_reads": read - replayed,
    }


def seed_floor_partition(stack: Stack, partition: str) -> None:
    """Copy the target's state row into ``floor_partition``: the replay updates it there (under
    ``If-Match: *``) instead of the target's own, which the next warm update reads."""
    from azure.data.tables import TableClient, UpdateMode

    table = TableClient.from_connection_string(
        stack.azurite.connection_string, table_name=f"bench{stack.suffix}"
    )
    with table:
        state = dict(table.get_entity(partition, "state"))
        state["PartitionKey"] = floor_partition(partition)
        table.upsert_entity(state, mode=UpdateMode.REPLACE)


def seed_floor_connector(stack: Stack) -> None:
    stack.sim.seed_powerapps(
        ENV, stack.connector_id("floor"), stack.case.before, stack.case.properties
    )
