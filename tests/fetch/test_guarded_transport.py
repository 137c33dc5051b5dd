"""GuardedTransport: the connection goes to the vetted address, TLS stays bound to the name."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator

import httpx
import pytest
import trustme

from sync.adapters.urlguard import GuardedTransport, UrlGuard, guarded_client
from sync.errors import UnsafeUrlError
from tests.fetch.conftest import LOCAL, fake_resolver, fast_settings
from tests.support.spec_server import SpecServer

pytestmark = pytest.mark.reliability

_real_getaddrinfo = socket.getaddrinfo


def _server_pair() -> tuple[SpecServer, SpecServer]:
    """Server A on 127.0.0.1:p and server B on 127.0.0.2:p (same port, other loopback address)."""
    for _ in range(20):
        a = SpecServer("127.0.0.1")
        try:
            b = SpecServer("127.0.0.2", a.port)
        except OSError:
            a._server.server_close()
            continue
        return a.start(), b.start()
    pytest.skip("could not bind 127.0.0.2 on the same port as 127.0.0.1")


@pytest.fixture
def pair() -> Iterator[tuple[SpecServer, SpecServer]]:
    a, b = _server_pair()
    a.set_spec("/spec.json", b'{"server":"A"}')
    b.set_spec("/spec.json", b'{"server":"B"}')
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The OS resolver answers 127.0.0.1 for rebind.test once, then 127.0.0.2 for ever."""
    answers: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "rebind.test":
            ip = "127.0.0.1" if not answers else "127.0.0.2"
            answers.append(ip)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]
        return _real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_dns_rebinding_cannot_redirect_the_connection(
    pair: tuple[SpecServer, SpecServer], rebinding_dns: list[str]
) -> None:
    a, b = pair
    url = a.url("/spec.json", host="rebind.test")
    with guarded_client(fast_settings(allow_private_hosts=LOCAL)) as client:
        response = client.get(url)
        assert response.json() == {"server": "A"}
        assert a.requests_for("/spec.json")[0].headers["host"] == f"rebind.test:{a.port}"
        assert rebinding_dns == ["127.0.0.1"]  # resolved once, by the guard
        # the next request re-resolves, now to a non-allowlisted address: refused, B untouched
        with pytest.raises(UnsafeUrlError, match=r"127\.0\.0\.2"):
            client.get(url)
    assert b.count() == 0


def test_control_an_unguarded_client_is_rebound(
    pair: tuple[SpecServer, SpecServer], rebinding_dns: list[str]
) -> None:
    """Proves the rebinding test above can fail: a plain client's own lookup lands on B."""
    a, b = pair
    rebinding_dns.append("127.0.0.1")  # the "check" lookup already happened
    with httpx.Client(trust_env=False) as client:
        assert client.get(a.url("/spec.json", host="rebind.test")).json() == {"server": "B"}
    assert b.count() == 1


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[tuple[SpecServer, list[str | None]]]:
    seen_sni: list[str | None] = []
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("spec.test").configure_cert(ctx)
    ctx.sni_callback = lambda _sock, name, _ctx: seen_sni.append(name)  # type: ignore[assignment]
    with SpecServer(tls=ctx) as srv:
        srv.set_spec("/spec.json", b'{"tls":true}')
        yield srv, seen_sni


def _client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def test_https_uses_sni_and_verifies_the_certificate_for_the_name(
    tls_server: tuple[SpecServer, list[str | None]], ca: trustme.CA
) -> None:
    srv, seen_sni = tls_server
    resolve = fake_resolver({"spec.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    guard = UrlGuard(LOCAL, resolver=resolve)
    with guarded_client(fast_settings(), guard=guard, verify=_client_ctx(ca)) as client:
        assert client.get(srv.url("/spec.json", host="spec.test")).json() == {"tls": True}
        assert seen_sni == ["spec.test"]
        assert srv.requests[0].headers["host"] == f"spec.test:{srv.port}"
        # same IP and port, another name: a fresh TLS handshake that must fail verification
        # (a pool keyed only by IP would reuse the connection verified for spec.test)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(srv.url("/spec.json", host="other.test"))
    assert srv.count() == 1


def test_unsafe_url_is_refused_before_any_connection() -> None:
    with guarded_client(fast_settings(allow_private_hosts=frozenset())) as client:
        with pytest.raises(UnsafeUrlError, match="link-local"):
            client.get("http://169.254.169.254/metadata/identity/oauth2/token")
        with pytest.raises(UnsafeUrlError, match="loopback"):
            client.get("http://127.0.0.1:9/")


def test_redirects_are_not_followed(server: SpecServer) -> None:
    server.redirect("/old", "http://169.254.169.254/")
    with guarded_client(fast_settings()) as client:
        response = client.get(server.url("/old"))
    assert response.status_code == 302
    assert response.headers["location"] == "http://169.254.169.254/"


def test_environment_proxies_are_ignored(
    server: SpecServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SpecServer() as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.base_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        server.set_spec("/spec.json", b"{}")
        with guarded_client(fast_settings()) as client:
            assert client.get(server.url("/spec.json")).status_code == 200
        assert proxy.count() == 0
    assert server.count() == 1


def test_transport_refuses_options_that_bypass_pinning() -> None:
    with pytest.raises(ValueError, match="proxy"):
        GuardedTransport(UrlGuard(), proxy="http://127.0.0.1:3128")
    with pytest.raises(ValueError, match="uds"):
        GuardedTransport(UrlGuard(), uds="/tmp/x.sock")


def test_httpx_request_log_is_redacted(
    server: SpecServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.set_spec("/spec.json", b"{}")
    with caplog.at_level(logging.INFO, logger="httpx"), guarded_client(fast_settings()) as client:
        client.get(server.url("/spec.json?sv=2024&sig=TopSecretSig"))
    assert "sig=REDACTED" in caplog.text
    assert "TopSecretSig" not in caplog.text
    assert server.requests[0].path.endswith("sig=TopSecretSig")  # the server still got it


def test_ipv6_loopback_is_pinned_with_brackets() -> None:
    try:
        srv = SpecServer("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with srv:
        srv.set_spec("/spec.json", b'{"v6":1}')
        guard = UrlGuard({"::1"})
        with guarded_client(fast_settings(), guard=guard) as client:
            assert client.get(srv.url("/spec.json")).json() == {"v6": 1}
