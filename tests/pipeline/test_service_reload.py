"""A Service replaced by a map reload is freed, though the collector froze the first one.

``sync.collector.settle`` runs ``gc.freeze()`` after a worker's first item: every object alive
then, the first Service's wiring included, is out of every later cyclic collection. So a replaced
Service must not sit in a reference cycle, or its HTTP connection pool (open sockets), token
providers and ledger live as long as the process. A map changes on a running worker whenever
someone edits it (a blob map is revalidated every 30 s).
"""

from __future__ import annotations

import gc
import json
import os
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sync import bootstrap, collector
from sync.settings import Settings
from tests.support.spec_server import SpecServer


def a_map(server: SpecServer, **api_extra: Any) -> dict[str, Any]:
    """One API with a Power Apps target (its adapter reads the ledger through the factory's
    wiring) behind a delegated credential, as a production map has it."""
    return {
        "credentials": {
            "pp-user": {
                "delegated": {
                    "tenant": "contoso.onmicrosoft.com",
                    "clientId": "51f81489-12ee-4a9e-aaae-a2591f45987d",
                    "refreshToken": "kv:pp-user-refresh",
                }
            }
        },
        "apis": {
            "orders": {
                "spec": {"url": server.url("/openapi.json")},
                "targets": [
                    {
                        "name": "prod",
                        "powerapps": {
                            "environment": "Default-1",
                            "credential": "pp-user",
                            "oauthSecret": "none",
                        },
                    }
                ],
                **api_extra,
            }
        },
    }


@pytest.fixture
def server() -> Iterator[SpecServer]:
    with SpecServer() as running:
        running.set_spec("/openapi.json", b'{"swagger": "2.0"}')
        yield running


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The real ``collector.settle`` in this process, undone afterwards."""
    thresholds = gc.get_threshold()
    monkeypatch.setattr(collector, "_settled", False)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        bootstrap._services.clear()


def test_a_service_replaced_by_a_map_reload_is_freed_after_the_collector_froze_it(
    server: SpecServer, tmp_path: Path, settled: None
) -> None:
    path = tmp_path / "sync-map.json"
    path.write_text(json.dumps(a_map(server)))
    settings = Settings(config_path=str(path), allow_private_hosts=frozenset({"127.0.0.1"}))

    # the first item: wires the service, builds its target, opens a pooled connection
    first = bootstrap.service(settings)
    target = first.ports.targets("orders", "prod")
    client = first.ports.targets.client()
    assert client.get(server.url("/openapi.json")).status_code == 200  # kept alive in the pool
    old = {
        "service": weakref.ref(first),
        "pipeline": weakref.ref(first.pipeline),
        "target factory": weakref.ref(first.ports.targets),
        "target": weakref.ref(target),
        "http client": weakref.ref(client),
    }
    del first, target, client
    collector.settle()  # what the triggers do after a Functions worker's first item
    assert gc.get_freeze_count() > 0

    # the map is edited: the next invocation gets new wiring and drops the old
    path.write_text(json.dumps(a_map(server, breaking="block")))
    os.utime(path, ns=(1, 1))  # a new mtime even within the file system's resolution
    second = bootstrap.service(settings)
    assert second.map.api("orders").breaking == "block"
    gc.collect()

    alive = [name for name, ref in old.items() if ref() is not None]
    assert alive == [], f"still alive after the reload: {alive}"
