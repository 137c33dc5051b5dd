"""azure-core's transport over httpx (``sync.adapters.httpx_transport``) held to azure-core's own
requests transport -- the client no one here wrote -- through the same azure-core pipeline, on a
local server that answers each path one scripted way: the same bodies and headers, and the same
exception classes for the same failures (the SDKs' retry policy decides on them)."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sync.adapters import httpx_transport
from tests.conftest import ROOT

BODY = b'{"value": "hello", "n": 1}'


def _answer(conn: socket.socket, path: str) -> None:
    if path == "/ok":
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Ms-Request-Id: r1\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
        )
    elif path == "/chunked":
        parts = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (BODY[:7], BODY[7:])) + b"0\r\n\r\n"
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + parts)
    elif path == "/gzip":
        packed = gzip.compress(BODY)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
            % (len(packed), packed)
        )
    elif path == "/cut":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + BODY)
    elif path == "/silent-close":
        pass  # the request was read; the connection closes with no answer
    elif path == "/hang":
        threading.Event().wait(3)
    elif path == "/redirect":
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n")
    elif path == "/echo":
        return  # answered by the caller, which has read the body
    else:
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


class ScriptedServer:
    """One connection per request (``Connection: close`` semantics), answered by path."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            path = head.split(b" ")[1].decode()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(rest) < length:
                rest += conn.recv(65536)
            if path == "/echo":
                answer = b"%d:%s" % (len(rest), rest[:20])
                conn.sendall(
                    b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)
                )
                return
            _answer(conn, path)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.close()


def ours(**kwargs: Any) -> Any:
    made = httpx_transport.transport(**kwargs)
    assert made is not None
    return made


def theirs(**kwargs: Any) -> Any:
    from azure.core.pipeline.transport import RequestsTransport

    return RequestsTransport(use_env_settings=False, **kwargs)


def outcome(make: Callable[..., Any], url: str, *, stream: bool = False, **options: Any) -> Any:
    """What the pipeline gives back: (status, headers we look at, body) or the exception class."""
    from azure.core.pipeline import Pipeline
    from azure.core.rest import HttpRequest

    method, body = ("POST", b"x" * 70_000) if url.endswith("/echo") else ("GET", None)
    request = HttpRequest(method, url, content=body, headers={"x-ms-client-request-id": "c1"})
    with Pipeline(transport=make(**options), policies=[]) as pipeline:
        try:
            response = pipeline.run(request, stream=stream).http_response
            if stream:
                data = b"".join(response.stream_download(pipeline, decompress=False))
            else:
                data = response.body()
        except Exception as exc:
            return type(exc).__name__
        return (
            response.status_code,
            response.headers.get("x-ms-request-id"),
            response.headers.get("CONTENT-LENGTH"),
            data,
        )


CASES = ["/ok", "/chunked", "/gzip", "/cut", "/silent-close", "/redirect", "/echo", "/missing"]


@pytest.mark.parametrize("stream", [False, True], ids=["read", "streamed"])
@pytest.mark.parametrize("path", CASES)
def test_the_same_answer_or_the_same_error_as_requests(
    server: ScriptedServer, path: str, stream: bool
) -> None:
    mine = outcome(ours, server.url(path), stream=stream)
    yours = outcome(theirs, server.url(path), stream=stream)
    assert mine == yours
    if path == "/cut":  # a body cut short: requests words it so, and the retry policy reads it
        assert mine == ("ServiceResponseError" if stream else "IncompleteReadError")


def test_a_read_timeout_is_the_same_timeout(server: ScriptedServer) -> None:
    mine = outcome(ours, server.url("/hang"), read_timeout=0.3)
    assert mine == outcome(theirs, server.url("/hang"), read_timeout=0.3)
    assert mine == "ServiceResponseTimeoutError"


def test_a_refused_connection_is_the_same_request_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/ok"  # bound, not listening
    mine = outcome(ours, url)
    assert mine == outcome(theirs, url) == "ServiceRequestError"


def test_gzip_is_decoded_when_asked(server: ScriptedServer) -> None:
    from azure.core.pipeline import Pipeline
    from azure.core.rest import HttpRequest

    with Pipeline(transport=ours(), policies=[]) as pipeline:
        response = pipeline.run(HttpRequest("GET", server.url("/gzip")), stream=True).http_response
        assert b"".join(response.stream_download(pipeline, decompress=True)) == BODY


def test_tls_verifies_with_the_given_bundle_and_refuses_without_it() -> None:
    from http.server import BaseHTTPRequestHandler

    from azure.core.pipeline import Pipeline
    from azure.core.rest import HttpRequest

    from tests.support.local_identity import local_tls, serve, shutdown

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    tls = local_tls()
    server = serve(NotFound, tls=True)
    url = f"https://127.0.0.1:{server[0].server_address[1]}/nothing-here"
    try:
        with Pipeline(transport=ours(connection_verify=tls.ca_pem_path), policies=[]) as pipe:
            assert pipe.run(HttpRequest("GET", url)).http_response.status_code == 404
        assert outcome(ours, url) == outcome(theirs, url) == "ServiceRequestError"
    finally:
        shutdown(*server)


def test_proxies_are_refused_not_ignored(server: ScriptedServer) -> None:
    from azure.core.rest import HttpRequest

    with pytest.raises(ValueError, match="without proxies"):
        ours().send(HttpRequest("GET", server.url("/ok")), proxies={"http": "http://p:3128"})


def test_the_ledger_never_imports_requests(azurite) -> None:
    """The Tables SDK sends through httpx alone; in a fresh process, as the CLI runs."""
    code = (
        "import sys\n"
        "from sync.adapters.ledger_tables import TableLedger\n"
        f"ledger = TableLedger(connection_string={azurite.connection_string!r}, "
        "table_name='httpxonly', container='httpxonly')\n"
        "assert ledger.state('api', 'target').version == 0\n"
        "lease = ledger.acquire_lease('api', 'target', 'me', 30)\n"
        "ledger.release_lease(lease)\n"
        "print(sorted(m for m in ('requests', 'urllib3') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_blob_and_queue_clients_send_through_it_too(azurite, monkeypatch) -> None:
    """azure-storage-blob and -queue import requests themselves; they still send through httpx
    (one stack, one TLS configuration), streamed blob downloads included."""
    from sync.adapters.ledger_tables import TableLedger
    from sync.adapters.queue_storage import StorageWorkQueue
    from sync.models import SyncRequest, WorkItem
    from tests.ledger.conftest import unique

    for name in [k for k in os.environ if "proxy" in k.lower()]:
        monkeypatch.delenv(name)
    ledger = TableLedger(
        connection_string=azurite.connection_string,
        table_name=unique("httpx"),
        container=unique("httpx-c"),
    )
    blobs = ledger._blobs()
    assert type(blobs._pipeline._transport).__name__ == "HttpxTransport"
    payload = os.urandom(300_000)
    blobs.upload_blob("probe", payload, overwrite=True)
    assert blobs.download_blob("probe", max_concurrency=1).readall() == payload
    queue = StorageWorkQueue(
        connection_string=azurite.connection_string, queue_name=unique("httpx-q")
    )
    request = SyncRequest(api="a", reason="test")
    queue.send(WorkItem(run_id="r", api="a", target="t", request=request))
    assert type(queue._client(queue.queue_name)._pipeline._transport).__name__ == "HttpxTransport"
