"""Storage clients skip requests' per-call environment lookups only when the environment asks
nothing of them, and then verify TLS with the same CA bundle requests would have picked."""

from __future__ import annotations

import socket

import pytest

from sync.adapters import sdk_transport, storage_clients
from sync.adapters.ledger_tables import TableLedger
from sync.errors import TransientError
from tests.ledger.conftest import unique

pytestmark = pytest.mark.azurite

ENV_NAMES = [
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
    "NO_PROXY", "no_proxy", "NETRC", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
]  # fmt: skip


@pytest.fixture
def bare_env(monkeypatch, tmp_path):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


def test_a_plain_environment_verifies_with_the_default_or_the_env_bundle(bare_env) -> None:
    assert sdk_transport.plain_environment_verify() is True
    bare_env.setenv("CURL_CA_BUNDLE", "/etc/curl.pem")
    assert sdk_transport.plain_environment_verify() == "/etc/curl.pem"
    bare_env.setenv("REQUESTS_CA_BUNDLE", "/etc/requests.pem")  # requests prefers this one
    assert sdk_transport.plain_environment_verify() == "/etc/requests.pem"


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY", "no_proxy", "NETRC"])
def test_a_proxy_or_netrc_setting_keeps_requests_own_handling(bare_env, name) -> None:
    bare_env.setenv(name, "http://proxy.example:3128")
    assert sdk_transport.plain_environment_verify() is None
    assert sdk_transport.plain_transport({}) is None


def test_off_linux_system_proxy_settings_keep_requests_own_handling(bare_env) -> None:
    bare_env.setattr(sdk_transport, "ENV_ONLY_PROXIES", False)  # e.g. Windows: the registry
    assert sdk_transport.plain_environment_verify() is None


def test_a_netrc_file_keeps_requests_own_handling(bare_env, tmp_path) -> None:
    (tmp_path / ".netrc").write_text("machine example.com login a password b\n")
    assert sdk_transport.plain_environment_verify() is None


def test_connection_settings_move_into_the_plain_transport(bare_env) -> None:
    options = {"retry_total": 0, "connection_timeout": 5, "read_timeout": 7}
    transport = sdk_transport.plain_transport(options)
    assert options == {"retry_total": 0}  # the rest is the transport's now
    assert (transport.connection_config.timeout, transport.connection_config.read_timeout) == (5, 7)
    assert transport.connection_config.verify is True


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_configured_proxy_is_still_used(azurite, bare_env) -> None:
    """The speed-up must not drop proxy support: with HTTP_PROXY set (and no NO_PROXY), the
    ledger's requests go to that proxy (here a closed port, so they fail)."""
    bare_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    ledger = TableLedger(
        connection_string=azurite.connection_string,
        table_name=unique("proxy"),
        container=unique("proxy-c"),
        client_options={"retry_total": 0},
    )
    with pytest.raises(TransientError):
        ledger.state("api", "target")


def test_without_a_proxy_the_same_ledger_works(azurite, bare_env) -> None:
    ledger = TableLedger(
        connection_string=azurite.connection_string,
        table_name=unique("plain"),
        container=unique("plain-c"),
        client_options={"retry_total": 0},
    )
    assert ledger.state("api", "target").version == 0


def test_blob_and_queue_clients_keep_their_sdks_timeouts(bare_env) -> None:
    """azure-storage-blob and -queue give their own transport 20 s to connect and 60 s to read;
    a transport handed in gets azure-core's 300 s unless told, as the Tables SDK's always did."""
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient
    from azure.storage.queue import QueueClient

    account = storage_clients.StorageAccount(
        connection_string="UseDevelopmentStorage=true", client_options={"retry_total": 0}
    )
    for client_class, names, expected in [
        (ContainerClient, {"container_name": "c"}, (20, 60)),
        (QueueClient, {"queue_name": "q"}, (20, 60)),
        (TableClient, {"table_name": "t"}, (300, 300)),
    ]:
        client = account.client(client_class, None, **names)
        config = _transport_of(client).connection_config
        assert (config.timeout, config.read_timeout) == expected, client_class.__name__


def _transport_of(client: object) -> object:
    """The transport at the bottom of an SDK client's pipeline (Tables nests its generated one)."""
    pipeline = getattr(client, "_pipeline", None) or client._client._client._pipeline  # type: ignore[attr-defined]
    return pipeline._transport
