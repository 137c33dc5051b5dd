"""Corpus access for the spec tests: paths only through ``tests.conftest.corpus_dir`` (skips if absent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sync.spec.parse import load_document, load_object
from tests.conftest import CORPUS, corpus_dir

METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


def connector_cases() -> list[str]:
    """Case names for parametrize; read at collection time, empty when the corpus is absent."""
    root = CORPUS / "connectors"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else ["(none)"]


def openapi3_files() -> list[str]:
    root = CORPUS / "openapi3"
    if not root.is_dir():
        return ["(none)"]
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".meta.json"))


def connector(case: str, side: str) -> dict[str, Any]:
    path = corpus_dir("connectors", case) / side / "apiDefinition.swagger.json"
    return load_object(path.read_bytes(), source=str(path))


def connector_bytes(case: str, side: str) -> bytes:
    return (corpus_dir("connectors", case) / side / "apiDefinition.swagger.json").read_bytes()


def openapi3(name: str) -> dict[str, Any]:
    path: Path = corpus_dir("openapi3") / name
    doc = load_document(path.read_bytes(), source=str(path))
    assert isinstance(doc, dict)
    return doc


def operation_keys(doc: dict[str, Any]) -> set[str]:
    """Independent of sync.spec.diff: operationId, else ``METHOD /path``."""
    keys = set()
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method in METHODS:
                keys.add(op.get("operationId") or f"{method.upper()} {path}")
    return keys


def count_operations(doc: dict[str, Any], methods: tuple[str, ...] = METHODS) -> int:
    return sum(
        1 for item in (doc.get("paths") or {}).values() for method in item if method in methods
    )
