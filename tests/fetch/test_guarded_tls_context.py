"""GuardedTransport's one shared TLS context still verifies exactly as httpx's own would.

The transport makes the context once (not per pool) and gives plain-HTTP pools a context that
trusts nothing; these tests pin that HTTPS keeps its default trust (certifi, or SSL_CERT_FILE
like httpx) whatever pools came first.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest
import trustme

from sync.adapters.urlguard import UrlGuard, guarded_client
from tests.fetch.conftest import LOCAL, fake_resolver, fast_settings
from tests.support.spec_server import SpecServer

pytestmark = pytest.mark.reliability


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[SpecServer]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("spec.test").configure_cert(ctx)
    with SpecServer(tls=ctx) as srv:
        srv.set_spec("/spec.json", b'{"tls":true}')
        yield srv


def _guard() -> UrlGuard:
    return UrlGuard(LOCAL, resolver=fake_resolver({"spec.test": ["127.0.0.1"]}))


def test_default_trust_refuses_an_unknown_ca_after_a_plain_http_pool(
    tls_server: SpecServer, server: SpecServer
) -> None:
    server.set_spec("/plain.json", b'{"plain":true}')
    with guarded_client(fast_settings(), guard=_guard()) as client:
        assert client.get(server.url("/plain.json")).json() == {"plain": True}
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(tls_server.url("/spec.json", host="spec.test"))
        # and the plain-HTTP pool still works next to the HTTPS one
        assert client.get(server.url("/plain.json")).status_code == 200
    assert tls_server.count() == 0


def test_default_trust_honours_ssl_cert_file_like_httpx(
    tls_server: SpecServer, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ca.cert_pem.tempfile() as ca_file:
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
        with guarded_client(fast_settings(), guard=_guard()) as client:
            response = client.get(tls_server.url("/spec.json", host="spec.test"))
    assert response.json() == {"tls": True}


def test_the_ca_bundle_is_loaded_once_per_transport_not_per_pool(
    ca: trustme.CA, server: SpecServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("spec.test", "other.test").configure_cert(ctx)
    made: list[object] = []
    real = ssl.create_default_context

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(kwargs.get("cafile"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    server.set_spec("/plain.json", b"{}")
    guard = UrlGuard(
        LOCAL, resolver=fake_resolver({"spec.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    )
    with ca.cert_pem.tempfile() as ca_file, SpecServer(tls=ctx) as tls:
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
        tls.set_spec("/spec.json", b"{}")
        with guarded_client(fast_settings(), guard=guard) as client:
            assert client.get(server.url("/plain.json")).status_code == 200
            for host in ("spec.test", "other.test"):  # two HTTPS pools (one per name)
                assert client.get(tls.url("/spec.json", host=host)).status_code == 200
    assert made == [ca_file]
