"""``pp_errors.send(on_sent=...)``: work for after a write's answer starts once the request body
has left, on the real httpx/httpcore stack against a local server that holds its answer until
then (so a callback made only after the answer would time the server out and fail the test)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sync.adapters.pp_errors import send
from tests.support.json_handler import JsonHandler
from tests.support.local_identity import serve, shutdown

BODY = b'{"properties": {"openApiDefinition": "' + b"x" * 600_000 + b'"}}'


class _Holding(JsonHandler):
    """Reads the whole body, then answers only once the client said it was sent (or after 5 s,
    answering 504 so the test sees it); the first ``fail_first`` requests get a 503."""

    sent = threading.Event()
    fail_first = 0
    seen: list[int] = []

    def do_PATCH(self) -> None:
        received = len(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(received)
        if len(type(self).seen) <= type(self).fail_first:
            self.answer_json(503, b'{"error": {"code": "ServiceUnavailable", "message": "busy"}}')
            return
        told = type(self).sent.wait(5)
        self.answer_json(200 if told else 504, b"{}")


@pytest.fixture
def holding() -> Iterator[tuple[str, type[_Holding]]]:
    handler = type("Holding", (_Holding,), {"sent": threading.Event(), "seen": []})
    server, thread = serve(handler, tls=False)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/apis/c1", handler
    finally:
        shutdown(server, thread)


def patch(url: str, on_sent: Any) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return send(
            client,
            "PATCH",
            url,
            service="PowerApps API",
            where="t",
            budget_seconds=10,
            content=BODY,
            transient=(503,),
            wait_initial=0.01,
            on_sent=on_sent,
        )


def test_on_sent_runs_once_the_body_has_left_and_before_the_answer(holding) -> None:
    url, handler = holding
    calls: list[str] = []

    def on_sent() -> None:
        calls.append(threading.current_thread().name)
        handler.sent.set()  # the server answers only now

    assert patch(url, on_sent).status_code == 200
    assert calls == [threading.current_thread().name]
    assert handler.seen == [len(BODY)]


def test_a_retried_write_calls_on_sent_once(holding) -> None:
    url, handler = holding
    handler.fail_first = 1
    calls: list[str] = []

    def on_sent() -> None:
        calls.append("sent")
        handler.sent.set()

    assert patch(url, on_sent).status_code == 200
    assert handler.seen == [len(BODY), len(BODY)]  # the 503, then the write
    assert calls == ["sent"]  # the same body sent twice: the work it starts is started once


def test_a_failing_callback_never_fails_the_write(holding, caplog) -> None:
    url, handler = holding

    def on_sent() -> None:
        handler.sent.set()
        raise RuntimeError("callback bug")

    assert patch(url, on_sent).status_code == 200
    assert "on_sent callback failed" in caplog.text
