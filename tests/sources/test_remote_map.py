"""The sync map from a blob on Azurite: ETag cache, refresh interval, re-validation, overlays."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from sync.adapters.blob_spec import BlobReader
from sync.adapters.urlguard import guarded_client
from sync.config import load_map, remote
from sync.errors import ConfigError
from tests.sources.conftest import blob_container, blob_endpoint, local_settings

pytestmark = pytest.mark.azurite


class Counting(BlobReader):
    """The real reader, counting what it was asked (the assertions are on Azurite's answers)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answers: list[str] = []

    def get(self, url, *, etag=None, last_modified=None):
        fetched = super().get(url, etag=etag, last_modified=last_modified)
        self.answers.append("304" if fetched.not_modified else "200")
        return fetched


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def a_map(tmp_path, **api_extra) -> bytes:
    api = {
        "spec": {"url": "https://api.example/openapi.json"},
        "targets": [{"name": "dev", "folder": str(tmp_path / "dev")}],
        **api_extra,
    }
    return yaml.safe_dump({"apis": {"orders": api}}).encode()


@pytest.fixture
def setup(azurite, tmp_path):
    container = blob_container(azurite)
    settings = local_settings(azurite)
    reader = Counting(settings, guarded_client(settings), tokens=None)
    url = f"{blob_endpoint(azurite)}/{container.container_name}/config/sync-map.yaml"
    yield container, reader, url
    remote.forget(url)


def test_cached_within_the_interval_then_revalidated_by_etag(setup, tmp_path):
    container, reader, url = setup
    container.upload_blob("config/sync-map.yaml", a_map(tmp_path))
    clock = Clock()
    first = remote.load_remote_map(url, reader=reader, clock=clock)
    assert first.api("orders").spec_url == "https://api.example/openapi.json"
    assert remote.load_remote_map(url, reader=reader, clock=clock) is first
    assert reader.answers == ["200"]  # no request inside the interval
    clock.now += remote.REFRESH_SECONDS
    assert remote.load_remote_map(url, reader=reader, clock=clock) is first
    assert reader.answers == ["200", "304"]

    changed = a_map(tmp_path, breaking="block")
    container.upload_blob("config/sync-map.yaml", changed, overwrite=True)
    clock.now += remote.REFRESH_SECONDS
    second = remote.load_remote_map(url, reader=reader, clock=clock)
    assert second is not first and second.api("orders").breaking == "block"

    container.upload_blob("config/sync-map.yaml", b"apis: {}\n", overwrite=True)
    clock.now += remote.REFRESH_SECONDS
    with pytest.raises(ConfigError) as caught:
        remote.load_remote_map(url, reader=reader, clock=clock)
    assert "apis" in str(caught.value) and "sig=" not in str(caught.value)


def test_overlays_come_from_the_same_container_and_are_revalidated(setup, tmp_path):
    container, reader, url = setup
    overlay = {"overlay": "1.0.0", "info": {"title": "o", "version": "1"}, "actions": []}
    container.upload_blob("config/overlays/orders.yaml", yaml.safe_dump(overlay).encode())
    container.upload_blob("config/sync-map.yaml", a_map(tmp_path, overlay="overlays/orders.yaml"))
    clock = Clock()
    first = remote.load_remote_map(url, reader=reader, clock=clock)
    local = first.api("orders").overlay
    assert local is not None and yaml.safe_load(local.read_text()) == overlay
    overlay["info"]["version"] = "2"
    container.upload_blob(
        "config/overlays/orders.yaml", yaml.safe_dump(overlay).encode(), overwrite=True
    )
    clock.now += remote.REFRESH_SECONDS
    second = remote.load_remote_map(url, reader=reader, clock=clock)
    assert second is not first
    assert yaml.safe_load(second.api("orders").overlay.read_text())["info"]["version"] == "2"


@pytest.mark.parametrize(
    "overlay", ["../other/o.yaml", "/abs/o.yaml", "https://evil.example/o.yaml"]
)
def test_overlay_outside_the_container_folder_is_refused(setup, tmp_path, overlay):
    container, reader, url = setup
    container.upload_blob("config/sync-map.yaml", a_map(tmp_path, overlay=overlay), overwrite=True)
    with pytest.raises(ConfigError, match="relative to the map"):
        remote.load_remote_map(url, reader=reader)


def test_relative_folder_target_is_refused(setup):
    container, reader, url = setup
    raw = {
        "apis": {
            "orders": {
                "spec": {"url": "https://a.example/o.json"},
                "targets": [{"name": "dev", "folder": "connectors/dev"}],
            }
        }
    }
    container.upload_blob("config/sync-map.yaml", json.dumps(raw).encode(), overwrite=True)
    with pytest.raises(ConfigError, match=r"targets\[0\].folder"):
        remote.load_remote_map(url, reader=reader)


def test_a_number_python_cannot_convert_is_a_config_error_naming_the_blob(setup):
    """Past 4,300 digits int() raises a bare ValueError, which load_remote_map would let escape
    (it turns only SyncErrors into ConfigError): the planner would crash instead of naming it."""
    container, reader, url = setup
    raw = b'{"apis": {}, "x": ' + b"1" * 5000 + b"}"
    container.upload_blob("config/sync-map.yaml", raw, overwrite=True)
    with pytest.raises(ConfigError, match="number that cannot be read") as info:
        remote.load_remote_map(url, reader=reader)
    assert info.value.where == remote.redact_url(url)


def test_a_number_like_name_in_a_blob_map_is_shown_as_written(setup, tmp_path):
    """The blob map shows ``010`` as written too, not the octal 8 YAML 1.1 reads."""
    container, reader, url = setup
    text = a_map(tmp_path).replace(b"name: dev", b"name: 010")
    container.upload_blob("config/sync-map.yaml", text, overwrite=True)
    with pytest.raises(ConfigError, match=r"targets\[0\]\.name: 010 is not a string"):
        remote.load_remote_map(url, reader=reader)


def test_missing_map_blob_is_a_clear_error(setup):
    from sync.errors import ConfigError

    _, reader, url = setup
    with pytest.raises(ConfigError, match="BlobNotFound") as info:
        remote.load_remote_map(url, reader=reader)
    assert info.value.path == "SYNC_CONFIG"  # HTTP answers 500 naming it; the planner raises


def test_load_map_with_a_blob_url_uses_the_app_settings(setup, tmp_path, azurite, monkeypatch):
    container, _, url = setup
    container.upload_blob("config/sync-map.yaml", a_map(tmp_path), overwrite=True)
    monkeypatch.setenv("SYNC_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("SYNC_ALLOW_PRIVATE_HOSTS", "127.0.0.1")
    monkeypatch.setattr(remote, "_reader", None)
    loaded = load_map(url)
    assert loaded.source == url and "orders" in loaded.apis
    assert load_map(url) is loaded


@pytest.mark.parametrize("on_azure", [True, False])
def test_the_map_reader_signs_in_as_the_app_does(monkeypatch, on_azure: bool) -> None:
    """The remote map's reader used a bare managed identity while Key Vault, Storage and the spec
    sources use the app's function identity: off Azure (az login) the map could not be read."""
    from sync.adapters.function_identity import function_identity
    from sync.clouds import CLOUDS

    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "AZURE_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    if on_azure:
        monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", "h")
    monkeypatch.setattr(remote, "_reader", None)
    provider = remote._default_reader().tokens()
    assert provider.kind == ("managedIdentity" if on_azure else "default")
    assert provider.kind == function_identity(CLOUDS["public"]).kind
