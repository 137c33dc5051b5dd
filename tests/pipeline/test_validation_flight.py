"""Local validation runs once per definition: a finished report is reused, a running one is
waited for, and a failure reaches every asker and is not remembered."""

from __future__ import annotations

import threading
import uuid

import pytest

from sync import pipeline
from sync.errors import SpecError
from sync.spec import validate as validate_module


@pytest.fixture
def slow_validate(monkeypatch):
    calls: list[str] = []
    gate = threading.Event()
    real = validate_module.validate

    def validate(doc, **kwargs):
        calls.append(doc["info"]["title"])
        assert gate.wait(5)
        if doc["info"]["title"] == "bomb":
            raise SpecError("too deep", where="doc")
        return real(doc, **kwargs)

    monkeypatch.setattr(validate_module, "validate", validate)  # imported where it is called
    return calls, gate


def doc(title: str) -> dict:
    return {"swagger": "2.0", "info": {"title": title, "version": "1"}, "paths": {}}


def ask(results: list, document: dict, sha: str) -> threading.Thread:
    def run() -> None:
        try:
            results.append(pipeline.validate_cached(document, sha, limit_bytes=None, strict=False))
        except SpecError as exc:
            results.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_concurrent_askers_share_one_validation(slow_validate) -> None:
    calls, gate = slow_validate
    sha = uuid.uuid4().hex  # a key no other test used
    results: list = []
    threads = [ask(results, doc("one"), sha) for _ in range(4)]
    gate.set()
    for thread in threads:
        thread.join(5)
    assert calls == ["one"]
    assert len(results) == 4 and all(r is results[0] for r in results)
    assert pipeline.validate_cached(doc("one"), sha, limit_bytes=None, strict=False) is results[0]


def test_a_failure_reaches_every_asker_and_is_not_kept(slow_validate) -> None:
    calls, gate = slow_validate
    sha = uuid.uuid4().hex
    results: list = []
    threads = [ask(results, doc("bomb"), sha) for _ in range(3)]
    gate.set()
    for thread in threads:
        thread.join(5)
    assert len(results) == 3 and all(isinstance(r, SpecError) for r in results)
    with pytest.raises(SpecError):
        pipeline.validate_cached(doc("bomb"), sha, limit_bytes=None, strict=False)
    assert calls == ["bomb", "bomb"]  # the failed run was not cached: asked again


def test_the_size_check_encodes_the_bytes_the_target_then_sends(monkeypatch):
    from sync.spec import canonical

    encoded: list[int] = []
    whole, in_parts = canonical.compact_bytes, canonical._encode_in_parts
    monkeypatch.setattr(canonical, "compact_bytes", lambda d: encoded.append(id(d)) or whole(d))
    monkeypatch.setattr(
        canonical, "_encode_in_parts", lambda d: encoded.append(id(d)) or in_parts(d)
    )
    document = doc(f"shared-{uuid.uuid4().hex}")
    document["info"]["x-size"] = "x" * 5000
    report = pipeline.validate_cached(document, uuid.uuid4().hex, limit_bytes=4000, strict=False)
    assert any("over the limit of 4000 bytes" in e for e in report.errors)
    assert canonical.compact_bytes_kept(document) == whole(document)  # what a write sends
    assert encoded == [id(document)]  # one encoding for both


def test_a_definition_json_cannot_carry_is_still_reported(monkeypatch):
    document = doc(f"nan-{uuid.uuid4().hex}")
    document["info"]["x-weight"] = float("nan")
    report = pipeline.validate_cached(document, uuid.uuid4().hex, limit_bytes=None, strict=False)
    assert any("NaN or Infinity" in e for e in report.errors)
