"""Real connector definitions (../shared/corpus) through a version row and back, byte-exact."""

from __future__ import annotations

import json

import pytest

from sync.adapters import ledger_codec as codec
from sync.models import TargetState, VersionRecord
from sync.spec.canonical import sha256_hex
from tests.conftest import corpus_dir


def _pairs():
    root = corpus_dir("connectors")
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        before = folder / "before" / "apiDefinition.swagger.json"
        after = folder / "after" / "apiDefinition.swagger.json"
        if before.is_file() and after.is_file():
            yield folder.name, json.loads(before.read_bytes()), json.loads(after.read_bytes())


@pytest.mark.azurite
def test_every_corpus_pair_round_trips(ledger):
    state = TargetState()
    count = 0
    for number, (name, before, after) in enumerate(_pairs(), start=1):
        rec = VersionRecord(
            api="corpus",
            target="folder",
            version=number,
            reason="cli",
            outcome="updated",
            run_id=f"run{number}",
            created_at=f"2026-01-01T00:{number // 60:02d}:{number % 60:02d}Z",
            summary={"connector": name},
            upstream_sha256=sha256_hex(before),
            applied_sha256=sha256_hex(after),
            upstream=before,
            applied=after,
        )
        state = ledger.record_version(rec, state.evolve(version=number), None)
        got = ledger.version("corpus", "folder", number, include_definitions=True)
        assert got.upstream == before, name
        assert got.applied == after, name
        assert sha256_hex(got.applied) == rec.applied_sha256
        count += 1
    assert count > 0
    assert len(ledger.versions("corpus", "folder", limit=100)) == count


def test_corpus_pairs_fit_inline_with_room_to_spare():
    """Real definitions compress ~10x; even the largest pair is far below the blob threshold."""
    sizes = [len(codec.pack_pair(b, a).payload) for _, b, a in _pairs()]
    assert sizes
    assert max(sizes) < codec.INLINE_LIMIT / 4
