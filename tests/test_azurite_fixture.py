import pytest

pytestmark = pytest.mark.azurite


def test_azurite_serves_tables_and_queues(azurite):
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    tables.create_table("probe")
    assert "probe" in [t.name for t in tables.list_tables()]
    queues = QueueServiceClient.from_connection_string(azurite.connection_string)
    queues.create_queue("probe")
    queues.get_queue_client("probe").send_message("x")
    assert queues.get_queue_client("probe").receive_message().content == "x"
