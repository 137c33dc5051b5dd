"""A connector kept as files in the paconn layout (``apiDefinition.swagger.json`` and friends).

Useful as a target of its own (a repo folder reviewed in pull requests, then deployed by pac/paconn)
and as the simplest real target for local runs. Writes are atomic: a temp file in the same folder,
fsync, then ``os.replace``, so a crash never leaves half a definition behind.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from sync.errors import SpecError, TargetError
from sync.models import CurrentConnector
from sync.spec.parse import load_object

log = logging.getLogger(__name__)

DEFINITION = "apiDefinition.swagger.json"
PROPERTIES = "apiProperties.json"
SETTINGS = "settings.json"
LIMIT_BYTES = 1_000_000 - 1  # "must be less than 1 MB": the platform limit, same as PowerApps


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dump(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


class FolderTarget:
    """Definition file replaced atomically; ``apiProperties.json`` belongs to the connector."""

    kind = "folder"
    limit_bytes: int | None = LIMIT_BYTES
    environment: str | None = None

    def __init__(self, *, api: str, name: str, path: Path) -> None:
        self.api = api
        self.name = name
        self.path = path
        self.connector_label = str(path)

    def _read_json(self, file: Path) -> dict[str, Any] | None:
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TargetError(f"cannot read {file}: {exc.strerror}", where=self.name) from None
        try:
            return load_object(raw, source=str(file))
        except SpecError as exc:
            raise TargetError(f"current file is not valid JSON: {exc}", where=self.name) from None

    def read(self) -> CurrentConnector:
        return CurrentConnector(
            definition=self._read_json(self.path / DEFINITION),
            properties=self._read_json(self.path / PROPERTIES),
            connector_id=None,
        )

    def write(self, definition: dict[str, Any], current: CurrentConnector) -> str | None:
        try:
            _atomic_write(self.path / DEFINITION, _dump(definition))
            if current.properties is None and not (self.path / PROPERTIES).exists():
                # paconn needs the file; a minimal one, never overwritten later.
                minimal: dict[str, Any] = {
                    "properties": {"connectionParameters": {}, "capabilities": []}
                }
                _atomic_write(self.path / PROPERTIES, _dump(minimal))
            if not (self.path / SETTINGS).exists():
                settings = {"apiProperties": PROPERTIES, "apiDefinition": DEFINITION}
                _atomic_write(self.path / SETTINGS, _dump(settings))
        except OSError as exc:
            raise TargetError(
                f"cannot write {self.path}: {exc.strerror}", where=self.name
            ) from None
        log.info("wrote %s", self.path / DEFINITION)
        return None

    def read_back(self) -> dict[str, Any] | None:
        return self._read_json(self.path / DEFINITION)

    def portal_url(self) -> str | None:
        return None
