"""Fixtures for the fetch tests: a running spec server and small, fast settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest

from sync.adapters.spec_http import HttpSpecSource
from sync.settings import Settings
from tests.support.spec_server import SpecServer

LOCAL = frozenset({"127.0.0.1"})


def fast_settings(**changes: object) -> Settings:
    """Budgets small enough that a whole retry story takes well under a second."""
    values: dict[str, object] = {
        "fetch_budget_seconds": 3.0,
        "fetch_timeout_seconds": 2.0,
        "fetch_max_bytes": 64 * 1024,
        "allow_private_hosts": LOCAL,
    }
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


def fake_resolver(table: Mapping[str, Sequence[str]]) -> Callable[[str, int], list[str]]:
    """A resolver that knows only ``table`` and records every lookup in ``.calls``."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in table:
            raise AssertionError(f"unexpected DNS lookup of {host!r}")
        return list(table[host])

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.fixture
def server() -> Iterator[SpecServer]:
    with SpecServer() as srv:
        yield srv


@pytest.fixture
def source() -> Iterator[HttpSpecSource]:
    with HttpSpecSource(fast_settings(), wait_initial=0.01, wait_max=0.05) as src:
        yield src
