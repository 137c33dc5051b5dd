"""An HTTP proxy in front of a local service that can lose the answer to one request: the request
reaches the service and is carried out, then the client's connection is closed instead of
answered. That is what a dropped connection or a front end's timeout looks like to a client, and
the only way to test "the write landed but we never heard" with the real SDK and its retries
(mocks would have to guess what azure-core does next; here it does it)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Hop-by-hop headers are the proxy's own business (RFC 9110 7.6.1); the rest pass unchanged, so
# a shared-key signature made for the service still matches.
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class LossyProxy:
    """Forwards everything to ``127.0.0.1:upstream_port``; the first request ``lose`` matches
    after it is armed is carried out and then left unanswered (once per arming)."""

    upstream_port: int
    port: int = 0
    lost: list[str] = field(default_factory=list)  # "METHOD path" of each answer lost
    seen: list[str] = field(default_factory=list)  # "METHOD path" of every request, in order
    _lose: Callable[[str, str], bool] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def lose_next(self, matches: Callable[[str, str], bool]) -> None:
        with self._lock:
            self._lose = matches

    def _take(self, method: str, path: str) -> bool:
        with self._lock:
            self.seen.append(f"{method} {path}")
            if self._lose is not None and self._lose(method, path):
                self._lose = None
                self.lost.append(f"{method} {path}")
                return True
            return False


def _handler(proxy: LossyProxy) -> type[BaseHTTPRequestHandler]:
    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            lose = proxy._take(self.command, self.path)
            upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
            finally:
                upstream.close()
            if lose:  # carried out upstream; the client never hears of it
                self.close_connection = True
                return
            self.send_response(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in _HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_MERGE = do_HEAD = _forward

    return Forward


@contextmanager
def lossy_proxy(upstream_port: int) -> Iterator[LossyProxy]:
    proxy = LossyProxy(upstream_port)
    with ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy)) as server:  # closed on exit
        server.daemon_threads = True
        proxy.port = server.server_address[1]
        serving = threading.Thread(target=server.serve_forever, name="lossy-proxy", daemon=True)
        serving.start()
        try:
            yield proxy
        finally:
            server.shutdown()
            serving.join(timeout=10)
