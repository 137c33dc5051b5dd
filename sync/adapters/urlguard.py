"""The outbound-URL guard: every URL the service fetches or posts to must lead to a public address.

Spec URLs, Power Platform read-back links, APIM export links, Teams webhooks and the map's Entra
authority (``sync.adapters.credentials.vet_authority``) all come from configuration, events or other
servers' answers; any of them could point the function at the cloud metadata endpoint
(169.254.169.254), at loopback or at the private network it runs in (SSRF).

How the guard decides:
- Only absolute ``http``/``https`` URLs without userinfo, with a host and a port in 1..65535.
- The host is resolved once (the OS resolver by default, injectable for tests); numeric hosts in
  legacy forms (``127.1``, ``0x7f000001``, ``2130706433``) are read as the address the OS would use.
- EVERY resolved address must be public: loopback, link-local, private (RFC 1918, CGNAT, ULA),
  unspecified, multicast, reserved, documentation, Azure's platform address (168.63.129.16)
  and IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) are
  refused when the embedded address would be.
- ``allow_private_hosts`` (local development only) exempts a host as written in URLs ("localhost",
  "localhost:7071") or an address ("127.0.0.1", "127.0.0.1:10000", "[::1]:8080").

To defeat DNS rebinding (a name that is public when checked and private when connected),
``GuardedTransport`` connects to the address the guard vetted, never resolving the name again; the
request keeps its Host header and, for HTTPS, the TLS SNI and certificate check use the original
name (httpcore's ``sni_hostname`` request extension). See docs/security.md.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from sync.adapters.httpx_transport import NO_TLS
from sync.adapters.response_limits import bound_transport, limited_exchange
from sync.errors import TransientError, UnsafeUrlError
from sync.redact import redact_url

if TYPE_CHECKING:
    from sync.settings import Settings

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> the IP addresses a connection could go to, as strings."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}


_NAME_RE = re.compile(
    r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?\Z"
)
_LEGACY_V4_RE = re.compile(r"^[0-9a-fx.]+\Z")

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_COMPAT = ipaddress.ip_network("::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# Azure's platform address (WireServer, DNS, health probes): public, yet inside every host.
_AZURE_PLATFORM = ipaddress.ip_address("168.63.129.16")


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the OS resolver gives for ``host`` (the same lookup a socket connect does)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransientError(f"cannot resolve host {host!r}: {exc}") from None
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]).split("%", 1)[0], None)
    return list(seen)


def _embedded_v4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries and that a network might route to."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if any(ip in net for net in _NAT64) or (ip in _COMPAT and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def refusal_reason(ip: IPAddress) -> str | None:
    """Why a connection to ``ip`` is refused, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in _embedded_v4(ip):
            reason = refusal_reason(inner)
            if reason:
                return f"embeds IPv4 {inner} which is {reason}"
    checks: list[tuple[bool, str]] = [
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local (cloud metadata lives here)"),
        (ip.is_multicast, "multicast"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "shared address space (CGNAT)"),
        (ip == _AZURE_PLATFORM, "Azure's platform address (WireServer)"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "site-local"),
        (ip.is_reserved, "reserved"),
        (ip.is_private, "private"),
        (not ip.is_global, "not globally routable"),
    ]
    for refused, reason in checks:
        if refused:
            return reason
    return None


def _literal_ip(host: str) -> IPAddress | None:
    """The address a numeric host names, including the legacy IPv4 forms inet_aton accepts."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_V4_RE.match(host) and any(ch.isdigit() for ch in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class Vetted:
    """A URL the guard accepted, with the addresses it checked; connect to ``address`` only."""

    url: str
    scheme: str
    host: str  # ASCII (IDNA) host as the URL names it, without brackets or trailing dot
    port: int
    addresses: tuple[str, ...]
    allowlisted: bool = False

    @property
    def address(self) -> str:
        return self.addresses[0]


class UrlGuard:
    """Decides whether the service may connect to a URL (see the module docstring for the rules)."""

    def __init__(
        self,
        allow_private_hosts: Iterable[str] = frozenset(),
        *,
        resolver: Resolver | None = None,
    ) -> None:
        self.allow_private_hosts = frozenset(
            h.strip().lower() for h in allow_private_hosts if h.strip()
        )
        self._resolve: Resolver = resolver or system_resolver

    def exempts(self, name: str, port: int) -> bool:
        """Whether SYNC_ALLOW_PRIVATE_HOSTS lists host ``name`` (with or without ``port``)."""
        if not self.allow_private_hosts:
            return False
        forms = {name, f"{name}:{port}"}
        if ":" in name:  # IPv6 literal
            forms |= {f"[{name}]", f"[{name}]:{port}"}
        return not forms.isdisjoint(self.allow_private_hosts)

    def check(self, url: str | httpx.URL) -> Vetted:
        """Vet ``url``; raise ``UnsafeUrlError`` naming the (redacted) URL and the reason."""
        shown = redact_url(url)
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise UnsafeUrlError(f"not a valid URL: {exc}", where=shown) from None
        scheme = parsed.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise UnsafeUrlError(
                f"scheme {scheme or '(none)'!r} is not allowed (only http and https)", where=shown
            )
        if parsed.userinfo:
            raise UnsafeUrlError("credentials (user@) in the URL are not allowed", where=shown)
        host = parsed.raw_host.decode("ascii").lower()
        if not host:
            raise UnsafeUrlError("the URL has no host", where=shown)
        port = parsed.port or DEFAULT_PORTS[scheme]
        if not 0 < port < 65536:
            raise UnsafeUrlError(f"port {port} is out of range", where=shown)
        if "%" in host:
            raise UnsafeUrlError(
                "percent-encoded hosts and IPv6 zone ids are not allowed", where=shown
            )
        name = host.rstrip(".")
        literal = _literal_ip(name)
        if literal is None and not _NAME_RE.match(name):
            raise UnsafeUrlError(f"host {host!r} is not a valid DNS name", where=shown)

        allowlisted = self.exempts(name, port) or (
            literal is not None and self.exempts(str(literal), port)
        )
        if literal is not None:
            addresses: list[str] = [str(literal)]
        else:
            try:
                addresses = list(self._resolve(name, port))
            except TransientError as exc:
                exc.where = exc.where or shown
                raise
            if not addresses:
                raise TransientError(f"host {name!r} resolved to no address", where=shown)
        parsed_addresses: list[IPAddress] = []
        for raw in addresses:
            try:
                parsed_addresses.append(ipaddress.ip_address(str(raw).split("%", 1)[0]))
            except ValueError:
                raise UnsafeUrlError(
                    f"host {name!r} resolved to {raw!r}, which is not an IP address", where=shown
                ) from None
        if not allowlisted:
            for ip in parsed_addresses:
                reason = refusal_reason(ip)
                if reason and not self.exempts(str(ip), port):
                    via = "" if literal is not None else f" ({name!r} resolves to {ip})"
                    raise UnsafeUrlError(
                        f"address {ip} is {reason}{via}; outbound requests must go to public "
                        "addresses (local development: add the host to SYNC_ALLOW_PRIVATE_HOSTS)",
                        where=shown,
                    )
        return Vetted(
            url=str(parsed),
            scheme=scheme,
            host=name,
            port=port,
            addresses=tuple(str(ip) for ip in parsed_addresses),
            allowlisted=allowlisted,
        )


def tls_or_allowlisted(url: str, allow_private_hosts: Iterable[str]) -> bool:
    """Whether a credential may go to ``url``: it is https, or its host (as written, with or
    without its port, as the guard matches it) is one SYNC_ALLOW_PRIVATE_HOSTS lists: the local
    emulators and simulators speak plain http on loopback. The guard itself lets http through,
    since public spec URLs may be http."""
    parsed = httpx.URL(url)
    if parsed.scheme == "https":
        return True
    return UrlGuard(allow_private_hosts).exempts(parsed.host.lower().rstrip("."), parsed.port or 80)


_REFUSED_TRANSPORT_OPTIONS = frozenset({"proxy", "uds"})


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that vets every request's URL and connects to the vetted address.

    Per request: ``guard.check(url)``; the request is then sent to ``http(s)://<vetted IP>:<port>``
    with the original Host header and, for HTTPS, ``sni_hostname`` set to the original name, so
    SNI and certificate verification are for the name while the TCP connection goes to the IP that
    was checked (no second DNS lookup that a rebinding server could answer differently).

    One inner ``httpx.HTTPTransport`` (one connection pool) per (scheme, host, port): httpcore pools
    connections by origin, and the origin here is the IP, so a shared pool could hand a TLS
    connection verified for one name to a request for another name on the same IP.

    Every exchange is held to ``response_limits``: a total time for headers and body, no stacked
    content codings, the body decoded in bounded pieces.

    The pools share one TLS context, made when the first HTTPS pool is: httpx would otherwise load
    the CA bundle again for every pool (~16 ms each), and plain-HTTP pools never handshake (they
    get a context with no trusted CAs, which could verify nothing).
    """

    def __init__(self, guard: UrlGuard, **transport_kwargs: Any) -> None:
        bad = _REFUSED_TRANSPORT_OPTIONS & transport_kwargs.keys()
        if bad:
            raise ValueError(f"GuardedTransport cannot honour {sorted(bad)}: they bypass pinning")
        self.guard = guard
        self._kwargs = transport_kwargs
        self._pools: dict[tuple[str, str, int], httpx.HTTPTransport] = {}
        self._tls: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _pool_options(self, scheme: str) -> dict[str, Any]:
        """The inner transport's options, with the shared TLS context as ``verify`` (under lock)."""
        options = {k: v for k, v in self._kwargs.items() if k != "cert"}
        if scheme != "https":
            options["verify"] = NO_TLS  # never used: no TLS
            return options
        if self._tls is None:
            self._tls = httpx.create_ssl_context(
                verify=self._kwargs.get("verify", True),
                cert=self._kwargs.get("cert"),
                trust_env=self._kwargs.get("trust_env", True),
            )
        options["verify"] = self._tls
        return options

    def _pool_for(self, vetted: Vetted) -> httpx.HTTPTransport:
        key = (vetted.scheme, vetted.host, vetted.port)
        with self._lock:
            if self._closed:
                raise RuntimeError("GuardedTransport is closed")
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = bound_transport(
                    httpx.HTTPTransport(**self._pool_options(vetted.scheme))
                )
            return pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        vetted = self.guard.check(request.url)
        extensions = dict(request.extensions)
        if vetted.scheme == "https":
            extensions["sni_hostname"] = vetted.host
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=vetted.address),
            headers=request.headers,  # carries Host: <original name[:port]>
            stream=request.stream,
            extensions=extensions,
        )
        log.debug("connecting to %s for %s", vetted.address, vetted.host)
        return limited_exchange(self._pool_for(vetted), pinned)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.close()


class _RedactHttpxUrls(logging.Filter):
    """httpx logs every request URL at INFO; SAS and webhook URLs carry their signature there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, (httpx.URL, str)) and "?" in str(a) for a in record.args
        ):
            record.args = tuple(
                redact_url(a) if isinstance(a, (httpx.URL, str)) and "?" in str(a) else a
                for a in record.args
            )
        return True


_FILTER_LOCK = threading.Lock()


def install_httpx_log_redaction() -> None:
    """Attach the redacting filter to the ``httpx`` logger once (idempotent)."""
    logger = logging.getLogger("httpx")
    with _FILTER_LOCK:
        if not any(isinstance(f, _RedactHttpxUrls) for f in logger.filters):
            logger.addFilter(_RedactHttpxUrls())


def guarded_client(
    settings: Settings,
    *,
    guard: UrlGuard | None = None,
    timeout: float | httpx.Timeout | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Client:
    """An httpx client for outbound calls to URLs the service did not hard-code.

    Redirects are not followed (a caller that follows them must re-check each hop, e.g.
    ``HttpSpecSource``); environment proxies and .netrc are ignored (``trust_env=False``) because a
    proxy would make the connection go somewhere the guard never vetted.
    """
    from sync.adapters.http import default_timeout

    guard = guard or UrlGuard(settings.allow_private_hosts)
    if timeout is None:
        timeout = default_timeout(settings.fetch_timeout_seconds)
    elif not isinstance(timeout, httpx.Timeout):
        timeout = default_timeout(float(timeout))
    return client_for_guard(guard, timeout=timeout, verify=verify)


def client_for_guard(
    guard: UrlGuard, *, timeout: httpx.Timeout, verify: ssl.SSLContext | bool = True
) -> httpx.Client:
    """``guarded_client`` for a caller that holds a guard but no ``Settings`` (the delegated
    credential's token POST)."""
    install_httpx_log_redaction()
    return httpx.Client(
        transport=GuardedTransport(guard, verify=verify),
        follow_redirects=False,
        timeout=timeout,
        trust_env=False,
    )
