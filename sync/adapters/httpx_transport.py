"""azure-core's transport over httpx, for the Table, Queue, Blob and Key Vault SDK clients.

Why: azure-core sends through ``requests`` unless given a transport, and importing requests,
urllib3 and charset_normalizer cost about 67 ms of CPU at every cold start of the Function App and
every ``python -m sync run`` (alternated fresh processes, docs/benchmarks.md, 2026-12-07), while
httpx, which carries every other request of the service, is loaded anyway. One HTTP stack also
means one set of timeouts and one TLS configuration.

What it keeps from azure-core's requests transport, so the SDKs' policies see the same thing:
no redirects followed (the SDKs' redirect policy decides), the connection and read timeouts of
``ConnectionConfiguration``, ``connection_verify`` / ``connection_cert``, streamed bodies read on
demand, and the same exception classes for the same failures (``ServiceRequestError`` before the
request was sent, ``ServiceResponseError`` after, their timeout kinds, ``IncompleteReadError``,
``DecodeError``): the retry policy's decisions rest on them. The response is azure-core's own
``HttpResponseImpl``, as its requests and aiohttp transports build theirs, so ``body()``,
``text()``, ``read()``, ``iter_bytes()`` and ``stream_download()`` behave as they do.

It is used only where requests would have had nothing to add (``sdk_transport.
plain_environment_verify``: no proxy variables, no netrc); ``transport()`` answers None, and the
SDKs keep requests, when azure-core's response base cannot be imported (a later azure-core that
moved it) or the caller asks for proxies.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import ssl
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import httpx

log = logging.getLogger(__name__)

# h11's words for a body that ended before its Content-Length (or its last chunk)
_CUT_SHORT = "without sending complete message body"
DEFAULT_TIMEOUT = 300.0  # azure-core's ConnectionConfiguration defaults, connect and read


def transport(
    *,
    connection_verify: bool | str = True,
    connection_cert: Any = None,
    connection_timeout: float = DEFAULT_TIMEOUT,
    read_timeout: float = DEFAULT_TIMEOUT,
) -> Any | None:
    """An azure-core ``HttpTransport`` over httpx, or None where the SDKs should keep requests."""
    made = transport_class()
    if made is None:
        return None
    return made(
        connection_verify=connection_verify,
        connection_cert=connection_cert,
        connection_timeout=connection_timeout,
        read_timeout=read_timeout,
    )


def transport_class() -> type | None:
    """The transport class, its azure-core parts imported (``sync.adapters.sdk_imports`` imports
    them ahead); None when azure-core's response base cannot be imported (a later azure-core that
    moved it), and the SDKs keep requests."""
    try:
        from azure.core.rest._http_response_impl import HttpResponseImpl
    except ImportError as exc:
        log.warning("azure-core transport over httpx unavailable (%s); using requests", exc)
        return None
    return _make_transport(HttpResponseImpl)


_CLASSES: dict[type, type] = {}


def _make_transport(response_base: type) -> type:
    """The transport class, made once the azure-core names it needs are imported (lazily: the
    module itself imports no Azure SDK)."""
    if response_base in _CLASSES:
        return _CLASSES[response_base]
    import h11  # httpx's HTTP/1.1 engine, loaded with it
    from azure.core.exceptions import (
        DecodeError,
        IncompleteReadError,
        ServiceRequestError,
        ServiceRequestTimeoutError,
        ServiceResponseError,
        ServiceResponseTimeoutError,
    )
    from azure.core.pipeline import PipelineContext, PipelineRequest, PipelineResponse
    from azure.core.pipeline.transport import HttpTransport

    def request_error(exc: httpx.HTTPError) -> Exception:
        """The azure-core class requests' transport gives the same failure."""
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return ServiceRequestTimeoutError(exc, error=exc)
        if isinstance(exc, httpx.ConnectError | httpx.UnsupportedProtocol | httpx.ProxyError):
            return ServiceRequestError(exc, error=exc)
        if isinstance(exc, httpx.TimeoutException):  # read or write timeout: the request left
            return ServiceResponseTimeoutError(exc, error=exc)
        if isinstance(exc, httpx.DecodingError):
            return DecodeError(exc, error=exc)
        if isinstance(exc, httpx.RemoteProtocolError) and _CUT_SHORT in str(exc):
            return IncompleteReadError(exc, error=exc)  # requests: "IncompleteRead"
        if isinstance(exc, httpx.TransportError):
            return ServiceResponseError(exc, error=exc)
        return ServiceRequestError(exc, error=exc)

    def _part_policies(policies: Any, part: Any) -> None:
        context = PipelineContext(None)
        asked = PipelineRequest(part.request, context)
        answered = PipelineResponse(part.request, part, context=context)
        for policy in policies:
            result = policy.on_response(asked, answered)
            if hasattr(result, "__await__"):  # azure-core's verdict on an async policy here
                raise TypeError(
                    f"Policy {policy.on_response} returned awaitable object in non-async pipeline."
                )

    class StreamDownloadGenerator:
        """A streamed body, chunk by chunk (decoded per Content-Encoding unless ``decompress``
        is off); closes the response at its end or on a failure, as requests' does."""

        def __init__(
            self, pipeline: Any, response: Any, *, decompress: bool = True, **kwargs: Any
        ) -> None:
            if kwargs:
                raise TypeError(f"Got an unexpected keyword argument: {next(iter(kwargs))}")
            self.pipeline = pipeline
            self.request = response.request
            self.response = response
            internal: httpx.Response = response.internal_response
            self._chunks = internal.iter_bytes() if decompress else internal.iter_raw()
            self._decompress = decompress
            self.content_length = int(response.headers.get("Content-Length", 0) or 0)

        def __len__(self) -> int:
            return self.content_length

        def __iter__(self) -> StreamDownloadGenerator:
            return self

        def __next__(self) -> bytes:
            internal = self.response.internal_response
            try:
                while True:
                    chunk = next(self._chunks)
                    if chunk:
                        return chunk
            except StopIteration:
                internal.close()
                raise
            except httpx.HTTPError as exc:
                internal.close()
                error = request_error(exc)
                if isinstance(error, IncompleteReadError) and not self._decompress:
                    # requests' raw stream reports a cut body as a broken connection
                    error = ServiceResponseError(exc, error=exc)
                raise error from exc
            except Exception:
                internal.close()
                raise

    class HttpxTransportResponse(response_base):
        def __init__(
            self, *, request: Any, internal_response: httpx.Response, streamed: bool
        ) -> None:
            super().__init__(
                request=request,
                internal_response=internal_response,
                status_code=internal_response.status_code,
                headers=_headers_as_sent(internal_response.headers),
                reason=internal_response.reason_phrase,
                content_type=internal_response.headers.get("content-type"),
                stream_download_generator=StreamDownloadGenerator,
            )
            if not streamed:  # httpx read the whole body already
                self._content = internal_response.content

        def parts(self) -> list[Any]:
            """The parts of a multipart/mixed answer (a Tables transaction), as azure-core's
            ``parts()`` makes them, with the batch's response policies run on each part in turn.
            azure-core starts a thread pool for every such answer to run them (Tables' one does
            nothing on a response); on two busy cores the thread starts cost more than the work:
            the answer's parts took 3.0 ms there against 1.75 this way (median of 20 warm
            updates)."""
            if not self.content_type or not self.content_type.startswith("multipart/mixed"):
                raise ValueError("You can't get parts if the response is not multipart/mixed")
            responses: list[Any] = self._get_raw_parts()
            mixed = self.request.multipart_mixed_info
            if mixed:
                first: Exception | None = None  # as azure-core: every part's policies run first
                for part in responses:
                    try:
                        _part_policies(mixed[1], part)
                    except Exception as exc:
                        first = first or exc
                if first is not None:
                    raise first
            return responses

        def _body(self) -> bytes:
            """Legacy ``body()``: the whole body, read now if it was streamed."""
            if self._content is None:
                try:
                    self._content = self._internal_response.read()
                except httpx.HTTPError as exc:
                    raise request_error(exc) from exc
            return self._content

    class HttpxTransport(HttpTransport):
        """httpx transports (connection pools), thread-safe like httpx's: one for https, made
        on the first https request, and one for plain http (Azurite, local runs) that never
        builds a TLS context: httpx builds one per transport, loading certifi's bundle (40-75
        ms of CPU), whether a request ever uses it or not.

        Requests go to the transport itself (``httpx.HTTPTransport.handle_request``, httpx's
        transport API), not through an ``httpx.Client``: azure-core's policies already do what
        a client adds (redirects, authentication, retries), and the client's own bookkeeping
        per request (a cookie jar fed through ``urllib.request``, its auth and redirect
        generators, its log call) cost ~0.15 ms of CPU per storage call standalone and 2.6-3.6
        ms of wall per warm update on two busy cores (in-process A/B, 80 alternated pairs,
        twice; docs/benchmarks.md, 2026-12-07 after 12:45). The headers a client would add (``DEFAULT_HEADERS``) are added here."""

        def __init__(
            self,
            *,
            connection_verify: bool | str,
            connection_cert: Any,
            connection_timeout: float,
            read_timeout: float,
        ) -> None:
            from azure.core.configuration import ConnectionConfiguration

            self.connection_config = ConnectionConfiguration(
                connection_timeout=connection_timeout,
                read_timeout=read_timeout,
                connection_verify=connection_verify,
                connection_cert=connection_cert,
            )
            self._clients: dict[str, httpx.HTTPTransport] = {}
            self._lock = threading.Lock()

        def _client(self, scheme: str) -> httpx.HTTPTransport:
            with self._lock:
                client = self._clients.get(scheme)
                if client is None:
                    config = self.connection_config
                    tls = scheme == "https"
                    client = self._clients[scheme] = httpx.HTTPTransport(
                        verify=tls_context(config.verify, cert=config.cert) if tls else NO_TLS,
                        # urllib3's pool never blocks (it opens another connection), and the
                        # SDKs' retry policies drop a streamed response they retry without
                        # closing it: httpx's default cap of 100 would fill with those, and
                        # every later request would wait out the pool timeout
                        limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
                        trust_env=False,  # used only where the environment has nothing to add
                    )
                return client

        def open(self) -> None:
            """Clients are made on first use, per scheme."""

        def close(self) -> None:
            _close_dropped()
            with self._lock:
                clients, self._clients = list(self._clients.values()), {}
            for client in clients:
                client.close()

        def __enter__(self) -> HttpxTransport:
            return self

        def __exit__(self, *args: Any) -> None:
            self.close()

        def send(
            self, request: Any, *, proxies: Mapping[str, str] | None = None, **kwargs: Any
        ) -> Any:
            if proxies:
                raise ValueError("this transport sends without proxies; configure none for it")
            config = self.connection_config
            stream = bool(kwargs.pop("stream", False))
            connect = kwargs.pop("connection_timeout", config.timeout)
            read = kwargs.pop("read_timeout", config.read_timeout)
            verify = kwargs.pop("connection_verify", config.verify)
            cert = kwargs.pop("connection_cert", config.cert)
            if verify != config.verify or cert != config.cert:
                raise ValueError("per-request connection_verify/connection_cert is not supported")
            if kwargs:
                raise TypeError(f"unexpected keyword arguments for send: {sorted(kwargs)}")
            if getattr(request, "files", None):
                raise ValueError("multipart form uploads are not supported by this transport")
            _close_dropped()
            headers, content, form = _body_of(request)
            built: httpx.Request | None = None
            try:
                # the scheme without a second parse of the URL (httpx's parser is ~0.1 ms)
                https = request.url[:6].lower() == "https:"
                pool = self._client("https" if https else "http")
                merged = httpx.Headers(DEFAULT_HEADERS)
                merged.update(headers)
                built = httpx.Request(
                    request.method,
                    request.url,
                    headers=merged,
                    data=form,
                    content=content,
                    extensions={"timeout": httpx.Timeout(read, connect=connect).as_dict()},
                )
                internal = pool.handle_request(built)
                internal.request = built
                if not stream:
                    try:
                        internal.read()
                    except BaseException:
                        internal.close()
                        raise
            except httpx.HTTPError as exc:
                if built is not None and isinstance(exc, httpx.RequestError):
                    exc.request = built  # as a client's send does (its ``request_context``)
                raise request_error(exc) from exc
            except h11.LocalProtocolError as exc:
                # a body that disagrees with its declared length, found while streaming it:
                # httpcore converts h11's errors for the headers only
                raise ServiceRequestError(exc, error=exc) from exc
            response = HttpxTransportResponse(
                request=request, internal_response=internal, streamed=stream
            )
            if stream:  # a streamed response the caller drops unread still frees its connection
                weakref.finalize(response, _DROPPED.put, internal)
            return response

    _CLASSES[response_base] = HttpxTransport
    return HttpxTransport


# What an httpx client adds to every request it builds (azure-core's policies set their own
# User-Agent and Accept where they have one; the request's headers win)
DEFAULT_HEADERS = (
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate"),
    ("Connection", "keep-alive"),
    ("User-Agent", f"python-httpx/{httpx.__version__}"),
)

# Streamed responses dropped unread, to close on the next send. Not closed by the finalizer
# itself: it may run inside the garbage collector while this thread holds the pool's lock
# (httpcore's is not reentrant), and closing takes that lock.
_DROPPED: queue.SimpleQueue[httpx.Response] = queue.SimpleQueue()


def _close_dropped() -> None:
    while not _DROPPED.empty():  # the usual case costs one look, not a raised queue.Empty
        try:
            dropped = _DROPPED.get_nowait()
        except queue.Empty:
            return
        try:
            dropped.close()
        except Exception:  # a dead connection is closed either way
            log.debug("closing a dropped streamed response failed", exc_info=True)


# For a client that only speaks plain http: never used, and costs nothing, where httpx would load
# certifi's bundle (40-75 ms of CPU) into a context of its own for every client it builds.
NO_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_DEFAULT_TLS: list[ssl.SSLContext] = []
_TLS_LOCK = threading.Lock()


def tls_context(verify: bool | str, *, cert: Any = None) -> ssl.SSLContext:
    """What ``connection_verify`` / ``connection_cert`` mean to requests, as an SSL context for
    httpx: httpx's default trust for True (certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR when
    set), a CA file or directory for a path, no verification for False; ``cert`` a client
    certificate (a path, or (certificate, key[, password])). For True without a certificate one
    context serves the process: loading the bundle costs 40-75 ms and a context is safe to
    share. A client certificate always gets a context of its own, or every client would
    present it."""
    if verify is True and cert is None:
        with _TLS_LOCK:
            if not _DEFAULT_TLS:
                _DEFAULT_TLS.append(httpx.create_ssl_context())
            return _DEFAULT_TLS[0]
    if verify is True:
        context = httpx.create_ssl_context()
    elif verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif os.path.isdir(str(verify)):
        context = ssl.create_default_context(capath=str(verify))
    else:
        context = ssl.create_default_context(cafile=str(verify))
    if cert is not None:
        parts = (cert,) if isinstance(cert, str) else tuple(cert)
        context.load_cert_chain(*parts)
    return context


_UPLOAD_CHUNK = 64 * 1024


def _body_of(request: Any) -> tuple[list[tuple[str, str]], Any, Any]:
    """(headers, content, form data) for httpx, as requests would send ``request.data``.

    Text goes as UTF-8 with its length counted in bytes (azure-core counts characters, which
    requests recomputes and httpx would send as declared); bytes get their own length too. A
    file-like body is read in chunks, its remaining length declared if the request did not.
    """
    headers = list(request.headers.items())
    body = request.data
    if body is None:
        return headers, None, None
    if isinstance(body, Mapping):
        return headers, None, body
    if isinstance(body, io.TextIOBase):  # its positions are not byte counts: read it whole
        body = body.read()
    if isinstance(body, str):
        body = body.encode("utf-8")
    if isinstance(body, bytes | bytearray | memoryview):
        kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
        return kept, bytes(body), None
    read = getattr(body, "read", None)
    if callable(read):
        if not any(k.lower() == "content-length" for k, _ in headers):
            remaining = _remaining_length(body)
            if remaining is not None:
                headers.append(("Content-Length", str(remaining)))

        def chunks() -> Any:
            while chunk := read(_UPLOAD_CHUNK):
                yield chunk.encode("utf-8") if isinstance(chunk, str) else chunk

        return headers, chunks(), None
    return headers, body, None  # an iterable of bytes: sent as it comes


def _remaining_length(body: Any) -> int | None:
    """Bytes left from a seekable file-like object's position, as requests' ``super_len``."""
    try:
        position = body.tell()
        end = body.seek(0, os.SEEK_END)
        body.seek(position)
    except (AttributeError, OSError, ValueError):
        return None
    return max(end - position, 0)


def _headers_as_sent(headers: httpx.Headers) -> Any:
    """The response headers with their names as the server wrote them (httpx lowercases them,
    and the Storage SDKs take blob and queue metadata names from them), a repeated name's values
    joined with ", " as requests does; case-insensitive for lookups."""
    from azure.core.utils import case_insensitive_dict

    merged: dict[str, tuple[str, str]] = {}
    for raw_name, raw_value in headers.raw:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        key = name.lower()
        if key in merged:
            first, earlier = merged[key]
            merged[key] = (first, f"{earlier}, {value}")
        else:
            merged[key] = (name, value)
    return case_insensitive_dict(merged.values())
