"""An event's item reads its event marker and its state row at the same time (one round trip of
waiting instead of two, on every Event Grid delivery); a redelivery still answers from a state
read made after the marker's, and neither read outlives the item."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sync.errors import TransientError
from sync.runs import execute
from tests.pipeline.conftest import Stack
from tests.pipeline.test_early_read import item_for

pytestmark = pytest.mark.azurite


class MarkerAfterState:
    """The real ledger; the first state read and the event-marker read each wait until the other
    has begun, so read one after the other (in either order) the first one waits in vain. The
    marker read may then fail."""

    def __init__(self, inner: Any, *, marker_error: Exception | None = None) -> None:
        self._inner, self._marker_error = inner, marker_error
        self.state_started = threading.Event()
        self.marker_started = threading.Event()
        self.calls: list[str] = []
        self.waited: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def state(self, api: str, target: str) -> Any:
        self.calls.append("state")
        first = not self.state_started.is_set()
        self.state_started.set()
        if first:
            self.waited.append(self.marker_started.wait(5))
        result = self._inner.state(api, target)
        self.calls.append("state done")
        return result

    def seen_event(self, api: str, target: str, event_id: str) -> bool:
        self.calls.append("seen_event")
        self.marker_started.set()
        self.waited.append(self.state_started.wait(5))
        if self._marker_error is not None:
            raise self._marker_error
        return self._inner.seen_event(api, target, event_id)


def service(stack: Stack, ledger: MarkerAfterState) -> Any:
    stack.serve("openapi-v1.yaml")
    return stack.service(ledger=ledger)


def test_the_state_row_is_read_while_the_event_marker_is(stack: Stack) -> None:
    ledger = MarkerAfterState(stack.service().ports.ledger)
    svc = service(stack, ledger)
    outcome = execute(item_for(svc, "dev", "evt-both-reads"), svc.pipeline, svc.ports)
    assert outcome.result == "updated", outcome.message
    assert ledger.waited == [True, True]


def test_a_redelivered_event_answers_from_a_state_read_after_the_marker(stack: Stack) -> None:
    ledger = MarkerAfterState(stack.service().ports.ledger)
    svc = service(stack, ledger)
    item = item_for(svc, "dev", "evt-twice")
    assert execute(item, svc.pipeline, svc.ports).result == "updated"
    ledger.calls.clear()
    again = execute(item, svc.pipeline, svc.ports)
    assert (again.result, again.message) == ("unchanged", "event already processed")
    # the overlapped read, the marker, then the state again: what the answer rests on
    assert ledger.calls[-2:] == ["state", "state done"], ledger.calls
    assert ledger.calls.count("state") == 2, ledger.calls


def test_a_failed_marker_read_fails_the_item_after_the_state_read_has_finished(
    stack: Stack,
) -> None:
    ledger = MarkerAfterState(
        stack.service().ports.ledger,
        marker_error=TransientError("table storage blinked", where="ledger.seen_event"),
    )
    svc = service(stack, ledger)
    with pytest.raises(TransientError, match="blinked"):
        execute(item_for(svc, "dev", "evt-marker-fails"), svc.pipeline, svc.ports)
    assert "state done" in ledger.calls  # the state read was joined before the error left
    assert not stack.folder("dev").exists()
