"""Fixtures for the event tests: the sync map whose triggers name the corpus samples' topics."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.config import SyncMap, load_map_file

MAP_PATH = Path(__file__).with_name("sync-map.events.yaml")


@pytest.fixture(scope="session")
def sync_map() -> SyncMap:
    return load_map_file(MAP_PATH)
