"""A fan-out's workers get the shared download at the same moment: the bytes are prepared (parse,
``$ref`` guard, normalize, hash) once, and every target gets the very same document, so the
caches keyed by it (compact bytes, diff keys, read-back expectations) hit for all of them."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from sync import pipeline
from sync.config import ApiConfig, TargetConfig
from sync.errors import SpecError

TARGET = TargetConfig(name="dev", kind="folder", params="x", breaking="warn")


def api() -> ApiConfig:
    return ApiConfig(
        name=f"flight-{uuid.uuid4().hex[:8]}",  # a cache key no other test used
        spec_kind="url",
        spec="https://api.contoso.example/openapi.json",
        allowed_spec_urls=(),
        on=(),
        overlay=None,
        breaking="warn",
        strict=False,
        drift="report",
        debounce_seconds=0,
        targets=(TARGET,),
    )


@pytest.fixture
def gated_parse(monkeypatch: pytest.MonkeyPatch):
    calls: list[bytes] = []
    gate = threading.Event()
    real = pipeline.load_object

    def load_object(raw, **kwargs):
        calls.append(raw)
        assert gate.wait(5)
        return real(raw, **kwargs)

    monkeypatch.setattr(pipeline, "load_object", load_object)
    return calls, gate


def prepare_at_once(config: ApiConfig, raw: bytes, gate: threading.Event, askers: int) -> list:
    results: list = []

    def run() -> None:
        try:
            results.append(pipeline.prepare_upstream(config, TARGET, raw, source="spec"))
        except SpecError as exc:
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(askers)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)
    return results


def test_concurrent_targets_prepare_the_bytes_once_and_share_the_document(gated_parse) -> None:
    calls, gate = gated_parse
    raw = json.dumps(
        {"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {}}
    ).encode()
    results = prepare_at_once(api(), raw, gate, askers=4)
    assert len(calls) == 1
    assert len(results) == 4 and all(r[0] is results[0][0] for r in results)
    assert len({r[3] for r in results}) == 1
    results[0][1].append("a caller's own list")  # losses and warnings are each caller's copy
    assert results[1][1] == []


def test_a_broken_spec_reaches_every_target_and_is_not_kept(gated_parse) -> None:
    calls, gate = gated_parse
    config = api()
    results = prepare_at_once(config, b'{"swagger": "2.0", "info": {', gate, askers=3)
    assert len(calls) == 1
    assert len(results) == 3 and all(isinstance(r, SpecError) for r in results)
    with pytest.raises(SpecError):
        pipeline.prepare_upstream(config, TARGET, b'{"swagger": "2.0", "info": {', source="spec")
    assert len(calls) == 2  # asked again, not remembered
