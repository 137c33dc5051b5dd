"""azure-core's transport over httpx (``sync.adapters.httpx_transport``) held to azure-core's own
requests transport -- the client no one here wrote -- through the same azure-core pipeline, on a
local server that answers each path one scripted way: the same bodies and headers, and the same
exception classes for the same failures (the SDKs' retry policy decides on them)."""

from __future__ import annotations

import gzip
import io
import os
import socket
import subprocess
import sys
import tempfile
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
    elif path == "/meta":  # Storage takes metadata names from the headers, as written
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nx-ms-meta-SourceUrl: https://example/a\r\nx-ms-meta-Owner: team"
            b"\r\nVary: Origin\r\nVary: Accept\r\nContent-Length: 0\r\n\r\n"
        )
    elif path == "/busy":
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
    elif path == "/redirect":
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n")
    elif path == "/echo":
        return  # answered by the caller, which has read the body
    elif path == "/$batch":  # a Tables transaction's answer: three parts in one changeset
        parts = b"".join(
            b"--changesetresponse_1\r\nContent-Type: application/http\r\n"
            b"Content-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 204 No Content\r\n"
            b'ETag: W/"e%d"\r\nContent-Length: 0\r\n\r\n\r\n' % i
            for i in range(3)
        )
        body = (
            b"--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_1"
            b"\r\n\r\n" + parts + b"--changesetresponse_1--\r\n--batchresponse_1--\r\n"
        )
        conn.sendall(
            b"HTTP/1.1 202 Accepted\r\nContent-Type: multipart/mixed; boundary=batchresponse_1"
            b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
    else:
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


def _dechunk(raw: bytes) -> bytes:
    body, position = b"", 0
    while True:
        line_end = raw.index(b"\r\n", position)
        size = int(raw[position:line_end], 16)
        if size == 0:
            return body
        body += raw[line_end + 2 : line_end + 2 + size]
        position = line_end + 2 + size + 2


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
            length, chunked = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
                if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                while not rest.endswith(b"0\r\n\r\n"):
                    rest += conn.recv(65536)
                rest = _dechunk(rest)
            while len(rest) < length:
                rest += conn.recv(65536)
            if path == "/headers":  # the request's header names and values, one per line
                lines = sorted(
                    line.partition(b":")[0].strip().lower()
                    + b": "
                    + line.partition(b":")[2].strip()
                    for line in head.split(b"\r\n")[1:]
                )
                answer = b"\n".join(lines)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nSet-Cookie: affinity=abc; Path=/\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
                )
                return
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
            response.headers.get("vary"),
            sorted(k for k in response.headers if k.lower().startswith("x-ms-meta-")),
            data,
        )


CASES = [
    "/ok", "/chunked", "/gzip", "/cut", "/silent-close", "/redirect", "/echo", "/missing", "/meta"
]  # fmt: skip


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


class ReadOnly:
    """A body with nothing but ``read()`` (no seek, no iteration)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


def _partway() -> io.BytesIO:
    stream = io.BytesIO(b"skip-this:" + b"y" * 50_000)
    stream.seek(10)
    return stream


BODIES = {
    "text-non-ascii": lambda: "Zoë ✓ " * 1000,
    "bytes": lambda: b"z" * 70_000,
    "file": lambda: io.BytesIO(b"f" * 200_000),
    "file-partway": _partway,
    "read-only": lambda: ReadOnly(b"r" * 100_000),
}


def sent(make: Callable[..., Any], url: str, body: Any, *, declare: bool) -> Any:
    """What the server received (length, first bytes), through the same pipeline."""
    from azure.core.pipeline import Pipeline
    from azure.core.pipeline.transport import HttpRequest as LegacyHttpRequest

    request = LegacyHttpRequest("PUT", url)
    request.set_streamed_data_body(body) if not isinstance(body, str | bytes) else None
    if isinstance(body, str | bytes):
        request.set_text_body(body) if isinstance(body, str) else request.set_bytes_body(body)
    if declare and isinstance(body, io.BytesIO):
        request.headers["Content-Length"] = str(len(body.getvalue()) - body.tell())
    with Pipeline(transport=make(), policies=[]) as pipeline:
        try:
            return pipeline.run(request).http_response.body()
        except Exception as exc:
            return type(exc).__name__


@pytest.mark.parametrize("declare", [True, False], ids=["declared", "undeclared"])
@pytest.mark.parametrize("kind", list(BODIES))
def test_every_body_kind_arrives_as_requests_sends_it(
    server: ScriptedServer, kind: str, declare: bool
) -> None:
    mine = sent(ours, server.url("/echo"), BODIES[kind](), declare=declare)
    yours = sent(theirs, server.url("/echo"), BODIES[kind](), declare=declare)
    assert mine == yours
    assert isinstance(mine, bytes), mine


def test_streamed_answers_dropped_unread_never_exhaust_the_pool(server: ScriptedServer) -> None:
    """The SDKs' retry policies drop a streamed 5xx without closing it; httpx's default pool
    (100 connections) then filled for good and every later request waited out the pool timeout
    (a review reproduced it with blob downloads). Far more than 100 are dropped here."""
    import gc

    from azure.core.rest import HttpRequest

    transport = ours(connection_timeout=2, read_timeout=2)
    for _ in range(150):
        response = transport.send(HttpRequest("GET", server.url("/busy")), stream=True)
        assert response.status_code == 503
        del response
    gc.collect()
    ok = transport.send(HttpRequest("GET", server.url("/ok")))
    assert ok.status_code == 200
    pool = transport._client("http")._pool
    assert len(pool.connections) <= 20  # the dropped ones were closed, not kept busy
    transport.close()


def test_a_client_certificate_stays_with_its_own_client() -> None:
    """httpx loads a client certificate into the TLS context it is given: a shared context
    would have made every other client present it (a review reproduced that over mutual TLS)."""
    import trustme

    cert = trustme.CA().issue_cert("client@example")
    with tempfile.NamedTemporaryFile(suffix=".pem", delete=False) as pem:
        cert.private_key_and_cert_chain_pem.write_to_path(pem.name)
    try:
        with_cert = ours(connection_cert=pem.name)
        plain = ours()
        mine = with_cert._client("https")._pool._ssl_context
        shared = plain._client("https")._pool._ssl_context
        assert mine is not shared
        assert shared is httpx_transport.tls_context(True)
    finally:
        os.remove(pem.name)


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


def test_an_error_names_the_request_it_met_as_a_clients_would() -> None:
    from azure.core.exceptions import ServiceRequestError
    from azure.core.pipeline import Pipeline
    from azure.core.rest import HttpRequest

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/ok"  # bound, not listening
    import httpx

    with (
        Pipeline(transport=ours(), policies=[]) as pipeline,
        pytest.raises(ServiceRequestError) as raised,
    ):
        pipeline.run(HttpRequest("GET", url))
    inner = raised.value.inner_exception
    assert isinstance(inner, httpx.ConnectError)
    assert str(inner.request.url) == url  # httpx raises if it was never set


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


def test_dropped_responses_freed_by_the_collector_never_deadlock_a_send(
    server: ScriptedServer,
) -> None:
    """A streamed response dropped inside a reference cycle is freed by the cyclic collector,
    which may run while the sending thread holds httpx's (non-reentrant) pool lock: closing it
    right there deadlocked the thread (a review reproduced it). Dropped ones are now closed by
    the next send."""
    import gc

    from azure.core.rest import HttpRequest

    transport = ours(connection_timeout=5, read_timeout=5)
    finished = threading.Event()

    def loop() -> None:
        from azure.core.exceptions import AzureError

        for _ in range(400):
            try:  # the scripted server closes each connection after its answer: a reuse may
                response = transport.send(HttpRequest("GET", server.url("/busy")), stream=True)
                cycle: list[Any] = [response]
                cycle.append(cycle)
                del response, cycle
                transport.send(HttpRequest("GET", server.url("/ok")))
            except AzureError:  # meet a reset; only a hang matters here
                continue
        finished.set()

    threshold = gc.get_threshold()
    gc.set_threshold(50)
    try:
        worker = threading.Thread(target=loop, daemon=True)
        worker.start()
        worker.join(60)
    finally:
        gc.set_threshold(*threshold)
    assert finished.is_set(), "a send deadlocked on the connection pool's lock"
    transport.close()


def test_a_body_that_disagrees_with_its_length_is_an_azure_error(server: ScriptedServer) -> None:
    """h11 finds it while streaming the body, past where httpcore converts its errors: it came
    out as h11.LocalProtocolError, which no SDK policy or our error mapping recognises."""
    from azure.core.exceptions import AzureError

    request_body = io.BytesIO(b"abc")
    from azure.core.pipeline import Pipeline
    from azure.core.pipeline.transport import HttpRequest as LegacyHttpRequest

    request = LegacyHttpRequest("PUT", server.url("/echo"))
    request.set_streamed_data_body(request_body)
    request.headers["Content-Length"] = "10"
    with Pipeline(transport=ours(), policies=[]) as pipeline, pytest.raises(AzureError):
        pipeline.run(request)


def test_a_text_file_body_is_sent_whole_as_utf8(server: ScriptedServer) -> None:
    """A text-mode stream's positions are not byte counts: it is read whole and encoded."""
    text = "héllo wörld " * 500
    assert sent(ours, server.url("/echo"), io.StringIO(text), declare=False) == (
        f"{len(text.encode())}:".encode() + text.encode()[:20]
    )


def _transaction_outcomes(client: Any, pk: str) -> list[Any]:
    """A transaction that lands, then one refused at its second operation, as the caller sees
    them: the parts' metadata (ETags dropped: they differ per row) and the refusal's index."""
    from azure.data.tables import TableTransactionError

    landed = client.submit_transaction(
        [
            ("create", {"PartitionKey": pk, "RowKey": "a", "n": 1}),
            ("upsert", {"PartitionKey": pk, "RowKey": "b", "blob": os.urandom(40_000)}),
            ("create", {"PartitionKey": pk, "RowKey": "c", "text": "x" * 1000}),
        ]
    )
    seen: list[Any] = [sorted(k for k in meta if k != "etag") for meta in landed]
    try:
        client.submit_transaction(
            [
                ("upsert", {"PartitionKey": pk, "RowKey": "d"}),
                ("create", {"PartitionKey": pk, "RowKey": "a"}),  # exists
            ]
        )
    except TableTransactionError as exc:
        seen.append((exc.status_code, exc.index, exc.error_code))
    return seen


def test_a_transactions_answer_is_read_as_requests_reads_it_without_a_thread_pool(
    azurite, monkeypatch
) -> None:
    """The parts of a transaction's answer, and the refusal of one operation, come back as
    through requests' transport, with the batch's response policies run on each part (as
    many calls), and without the thread pool azure-core starts for them."""
    import concurrent.futures

    from azure.data.tables import TableClient, TableServiceClient
    from azure.data.tables._policies import StorageHeadersPolicy

    from tests.ledger.conftest import unique

    table = unique("parts")
    TableServiceClient.from_connection_string(azurite.connection_string).create_table(table)
    pools: list[str] = []
    policy_calls: list[str] = []

    class CountedPool(concurrent.futures.ThreadPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pools.append(sys._getframe(1).f_code.co_name)  # who starts it
            super().__init__(*args, **kwargs)

    real_on_response = StorageHeadersPolicy.on_response

    def on_response(self: Any, request: Any, response: Any) -> Any:
        policy_calls.append(type(response.http_response).__name__)
        return real_on_response(self, request, response)

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", CountedPool)
    monkeypatch.setattr(StorageHeadersPolicy, "on_response", on_response)
    seen = {}
    for name, make in (("ours", ours), ("theirs", theirs)):
        client = TableClient.from_connection_string(
            azurite.connection_string, table_name=table, transport=make()
        )
        pools.clear()
        policy_calls.clear()
        outcomes = _transaction_outcomes(client, unique("pk"))
        answers = pools.count("_parts_helper")  # the request's own pools are the pipeline's
        seen[name] = (outcomes, answers, len(policy_calls))
    assert seen["ours"][0] == seen["theirs"][0]
    assert seen["ours"][0][-1] == (409, 1, "EntityAlreadyExists")
    assert seen["theirs"][1] == 2  # azure-core's own: a pool per answer
    assert seen["ours"][1] == 0
    assert seen["ours"][2] == seen["theirs"][2] > 0


def _parts_through(make: Callable[..., Any], url: str, policy: Any) -> Any:
    """A three-part answer's parts as the caller gets them, with ``policy`` as the batch's
    response policy: the ETags and what the policy saw, or the exception and what it saw."""
    from azure.core.pipeline import Pipeline
    from azure.core.rest import HttpRequest

    changeset = HttpRequest("POST", "")
    parts = [HttpRequest("POST", f"{url}/t{i}") for i in range(3)]
    changeset.set_multipart_mixed(*parts, policies=[policy], boundary="changeset_1")
    request = HttpRequest("POST", f"{url}/$batch")
    request.set_multipart_mixed(changeset, policies=[policy], boundary="batch_1")
    policy.seen = []
    with Pipeline(transport=make(), policies=[]) as pipeline:
        response = pipeline.run(request, stream=True).http_response
        try:
            answer = [p.headers["ETag"] for p in response.parts()]
        except Exception as exc:
            answer = f"{type(exc).__name__}: {str(exc).split(' object at ')[0]}"
    return answer, sorted(policy.seen)


class _Seeing:
    def on_request(self, request: Any) -> None:
        pass

    def on_response(self, request: Any, response: Any) -> None:
        self.seen.append(response.http_response.headers["ETag"])


class _Refusing(_Seeing):
    def on_response(self, request: Any, response: Any) -> None:
        super().on_response(request, response)
        if response.http_response.headers["ETag"] == 'W/"e1"':
            raise RuntimeError("refused e1")


class _Pending:
    """What an async policy's ``on_response`` returns: an awaitable, which a sync pipeline refuses.
    Not a coroutine, so the one left unawaited warns no later test."""

    def __await__(self) -> Any:
        return iter(())


class _Async(_Seeing):
    def on_response(self, request: Any, response: Any) -> Any:  # type: ignore[override]
        return _Pending()  # nothing seen: the part's policy never ran


@pytest.mark.parametrize("policy", [_Seeing, _Refusing, _Async], ids=["plain", "raises", "async"])
def test_a_multipart_answers_policies_run_as_azure_core_runs_them(
    server: ScriptedServer, policy: type
) -> None:
    """Every part's policies run, the first failure (in part order) is raised after them, and an
    async policy in this sync pipeline is refused, as azure-core's own ``parts()`` does."""
    mine = _parts_through(ours, server.url(""), policy())
    yours = _parts_through(theirs, server.url(""), policy())
    assert mine == yours
    assert mine[0] != [] and mine[1] == ([] if policy is _Async else ['W/"e0"', 'W/"e1"', 'W/"e2"'])


def test_the_headers_a_client_adds_go_with_every_request_and_the_requests_own_win(
    server: ScriptedServer,
) -> None:
    """The transport sends without an httpx client: it adds what one would (``DEFAULT_HEADERS``),
    the request's own headers replace them, and no cookie an answer set comes back (no jar:
    the Storage and Key Vault APIs use none)."""
    from azure.core.pipeline import Pipeline
    from azure.core.rest import HttpRequest

    with Pipeline(transport=ours(), policies=[]) as pipeline:
        seen = []
        for _ in range(2):
            request = HttpRequest("GET", server.url("/headers"), headers={"User-Agent": "sdk/1"})
            seen.append(pipeline.run(request).http_response.body().decode().split("\n"))
    host = f"host: 127.0.0.1:{server.port}"
    expected = sorted(
        ["accept: */*", "accept-encoding: gzip, deflate", "connection: keep-alive", host,
         "user-agent: sdk/1"]
    )  # fmt: skip
    assert seen == [expected, expected]  # the second request carries no cookie either
