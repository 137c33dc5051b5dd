"""Limits on what a server's answer may cost us, for every request ``GuardedTransport`` sends.

The servers behind user-supplied URLs are untrusted, and httpx alone leaves two ways for one to
hold or exhaust a worker:

- **Time.** httpx's timeouts apply to each socket operation, so a server that sends its status
  line and headers one byte every few seconds never trips the read timeout (h11 accepts 16 KiB
  of headers: hours at that pace, past the work item's lease). Here each exchange, headers and
  body, must finish within its total time: the connect, write and read timeouts of the request
  added together (``total_seconds``). Every socket read and write is given at most what is left
  of it, and one that would start after it raises httpx's ``ReadTimeout``/``WriteTimeout``
  (transient, like any other timeout).
- **Memory.** httpx decodes each network chunk in one call, and accepts stacked codings
  (``Content-Encoding: gzip, gzip``): 2 KB on the wire became 1 GiB in one chunk before any
  size cap could see it. Stacked codings are refused (``httpx.DecodingError``: no spec server
  needs them) and an encoded body is handed to the decoder in pieces of at most ``RAW_CHUNK``
  bytes (an identity body, which cannot expand, as the network gives it), so one decoded chunk
  is at most ~1,000 times that (deflate's limit) and the callers' caps (``read_capped``, the
  stored-definition limit) act within ~16 MB.

The deadline of the exchange in progress is kept per thread: httpx's sync client sends a request
and reads its body on the caller's thread, and a pooled connection serves one exchange at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

RAW_CHUNK = 16 * 1024
# A request extension: a ``time.monotonic()`` value the exchange must also end by, for a caller
# whose budget is shorter than the timeouts' sum (the Teams card within its claim's window).
DEADLINE = "connector_sync.deadline"

_current = threading.local()  # .deadline: time.monotonic() value, .total: seconds (or absent)


def total_seconds(request: httpx.Request) -> float | None:
    """The exchange's total time: its connect, write and read timeouts added (None: unbounded,
    when any of them is None, as httpx then waits for ever on that step too)."""
    timeout = request.extensions.get("timeout")
    if not isinstance(timeout, dict):
        return None
    total = 0.0
    for step in ("connect", "write", "read"):
        seconds = timeout.get(step)
        if not isinstance(seconds, (int, float)):
            return None
        total += seconds
    return total


@contextmanager
def deadline(at: float | None, total: float | None) -> Iterator[None]:
    """Socket operations of this thread end by ``at`` (monotonic) while inside."""
    before = getattr(_current, "deadline", None), getattr(_current, "total", None)
    _current.deadline, _current.total = at, total
    try:
        yield
    finally:
        _current.deadline, _current.total = before


def _bounded(timeout: float | None, error: type[Exception]) -> tuple[float | None, bool]:
    """The timeout for one socket operation, and whether the deadline shortened it."""
    at = getattr(_current, "deadline", None)
    if at is None:
        return timeout, False
    left = at - time.monotonic()
    if left <= 0:
        raise error(_late_message())
    if timeout is None or left < timeout:
        return left, True
    return timeout, False


_LATE = "the server's answer did not complete within its total time"


def _late_message() -> str:
    total = getattr(_current, "total", None)
    return f"{_LATE} ({total:g}s)"


def ran_out_of_total_time(exc: BaseException) -> bool:
    """Whether an httpx timeout is this module's (the exchange's total time), not a socket's."""
    return isinstance(exc, httpx.TimeoutException) and str(exc).startswith(_LATE)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose reads and writes end by the deadline of the exchange in progress."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        bounded, shortened = _bounded(timeout, httpcore.ReadTimeout)
        try:
            return self._inner.read(max_bytes, bounded)
        except httpcore.ReadTimeout:
            if shortened:
                raise httpcore.ReadTimeout(_late_message()) from None
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        bounded, shortened = _bounded(timeout, httpcore.WriteTimeout)
        try:
            self._inner.write(buffer, bounded)
        except httpcore.WriteTimeout:
            if shortened:
                raise httpcore.WriteTimeout(_late_message()) from None
            raise

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded, _ = _bounded(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend, with every connection a ``DeadlineStream``."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        bounded, _ = _bounded(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(
            self._inner.connect_tcp(
                host,
                port,
                timeout=bounded,
                local_address=local_address,
                socket_options=socket_options,
            )
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:  # pragma: no cover - GuardedTransport refuses unix sockets
        raise httpcore.ConnectError("unix sockets are not used by the guarded transport")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bound_transport(transport: httpx.HTTPTransport) -> httpx.HTTPTransport:
    """``transport`` with its connections made by a ``DeadlineBackend``. httpx (pinned to 0.28)
    has no option for httpcore's ``network_backend``, so the pool's is wrapped in place; a
    release that moves it fails here, at the first request, not silently."""
    pool = getattr(transport, "_pool", None)
    inner = getattr(pool, "_network_backend", None)
    if not isinstance(inner, httpcore.NetworkBackend):
        raise RuntimeError(
            "httpx/httpcore changed: HTTPTransport._pool._network_backend not found, so answers "
            "could not be held to their total time"
        )
    if not isinstance(inner, DeadlineBackend):
        pool._network_backend = DeadlineBackend(inner)  # type: ignore[union-attr]
    return transport


class BoundedBody(httpx.SyncByteStream):
    """A response body read in raw pieces of at most ``RAW_CHUNK`` bytes, each read within the
    exchange's deadline."""

    def __init__(
        self,
        inner: httpx.SyncByteStream,
        at: float | None,
        total: float | None,
        *,
        piece: int | None = RAW_CHUNK,
    ):
        self._inner = inner
        self._at = at
        self._total = total
        self._piece = piece  # None: as the network gives it (nothing to expand)

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)
        while True:
            with deadline(self._at, self._total):
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
            piece = self._piece
            if piece is None or len(chunk) <= piece:
                yield chunk
                continue
            for start in range(0, len(chunk), piece):
                yield chunk[start : start + piece]

    def close(self) -> None:
        self._inner.close()


def refuse_stacked_encoding(response: httpx.Response, request: httpx.Request) -> bool:
    """Raise ``httpx.DecodingError`` (after closing ``response``) for more than one content
    coding: httpx would undo each in turn, multiplying what one chunk expands to. Returns
    whether the body is encoded at all (an identity body needs no bounded pieces)."""
    codings = [
        value.strip().lower()
        for value in response.headers.get_list("content-encoding", split_commas=True)
        if value.strip() and value.strip().lower() != "identity"
    ]
    if len(codings) > 1:
        response.close()
        raise httpx.DecodingError(
            f"Content-Encoding {', '.join(codings)!r} refused: more than one coding",
            request=request,
        )
    return bool(codings)


def limited_exchange(pool: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
    """Send ``request`` through ``pool`` (made by ``bound_transport``) under the limits above."""
    total = total_seconds(request)
    now = time.monotonic()
    at = None if total is None else now + total
    given = request.extensions.get(DEADLINE)
    if isinstance(given, (int, float)) and (at is None or given < at):
        at, total = given, max(given - now, 0.0)
    with deadline(at, total):
        response = pool.handle_request(request)
    encoded = refuse_stacked_encoding(response, request)
    assert isinstance(response.stream, httpx.SyncByteStream)
    return httpx.Response(
        status_code=response.status_code,
        headers=response.headers,
        stream=BoundedBody(response.stream, at, total, piece=RAW_CHUNK if encoded else None),
        extensions=response.extensions,
    )
