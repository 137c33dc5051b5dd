"""A fan-out's workers get the shared download at the same moment: the bytes are prepared (parse,
``$ref`` guard, normalize, hash) once, every target gets the very same document, and targets that
merge the same documents share one merge, so the caches keyed by them (compact bytes, diff keys,
read-back expectations) hit for all of them."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from sync import pipeline
from sync.config import ApiConfig, TargetConfig
from sync.errors import SpecError
from sync.spec import merge as merge_module

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


def swagger(title: str, **extra) -> dict:
    return {"swagger": "2.0", "info": {"title": title, "version": "1"}, "paths": {}, **extra}


def test_targets_merging_the_same_documents_share_one_merge(monkeypatch) -> None:
    """The targets of a fan-out merge the same three objects: one merge, one merged document and
    one hash for all of them; the same content in other objects is merged on its own."""
    calls: list[tuple] = []
    gate = threading.Event()
    real = merge_module.merge3

    def merge3(base, ours, theirs, **kwargs):
        calls.append((base, ours, theirs))
        assert gate.wait(5)
        return real(base, ours, theirs, **kwargs)

    monkeypatch.setattr(merge_module, "merge3", merge3)  # the pipeline imports it where it merges
    base = swagger("v1")
    ours = swagger("v1", **{"x-ms-connector-metadata": [{"propertyName": "Website"}]})
    theirs = swagger("v2")
    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(pipeline.merge_cached(base, ours, theirs)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1 and len(results) == 4
    merged, conflicts, sha = results[0]
    assert all(r[0] is merged and r[2] == sha for r in results)
    assert merged["info"]["title"] == "v2" and "x-ms-connector-metadata" in merged
    assert sha == pipeline.sha256_hex(merged)
    conflicts.append("a caller's own list")
    assert results[1][1] == []

    again = pipeline.merge_cached(json.loads(json.dumps(base)), ours, theirs)  # an equal copy
    assert len(calls) == 2 and again[0] == merged and again[0] is not merged
