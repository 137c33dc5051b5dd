"""A local stand-in for a Teams Workflows webhook: scripted answers, every request recorded.

It follows the documented contract: POST only, JSON body, 202 with an empty body when accepted,
Logic Apps-style ``{"error": {"code", "message"}}`` bodies when refused.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers  # the last one repeats
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.url = ""

    def next_answer(self) -> Answer:
        with self.lock:
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

        def do_GET(self) -> None:
            self._reply(Answer(405, body=b'{"error":{"code":"MethodNotAllowed"}}'))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.received.append(
                    Received(time.monotonic(), self.path, dict(self.headers.items()), body)
                )
            answer = receiver.next_answer()
            if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                answer = Answer(415, body=b'{"error":{"code":"UnsupportedMediaType"}}')
            else:
                try:
                    json.loads(body)
                except ValueError:
                    answer = Answer(400, body=b'{"error":{"code":"InvalidRequestContent"}}')
            if answer.delay:
                time.sleep(answer.delay)
            self._reply(answer)

        def _reply(self, answer: Answer) -> None:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            if answer.body:
                self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer.body)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout tests) is expected, not an error to print."""


@contextmanager
def webhook(answers: list[Answer], *, sig: str) -> Iterator[Receiver]:
    """Serve on a free loopback port; ``receiver.url`` is the full webhook URL incl. ``sig``."""
    receiver = Receiver(answers)
    server = _Server(("127.0.0.1", 0), _handler(receiver))
    port = server.server_address[1]
    receiver.url = (
        f"http://127.0.0.1:{port}/workflows/0c1d2e3f/triggers/manual/paths/invoke"
        f"?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&{sig}"
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
