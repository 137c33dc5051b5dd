"""Review fixes on ``python -m sync worker`` and ``plan`` (review E, 2026-12).

- ``worker`` exited 0, printing nothing, when the items it took failed and were left for a retry
  (a delivery before the last returns no outcome). It now prints one line per failed delivery and
  exits 1.
- ``plan`` crashed with AttributeError on an array element that is not an object, and printed
  "no run planned (event ignored)" with exit 0 for an object that is not an event. Both are now a
  one-line error and exit 1 (as for an event file that does not parse), with nothing planned.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sync.cli import main
from sync.errors import SyncError
from sync.runs import Delivery
from sync.triggers import plan
from sync.worker_loop import drain
from tests.pipeline.conftest import SPEC_PATH, ci_event

pytestmark = pytest.mark.azurite

API = "contoso-invoicing"
SECRET = "sig=do-not-print-this-signature"


def with_secret_spec_url(stack: Any) -> None:
    """The spec URL carries a SAS-like signature, which no output may show."""
    data = json.loads(stack.map_path.read_text())
    data["apis"][API]["spec"] = {"url": stack.server.url(SPEC_PATH) + "?" + SECRET}
    stack.map_path.write_text(json.dumps(data))


# --- 3. worker exit code -----------------------------------------------------------------------


def test_worker_reports_deliveries_left_for_a_retry_and_exits_1(env, capsys):
    with_secret_spec_url(env)
    [run_id] = plan(ci_event("evt-worker-fails"), env.service())
    env.server.stop()  # the API is down: every fetch fails transiently

    code = main(["worker", "--wait", "0.5", "--concurrency", "1"])

    out = capsys.readouterr()
    assert code == 1, out
    lines = [line for line in out.out.splitlines() if line.strip()]
    assert len(lines) == 2, lines
    assert sorted(line.split()[0] for line in lines) == ["dev", "prod"]
    for line in lines:
        assert "failed" in line and "left for a retry" in line and API in line, line
    assert "do-not-print-this-signature" not in out.out + out.err
    assert not env.service().ports.ledger.get_run(run_id).complete  # the items are still queued


def test_worker_exits_0_when_every_delivery_succeeded(env, capsys):
    env.serve("openapi-v1.yaml")
    plan(ci_event("evt-worker-ok"), env.service())

    assert main(["worker", "--wait", "0.5"]) == 0
    assert capsys.readouterr().out.count("updated") == 2


def test_drain_reports_failed_deliveries_and_still_returns_outcomes(stack):
    """``drain``'s callers (the bench, the tests) keep their list of outcomes."""
    stack.serve("openapi-v1.yaml")
    svc = stack.service()
    plan(ci_event("evt-drain-callback"), svc)
    stack.server.stop()
    failures: list[tuple[str, str, Delivery]] = []

    def failed(item: Any, exc: SyncError, what: Delivery) -> None:
        failures.append((item.target, type(exc).__name__, what))

    outcomes = drain(svc, wait_seconds=0.3, on_failure=failed)

    assert outcomes == []
    assert sorted(failures) == [
        ("dev", "TransientError", Delivery.RETRY),
        ("prod", "TransientError", Delivery.RETRY),
    ]


# --- 4. plan input that is not an event ------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("[42]", "events[0]: event: an event must be a JSON object, got int"),
        ('{"specversion": "1.0", "id": "x", "source": "/s"}', "type: is missing"),
        (json.dumps([ci_event("evt-good"), "x"]), "events[1]: event: an event must be"),
    ],
)
def test_plan_refuses_input_that_is_not_an_event_and_plans_nothing(
    env, tmp_path, capsys, content, named
):
    path = tmp_path / "event.json"
    path.write_text(content)

    code = main(["plan", str(path)])

    out = capsys.readouterr()
    assert code == 1, out
    assert out.out == ""
    [line] = out.err.splitlines()
    assert line.startswith("error: ") and named in line, line
    assert env.service().ports.queue.receive(max_messages=32) == []  # the good event too


def test_the_planner_acknowledges_a_non_object_event(stack):
    """The trigger body: anything that is not an ``Event`` goes through ``normalize_event``."""
    svc = stack.service()
    assert plan(42, svc) == []
    assert plan(["not", "an", "event"], svc) == []
    assert svc.ports.queue.receive(max_messages=32) == []


# --- review of 2026-12-07 (20:30): the queue failing mid-drain, run's options per API -----------


def test_a_failed_delete_after_the_work_is_done_keeps_the_outcome(stack, monkeypatch):
    """The delete after a successful item used to escape ``drain``: the outcomes already
    recorded were lost and ``worker`` printed only the storage error. The message comes back
    after its timeout, which the item survives."""
    from sync.adapters.queue_storage import StorageWorkQueue
    from sync.errors import TransientError

    stack.serve("openapi-v1.yaml")
    svc = stack.service()
    plan(ci_event("evt-delete-fails"), svc)
    original = StorageWorkQueue.delete
    calls: list[int] = []

    def delete(self: Any, handle: Any) -> bool:
        calls.append(1)
        if len(calls) == 2:
            raise TransientError("queue request failed: ServiceRequestError", where="queue.delete")
        return original(self, handle)

    monkeypatch.setattr(StorageWorkQueue, "delete", delete)
    outcomes = drain(svc, wait_seconds=0.3)
    assert sorted(o.target for o in outcomes) == ["dev", "prod"]
    assert {o.result for o in outcomes} == {"updated"}


def test_worker_shows_what_it_did_when_the_queue_fails_between_batches(env, monkeypatch, capsys):
    from sync.adapters.queue_storage import StorageWorkQueue
    from sync.errors import TransientError

    env.serve("openapi-v1.yaml")
    plan(ci_event("evt-receive-fails"), env.service())
    original = StorageWorkQueue.receive
    calls: list[int] = []

    def receive(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) >= 2:
            raise TransientError("queue request failed: ServiceRequestError", where="queue")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StorageWorkQueue, "receive", receive)
    code = main(["worker", "--wait", "0.5"])
    out = capsys.readouterr()
    assert code == 1
    assert out.out.count("updated") == 2  # the items done before the failure are shown
    assert "error: " in out.err and "ServiceRequestError" in out.err


def test_run_checks_every_apis_options_before_the_first_syncs(env, capsys):
    """``run`` without ``--api`` checked ``--target`` / ``--spec-url`` as it reached each API:
    earlier APIs synced, then a later one's check ended the command as an error, and ``--json``
    printed none of what was done."""
    env.serve("openapi-v1.yaml")
    data = json.loads(env.map_path.read_text())
    other = json.loads(json.dumps(data["apis"][API]))
    for target in other["targets"]:
        target["name"] = "other-" + target["name"]
        if "folder" in target:
            target["folder"] = target["folder"] + "-other"
    data["apis"]["zeta"] = other
    env.map_path.write_text(json.dumps(data))

    code = main(["run", "--target", "dev", "--json"])
    out = capsys.readouterr()
    assert code != 0
    assert "zeta" in out.err and "dev" in out.err
    assert not env.folder("dev").exists()  # contoso-invoicing was not synced first
    assert env.service().ports.ledger.versions(API, "dev", limit=1) == []
