"""Construction from settings, and the cold-start rule: no Azure SDK import at module load."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sync.adapters.ledger_tables import TableLedger
from sync.errors import ConfigError
from sync.settings import Settings
from tests.conftest import ROOT


def test_modules_import_no_azure_sdk():
    code = (
        "import sys, sync.adapters.ledger_tables, sync.adapters.queue_storage;"
        "bad = sorted(m for m in sys.modules if m.startswith('azure'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_from_settings_local_and_production_modes():
    local = TableLedger.from_settings(
        Settings(storage_connection_string="UseDevelopmentStorage=true", ledger_table="ledgerone")
    )
    assert (local.table_name, local.container) == ("ledgerone", "connectorsync-ledger")
    made: list[str] = []
    remote = TableLedger.from_settings(
        Settings(
            table_endpoint="https://acct.table.core.windows.net",
            blob_endpoint="https://acct.blob.core.windows.net",
        ),
        credential_factory=lambda: made.append("cred") or object(),
    )
    assert made == []  # built on first use, not at construction
    assert remote.table_name == "connectorsync"


def test_missing_storage_settings_name_the_setting():
    with pytest.raises(ConfigError, match="SYNC_TABLE_ENDPOINT"):
        TableLedger.from_settings(Settings())
    with pytest.raises(ConfigError):
        TableLedger(table_name="ledger", container="ledger")


def test_large_pair_without_blob_endpoint_is_a_config_error():
    ledger = TableLedger(
        table_endpoint="http://127.0.0.1:9/devstoreaccount1",
        table_name="ledger",
        container="ledger",
    )
    with pytest.raises(ConfigError, match="SYNC_BLOB_ENDPOINT"):
        ledger._blobs()


def _dead_storage() -> str:
    from tests.support.azurite import ACCOUNT, KEY, free_port

    port = free_port()  # nothing listens there
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def test_unreachable_storage_is_a_transient_error_naming_the_operation():
    from sync.adapters.queue_storage import StorageWorkQueue
    from sync.errors import TransientError
    from sync.models import SyncRequest, WorkItem

    options = {"retry_total": 0, "connection_timeout": 2}
    ledger = TableLedger(
        connection_string=_dead_storage(),
        table_name="deadtable",
        container="dead",
        client_options=options,
    )
    with pytest.raises(TransientError, match=r"ledger\.state"):
        ledger.state("api", "target")
    queue = StorageWorkQueue(
        connection_string=_dead_storage(), queue_name="dead", client_options=options
    )
    item = WorkItem(run_id="r", api="a", target="t", request=SyncRequest(api="a", reason="cli"))
    with pytest.raises(TransientError, match="queue"):
        queue.send(item)


@pytest.mark.parametrize(
    ("table", "container", "setting"),
    [
        ("ab", "ledger", "SYNC_LEDGER_TABLE"),
        ("1ledger", "ledger", "SYNC_LEDGER_TABLE"),
        ("led-ger", "ledger", "SYNC_LEDGER_TABLE"),
        ("ledger", "Ledger", "SYNC_LEDGER_CONTAINER"),
        ("ledger", "le--dger", "SYNC_LEDGER_CONTAINER"),
        ("ledger", "x", "SYNC_LEDGER_CONTAINER"),
    ],
)
def test_bad_storage_names_name_the_setting(table, container, setting):
    with pytest.raises(ConfigError, match="does not match") as info:
        TableLedger(
            connection_string="UseDevelopmentStorage=true", table_name=table, container=container
        )
    assert info.value.path == setting


@pytest.mark.parametrize("name", ["Work", "w", "work--q", "-work", "w" * 64])
def test_bad_queue_names_name_the_setting(name):
    from sync.adapters.queue_storage import StorageWorkQueue

    with pytest.raises(ConfigError, match="does not match") as info:
        StorageWorkQueue(connection_string="UseDevelopmentStorage=true", queue_name=name)
    assert info.value.path == "SYNC_WORK_QUEUE"
