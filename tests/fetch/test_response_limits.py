"""What a hostile server's answer may cost: total time, stacked codings, decoded chunk size.

The servers here are raw sockets on loopback that answer with scripted bytes, so the answers can
do what no well-behaved server does (headers trickled byte by byte, ``gzip, gzip``)."""

from __future__ import annotations

import gzip
import io
import ipaddress
import os
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from sync.adapters import response_limits
from sync.adapters.spec_http import HttpSpecSource
from sync.adapters.urlguard import UrlGuard, guarded_client, refusal_reason
from sync.errors import SpecError, TransientError, UnsafeUrlError
from tests.fetch.conftest import fast_settings


@contextmanager
def scripted_server(
    head: bytes, body: bytes = b"", *, trickle: float = 0.0, stop_after: float = 20.0
) -> Iterator[str]:
    """A server that answers every connection with ``head`` then ``body``; with ``trickle``,
    one byte of the head every ``trickle`` seconds (for at most ``stop_after`` seconds, so a
    client without a total time ends the test instead of hanging it)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    done = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                started = time.monotonic()
                if trickle:
                    for byte in head:
                        if done.is_set() or time.monotonic() - started > stop_after:
                            return
                        conn.sendall(bytes([byte]))
                        time.sleep(trickle)
                else:
                    conn.sendall(head)
                conn.sendall(body)
                conn.shutdown(socket.SHUT_WR)
                conn.recv(1)
            except OSError:
                return

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/openapi.json"
    finally:
        done.set()
        thread.join(timeout=2)
        listener.close()


def _head(length: int, *, encoding: str | None = None, pad: int = 0) -> bytes:
    lines = ["HTTP/1.1 200 OK", "Content-Type: application/json", f"Content-Length: {length}"]
    if encoding:
        lines.append(f"Content-Encoding: {encoding}")
    if pad:
        lines.append("X-Pad: " + "a" * pad)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _zeros_gzip(megabytes: int) -> bytes:
    """gzip of ``megabytes`` MiB of zero bytes (~1,000:1)."""
    block = b"\0" * (1 << 20)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as writer:
        for _ in range(megabytes):
            writer.write(block)
    return buffer.getvalue()


def test_stacked_content_codings_are_refused_before_decoding() -> None:
    inner = _zeros_gzip(64)  # 64 MiB under two layers of gzip: ~100 bytes on the wire
    body = gzip.compress(inner)
    head = _head(len(body), encoding="gzip, gzip")
    with scripted_server(head, body) as url, HttpSpecSource(fast_settings()) as source:
        tracemalloc.start()
        try:
            with pytest.raises(SpecError) as caught:
                source.fetch(url)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert "more than one coding" in str(caught.value)
    assert "gzip, gzip" in str(caught.value)
    assert peak < 8 * 1024 * 1024, f"decoded before refusing: peak {peak:,} bytes"


def test_stacked_codings_in_two_header_lines_are_refused_too() -> None:
    body = gzip.compress(gzip.compress(b'{"openapi": "3.0.0"}'))
    head = _head(len(body), encoding="gzip").replace(
        b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n"
    )
    source = HttpSpecSource(fast_settings())
    with scripted_server(head, body) as url, source, pytest.raises(SpecError, match="more than"):
        source.fetch(url)


def test_one_gzip_layer_is_decoded_in_bounded_pieces() -> None:
    """A 64 MiB gzip bomb (~64 KB on the wire, one network read) against a 64 KB cap: refused
    by the cap after one bounded piece, not after decoding all of it in one call."""
    body = _zeros_gzip(64)
    head = _head(len(body), encoding="gzip")
    with scripted_server(head, body) as url, HttpSpecSource(fast_settings()) as source:
        tracemalloc.start()
        try:
            with pytest.raises(SpecError, match="download cap") as caught:
                source.fetch(url)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    received = int(
        str(caught.value).split(" bytes received")[0].rsplit(" ", 1)[-1].replace(",", "")
    )
    assert received <= 20 * 1024 * 1024, received  # one piece of <= RAW_CHUNK, decoded
    assert peak < 48 * 1024 * 1024, f"peak {peak:,} bytes"


def test_gzip_and_plain_answers_still_arrive_whole() -> None:
    document = b'{"openapi": "3.0.0", "x": "' + os.urandom(30_000).hex().encode() + b'"}'
    packed = gzip.compress(document)
    answers = ((_head(len(packed), encoding="gzip"), packed), (_head(len(document)), document))
    for head, body in answers:
        with scripted_server(head, body) as url, guarded_client(fast_settings()) as client:
            response = client.get(url)
        assert response.status_code == 200
        assert response.content == document


def test_headers_trickled_byte_by_byte_end_at_the_total_time() -> None:
    """Each byte arrives well inside the 1 s read timeout, so only a total time stops it:
    connect + write + read = 3 s here. Without one this took the server's 20 s (and with the
    real 15 s timeouts and 16 KiB of headers, hours)."""
    settings = fast_settings(fetch_timeout_seconds=1.0, fetch_budget_seconds=0.5)
    head = _head(2, pad=4000)
    with scripted_server(head, b"{}", trickle=0.05) as url, HttpSpecSource(settings) as source:
        started = time.monotonic()
        with pytest.raises(TransientError) as caught:
            source.fetch(url)
        elapsed = time.monotonic() - started
    assert elapsed < 8, f"took {elapsed:.1f}s"
    assert "total time" in str(caught.value)


def test_a_trickled_body_ends_at_the_total_time_for_any_guarded_call() -> None:
    """The same limit for a body read by code other than the spec download (the platform's
    stored definition, an export link): the guarded client itself enforces it."""
    body = b"{" + b" " * 4000 + b"}"
    answer = _head(len(body)) + body  # trickled whole: the head arrives, then the body drips
    client = guarded_client(fast_settings(), timeout=httpx.Timeout(1.0))
    with scripted_server(answer, b"", trickle=0.05) as url, client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout, match="total time"):
            client.get(url)
        elapsed = time.monotonic() - started
    assert elapsed < 8, f"took {elapsed:.1f}s"


def test_total_time_is_the_sum_of_the_request_timeouts() -> None:
    request = httpx.Request("GET", "http://example.test/", extensions={})
    assert response_limits.total_seconds(request) is None
    request.extensions["timeout"] = {"connect": 2.0, "read": 5.0, "write": 3.0, "pool": 9.0}
    assert response_limits.total_seconds(request) == 10.0
    request.extensions["timeout"] = {"connect": 2.0, "read": None, "write": 3.0, "pool": None}
    assert response_limits.total_seconds(request) is None


def test_the_deadline_is_per_thread_and_restored() -> None:
    seen: list[object] = []
    with response_limits.deadline(123.0, 4.0):
        thread = threading.Thread(
            target=lambda: seen.append(getattr(response_limits._current, "deadline", None))
        )
        thread.start()
        thread.join()
        with response_limits.deadline(None, None):
            assert response_limits._current.deadline is None
        assert response_limits._current.deadline == 123.0
    assert response_limits._current.deadline is None
    assert seen == [None]


def test_azure_platform_address_is_refused() -> None:
    reason = refusal_reason(ipaddress.ip_address("168.63.129.16"))
    assert reason is not None and "WireServer" in reason
    assert refusal_reason(ipaddress.ip_address("168.63.129.17")) is None
    with pytest.raises(UnsafeUrlError, match="WireServer"):
        UrlGuard().check("http://168.63.129.16:32526/vmSettings")
    with pytest.raises(UnsafeUrlError, match="WireServer"):
        UrlGuard().check("http://[::ffff:168.63.129.16]/machine/?comp=goalstate")
