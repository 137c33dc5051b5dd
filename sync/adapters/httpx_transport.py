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

It is used only where requests would have had nothing to add (``storage_clients.
plain_environment_verify``: no proxy variables, no netrc); ``transport()`` answers None, and the
SDKs keep requests, when azure-core's response base cannot be imported (a later azure-core that
moved it) or the caller asks for proxies.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
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
    try:
        response_base = _response_base()
    except (ImportError, AttributeError) as exc:
        log.warning("azure-core transport over httpx unavailable (%s); using requests", exc)
        return None
    return _make_transport(response_base)(
        connection_verify=connection_verify,
        connection_cert=connection_cert,
        connection_timeout=connection_timeout,
        read_timeout=read_timeout,
    )


def preload() -> bool:
    """Import the azure-core parts the transport uses (``sync.adapters.sdk_imports``); False
    when they cannot be, and the SDKs will use requests."""
    try:
        _make_transport(_response_base())
    except (ImportError, AttributeError):
        return False
    return True


def _response_base() -> type:
    from azure.core.rest._http_response_impl import HttpResponseImpl

    return HttpResponseImpl


_CLASSES: dict[type, type] = {}


def _make_transport(response_base: type) -> type:
    """The transport class, made once the azure-core names it needs are imported (lazily: the
    module itself imports no Azure SDK)."""
    if response_base in _CLASSES:
        return _CLASSES[response_base]
    from azure.core.exceptions import (
        DecodeError,
        IncompleteReadError,
        ServiceRequestError,
        ServiceRequestTimeoutError,
        ServiceResponseError,
        ServiceResponseTimeoutError,
    )
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

    class HttpxTransportResponse(response_base):  # type: ignore[misc, valid-type]
        def __init__(self, *, request: Any, internal_response: httpx.Response) -> None:
            super().__init__(
                request=request,
                internal_response=internal_response,
                status_code=internal_response.status_code,
                headers=internal_response.headers,
                reason=internal_response.reason_phrase,
                content_type=internal_response.headers.get("content-type"),
                stream_download_generator=StreamDownloadGenerator,
            )
            if _read(internal_response):
                self._content = internal_response.content

        def _body(self) -> bytes:
            """Legacy ``body()``: the whole body, read now if it was streamed."""
            if self._content is None:
                try:
                    self._content = self._internal_response.read()
                except httpx.HTTPError as exc:
                    raise request_error(exc) from exc
            return self._content

    class HttpxTransport(HttpTransport):
        """httpx clients (connection pools), thread-safe like httpx's: one for https, made on
        the first https request, and one for plain http (Azurite, local runs) that never builds
        a TLS context: httpx builds one per client, loading certifi's bundle (40-75 ms of CPU),
        whether a request ever uses it or not."""

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
            self._clients: dict[str, httpx.Client] = {}
            self._lock = threading.Lock()

        def _client(self, scheme: str) -> httpx.Client:
            with self._lock:
                client = self._clients.get(scheme)
                if client is None:
                    config = self.connection_config
                    tls = scheme == "https"
                    client = self._clients[scheme] = httpx.Client(
                        verify=tls_context(config.verify) if tls else _NO_TLS,
                        cert=config.cert if tls else None,
                        timeout=httpx.Timeout(config.read_timeout, connect=config.timeout),
                        follow_redirects=False,
                        trust_env=False,  # used only where the environment has nothing to add
                    )
                return client

        def open(self) -> None:
            """Clients are made on first use, per scheme."""

        def close(self) -> None:
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
            body = request.data
            form = isinstance(body, Mapping)
            try:
                client = self._client(httpx.URL(request.url).scheme)
                built = client.build_request(
                    request.method,
                    request.url,
                    headers=list(request.headers.items()),
                    data=body if form else None,
                    content=None if form or body is None else body,
                    timeout=httpx.Timeout(read, connect=connect),
                )
                internal = client.send(built, stream=stream)
            except httpx.HTTPError as exc:
                raise request_error(exc) from exc
            return HttpxTransportResponse(request=request, internal_response=internal)

    _CLASSES[response_base] = HttpxTransport
    return HttpxTransport


_NO_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # for plain http: never used, costs nothing
_DEFAULT_TLS: list[ssl.SSLContext] = []
_TLS_LOCK = threading.Lock()


def tls_context(verify: bool | str) -> ssl.SSLContext | bool:
    """What ``connection_verify`` means to requests, as an SSL context for httpx: certifi's
    bundle for True (one context for the process: loading the bundle costs 40-75 ms and a context
    is safe to share), a CA file or directory for a path, no verification for False."""
    if verify is True:
        with _TLS_LOCK:
            if not _DEFAULT_TLS:
                _DEFAULT_TLS.append(httpx.create_ssl_context())
            return _DEFAULT_TLS[0]
    if verify is False:
        return False
    path = str(verify)
    if os.path.isdir(path):
        return ssl.create_default_context(capath=path)
    return ssl.create_default_context(cafile=path)


def _read(response: httpx.Response) -> bool:
    """Whether httpx read the whole body already (a request sent without ``stream``)."""
    try:
        response.content  # noqa: B018 - raises ResponseNotRead while streamed
    except httpx.ResponseNotRead:
        return False
    return True
