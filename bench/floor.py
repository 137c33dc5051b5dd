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
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

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


def network_floor(stack: Stack, table_calls: int, patch_body: bytes, spec_api: str) -> float:
    """Seconds for the minimal request set of one update (spec GET, RP GET + a conditional GET of
    the definition blob (304, as the service's pre-read of an untouched connector), validate,
    PATCH, the definition blob again as the read-back, and ``table_calls`` entity reads on
    Azurite): the requests the service makes, sent directly and one after another."""
    token = user_token()
    rp = f"{stack.sim.url}/providers/Microsoft.PowerApps"
    cid = stack.connector_id("floor")
    query = {"api-version": "2016-11-01", "$filter": f"environment eq '{ENV}'"}
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    definition = json.loads(patch_body)["properties"]["openApiDefinition"]
    table = f"bench{stack.suffix}"
    table_port = stack.azurite.table_port
    table_path = f"/{ACCOUNT}/{table}(PartitionKey='floor',RowKey='floor')"
    with httpx.Client(timeout=30) as client:
        client.get(stack.server.url(f"/{spec_api}.json"))  # connections open, as in a warm app
        seen = client.get(f"{rp}/apis/{cid}", params=query, headers=auth).json()
        seen_blob = seen["properties"]["apiDefinitions"]["originalSwaggerUrl"]
        etag = client.get(seen_blob).headers["ETag"]  # what a warm worker's read-back remembered
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
            content=json.dumps(definition),
            headers=auth,
        ).raise_for_status()
        client.patch(
            f"{rp}/apis/{cid}", params=query, content=patch_body, headers=auth
        ).raise_for_status()
        client.get(blob).raise_for_status()  # read back: the service's quick path, one GET
        for _ in range(table_calls):
            response = client.get(
                f"http://127.0.0.1:{table_port}{table_path}", headers=table_auth("GET", table_path)
            )
            if response.status_code not in (200, 404):
                raise RuntimeError(f"floor table read refused: {response.status_code}")
        return time.perf_counter() - started


def seed_floor_connector(stack: Stack) -> None:
    stack.sim.seed_powerapps(
        ENV, stack.connector_id("floor"), stack.case.before, stack.case.properties
    )
