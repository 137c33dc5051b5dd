"""Concurrent queue invocations share one adapter per (API, target) and one HTTP client."""

from __future__ import annotations

import threading

from sync.bootstrap import TargetFactory
from sync.config import load_map_file


def test_racing_first_calls_build_one_adapter_and_one_client(stack):
    factory = TargetFactory(
        stack.settings, load_map_file(stack.map_path), secrets=None, ledger=None
    )
    built: list[object] = []
    real = factory._build

    def slow_build(api, name):
        built.append((api, name))
        threading.Event().wait(0.05)  # widen the race window
        return real(api, name)

    factory._build = slow_build  # type: ignore[method-assign]
    got: list[object] = []
    clients: list[object] = []
    workers = [
        threading.Thread(
            target=lambda: (
                got.append(factory("contoso-invoicing", "dev")),
                clients.append(factory.client()),
            )
        )
        for _ in range(8)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert built == [("contoso-invoicing", "dev")]
    assert len({id(t) for t in got}) == 1
    assert len({id(c) for c in clients}) == 1
