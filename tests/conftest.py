"""Shared fixtures: the real Azurite emulator, corpus location, settings for the local stack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.azurite import Azurite, start_azurite

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("CONNECTOR_SYNC_CORPUS", ROOT.parent / "shared" / "corpus"))


def corpus_dir(*parts: str) -> Path:
    """A folder of ../shared/corpus, or skip the test saying why."""
    path = CORPUS.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(
            f"corpus not found at {path} (CI lays ../shared beside the repo; a user's clone may not have it)"
        )
    return path


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    emulator = start_azurite()
    try:
        yield emulator
    finally:
        emulator.stop()
