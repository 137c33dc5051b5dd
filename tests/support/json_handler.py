"""A quiet ``http.server`` handler base for tests' small local servers that answer JSON."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    def answer_json(self, status: int, body: bytes) -> None:
        """``body`` (JSON already encoded) with its Content-Length (HTTP/1.0: one request per
        connection, as ``BaseHTTPRequestHandler`` answers by default)."""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass  # the test's output, not the server's access log
