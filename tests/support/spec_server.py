"""A real local HTTP(S) server that serves API specs and misbehaves on request, for tests and demos.

Why a real server: the fetch code's retries, caps, redirects and conditional GETs only mean
something against real sockets, real chunked encoding and real connection drops.

Usage::

    with SpecServer() as server:                       # 127.0.0.1, free port, HTTP/1.1
        server.set_spec("/swagger.json", body, "application/json")
        server.fail("/swagger.json", times=3, status=503)   # 3 x 503, then the spec
        url = server.url("/swagger.json")
        ...
        assert server.count("/swagger.json") == 4

Every behaviour is a rule on a path: rules are consumed in order, each for ``times`` requests
(``None`` = for ever); when no rule is left the path's spec is served, honouring If-None-Match and
If-Modified-Since. ``requests`` logs every request (method, path with query, headers).

Standalone (the local demo)::

    python -m tests.support.spec_server --port 8099 --dir ./specs
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

ContentTypes = {
    ".json": "application/json",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
}


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-case names

    @property
    def route(self) -> str:
        return self.path.split("?", 1)[0]


@dataclass
class Spec:
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None


@dataclass
class Rule:
    """One behaviour; ``respond`` writes the whole response. ``times=None`` never runs out."""

    respond: Callable[[_Handler], None]
    times: int | None = 1
    name: str = ""


@dataclass
class _State:
    specs: dict[str, Spec] = field(default_factory=dict)
    rules: dict[str, list[Rule]] = field(default_factory=dict)
    requests: list[LoggedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def http_date(ts: float | None = None) -> str:
    return email.utils.formatdate(ts if ts is not None else time.time(), usegmt=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as real front ends (Kestrel, http.sys): no 40 ms stalls
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # --- helpers the rules use -----------------------------------------------------------------
    def send_body(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_chunked(
        self,
        status: int,
        chunks: object,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        for chunk in chunks:  # type: ignore[attr-defined]
            if not chunk:
                continue
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
            if delay:
                time.sleep(delay)
        self.wfile.write(b"0\r\n\r\n")

    def serve_spec(self, route: str) -> None:
        spec = self.server.state.specs.get(route)
        if spec is None:
            self.send_body(404, b"no spec here", headers={"Connection": "close"})
            return
        headers = {}
        if spec.etag:
            headers["ETag"] = spec.etag
        if spec.last_modified:
            headers["Last-Modified"] = spec.last_modified
        if self._not_modified(spec):
            self.send_response(304)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_body(200, spec.body, spec.content_type, headers)

    def _not_modified(self, spec: Spec) -> bool:
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            if not spec.etag:
                return False
            tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
            return "*" in tags or spec.etag.removeprefix("W/") in tags
        ims = self.headers.get("If-Modified-Since")
        if ims and spec.last_modified:
            try:
                since = email.utils.parsedate_to_datetime(ims)
                modified = email.utils.parsedate_to_datetime(spec.last_modified)
            except (TypeError, ValueError):
                return False
            return modified <= since
        return False

    # --- dispatch ------------------------------------------------------------------------------
    def _handle(self) -> None:
        state = self.server.state
        route = self.path.split("?", 1)[0]
        with state.lock:
            state.requests.append(
                LoggedRequest(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}
                )
            )
            rule = None
            queue = state.rules.get(route, [])
            while queue and queue[0].times == 0:
                queue.pop(0)
            if queue:
                rule = queue[0]
                if rule.times is not None:
                    rule.times -= 1
        try:
            if rule is not None:
                rule.respond(self)
            else:
                self.serve_spec(route)
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
            self.close_connection = True

    do_GET = _handle
    do_HEAD = _handle

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError, OSError):
            super().handle()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: _State, tls: ssl.SSLContext | None):
        self.state = state
        self.tls = tls
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        sock.settimeout(10)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # broken connections are part of the tests


class SpecServer:
    """A threaded HTTP/1.1 server on ``host`` (default 127.0.0.1) and a free port (``port=0``).

    ``tls``: a server-side ``ssl.SSLContext`` (e.g. from trustme) turns it into HTTPS.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None
    ) -> None:
        self.state = _State()
        self._server = _Server((host, port), self.state, tls)
        self.host = host
        self.port = int(self._server.server_address[1])
        self.scheme = "https" if tls else "http"
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> SpecServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SpecServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def url(self, path: str = "/", *, host: str | None = None) -> str:
        """Absolute URL of ``path``; ``host`` swaps the host name (for fake-DNS tests)."""
        if host is None:
            return self.base_url + path
        return f"{self.scheme}://{host}:{self.port}{path}"

    # --- content ---------------------------------------------------------------------------------
    def set_spec(
        self,
        path: str,
        body: bytes,
        content_type: str = "application/json",
        *,
        etag: str | None = "auto",
        last_modified: str | None = "auto",
    ) -> Spec:
        """Serve ``body`` at ``path``; ETag defaults to a hash of the body, Last-Modified to now.
        Pass ``None`` to omit either header."""
        if etag == "auto":
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if last_modified == "auto":
            last_modified = http_date()
        spec = Spec(body, content_type, etag, last_modified)
        with self.state.lock:
            self.state.specs[path] = spec
        return spec

    def add_rule(
        self, path: str, respond: Callable[[_Handler], None], times: int | None = 1, name: str = ""
    ) -> None:
        with self.state.lock:
            self.state.rules.setdefault(path, []).append(Rule(respond, times, name))

    def clear_rules(self, path: str | None = None) -> None:
        with self.state.lock:
            if path is None:
                self.state.rules.clear()
            else:
                self.state.rules.pop(path, None)

    # --- behaviours ------------------------------------------------------------------------------
    def fail(
        self,
        path: str,
        times: int | None = 1,
        status: int = 503,
        body: bytes = b"warming up",
        *,
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        """``times`` answers of ``status`` (503/404 = warm-up, 500, 403...) before the spec."""
        self.add_rule(
            path, lambda h: h.send_body(status, body, content_type, headers), times, f"{status}"
        )

    def warm_up(self, path: str, times: int, status: int = 503) -> None:
        """Like an App Service revision starting: ``times`` x 503 (or 404) then the spec."""
        self.fail(
            path, times, status, b"<html>Service Unavailable</html>" if status == 503 else b""
        )

    def drop(self, path: str, times: int | None = 1) -> None:
        """Close the connection without an answer (a connection error for the client)."""

        def respond(h: _Handler) -> None:
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)

        self.add_rule(path, respond, times, "drop")

    def slow(
        self, path: str, delay: float, times: int | None = 1, *, trickle: bool = False
    ) -> None:
        """Wait ``delay`` s before answering; ``trickle``: send the spec in 64-byte chunks with
        ``delay`` between them (slow body rather than slow first byte)."""

        def respond(h: _Handler) -> None:
            spec = h.server.state.specs.get(path)
            body = spec.body if spec else b"{}"
            if trickle:
                pieces = [body[i : i + 64] for i in range(0, len(body), 64)]
                h.send_chunked(
                    200, pieces, spec.content_type if spec else "application/json", delay=delay
                )
            else:
                time.sleep(delay)
                h.serve_spec(path)

        self.add_rule(path, respond, times, "slow")

    def redirect(
        self, path: str, location: str, status: int = 302, times: int | None = None
    ) -> None:
        """Answer ``status`` with ``Location: location`` (relative, another host, http://...)."""
        self.add_rule(
            path,
            lambda h: h.send_body(status, b"", headers={"Location": location}),
            times,
            "redirect",
        )

    def html_error(
        self,
        path: str,
        status: int = 200,
        times: int | None = None,
        title: str = "Sign in to your account",
    ) -> None:
        """An HTML page where the spec should be (Easy Auth sign-in, App Service error page)."""
        page = f"<!DOCTYPE html><html><head><title>{title}</title></head><body>nope</body></html>"
        self.add_rule(
            path,
            lambda h: h.send_body(status, page.encode(), "text/html; charset=utf-8"),
            times,
            "html",
        )

    def oversized(
        self, path: str, size: int, *, declare_length: bool = True, times: int | None = None
    ) -> None:
        """A ``size``-byte JSON-ish body, with an honest Content-Length or chunked without one."""
        filler = b'{"x":"' + b"a" * max(0, size - 8) + b'"}'

        def respond(h: _Handler) -> None:
            if declare_length:
                h.send_body(200, filler, "application/json")
            else:
                h.send_chunked(200, (filler[i : i + 65536] for i in range(0, len(filler), 65536)))

        self.add_rule(path, respond, times, "oversized")

    def lying_length(self, path: str, declared: int, actual: int, times: int | None = None) -> None:
        """Content-Length says ``declared`` but ``actual`` bytes follow (truncation or overrun)."""

        def respond(h: _Handler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(declared))
            h.end_headers()
            h.wfile.write(b"{" + b" " * max(0, actual - 2) + b"}")
            h.close_connection = True

        self.add_rule(path, respond, times, "lying-length")

    def infinite(self, path: str, times: int | None = None) -> None:
        """A chunked body that never ends (until the client hangs up)."""

        def endless() -> object:
            yield b'{"x":"'
            while True:
                yield b"a" * 65536

        self.add_rule(path, lambda h: h.send_chunked(200, endless()), times, "infinite")

    def chunked(self, path: str, times: int | None = None) -> None:
        """Serve the spec chunked, without Content-Length."""

        def respond(h: _Handler) -> None:
            spec = h.server.state.specs[path]
            pieces = [spec.body[i : i + 1024] for i in range(0, len(spec.body), 1024)]
            headers = {"ETag": spec.etag} if spec.etag else {}
            h.send_chunked(200, pieces, spec.content_type, headers)

        self.add_rule(path, respond, times, "chunked")

    # --- request log -----------------------------------------------------------------------------
    @property
    def requests(self) -> list[LoggedRequest]:
        with self.state.lock:
            return list(self.state.requests)

    def requests_for(self, path: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.route == path]

    def count(self, path: str | None = None) -> int:
        return len(self.requests if path is None else self.requests_for(path))

    def clear_log(self) -> None:
        with self.state.lock:
            self.state.requests.clear()


def serve_directory(directory: Path, port: int, host: str = "127.0.0.1") -> SpecServer:
    """A started server with every .json/.yaml file of ``directory`` at ``/<file name>``."""
    server = SpecServer(host, port)
    for file in sorted(directory.iterdir()):
        if file.is_file() and file.suffix.lower() in ContentTypes:
            server.set_spec("/" + file.name, file.read_bytes(), ContentTypes[file.suffix.lower()])
    return server.start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the specs of a folder on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    server = serve_directory(args.dir, args.port, args.host)
    print(f"serving {args.dir} at {server.base_url}/<file>", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
