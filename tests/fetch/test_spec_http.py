"""HttpSpecSource against the real local spec server: warm-up, caps, 304s, redirects, HTML."""

from __future__ import annotations

import json
import logging
import re
import ssl
from collections.abc import Iterator

import httpx
import pytest
import trustme

from sync.adapters.spec_http import MAX_REDIRECTS, DownloadRefused, HttpSpecSource
from sync.errors import PermanentError, SpecError, TransientError, UnsafeUrlError
from sync.spec.parse import load_document
from tests.conftest import corpus_dir
from tests.fetch.conftest import fast_settings
from tests.support.spec_server import SpecServer

SPEC = b'{"swagger":"2.0","info":{"title":"Invoices","version":"1.0"},"paths":{}}'


def make_source(**settings: object) -> HttpSpecSource:
    return HttpSpecSource(fast_settings(**settings), wait_initial=0.01, wait_max=0.05)


# --- the happy path and conditional GET --------------------------------------------------------


def test_fetch_returns_body_and_validators(server: SpecServer, source: HttpSpecSource) -> None:
    published = server.set_spec("/swagger.json", SPEC)
    spec = source.fetch(server.url("/swagger.json"))
    assert spec.content == SPEC
    assert spec.etag == published.etag
    assert spec.last_modified == published.last_modified
    assert spec.content_type == "application/json"
    assert spec.url == server.url("/swagger.json")
    assert not spec.not_modified
    sent = server.requests[0].headers
    assert "application/json" in sent["accept"]
    assert "if-none-match" not in sent
    assert "if-modified-since" not in sent


def test_304_with_etag(server: SpecServer, source: HttpSpecSource) -> None:
    server.set_spec("/swagger.json", SPEC)
    first = source.fetch(server.url("/swagger.json"))
    again = source.fetch(server.url("/swagger.json"), etag=first.etag)
    assert again.not_modified
    assert again.content is None
    assert again.etag == first.etag
    assert server.requests[1].headers["if-none-match"] == first.etag
    # the spec changes: the same conditional request now gets the new body
    server.set_spec("/swagger.json", SPEC.replace(b"1.0", b"1.1"))
    changed = source.fetch(server.url("/swagger.json"), etag=first.etag)
    assert changed.content is not None
    assert b"1.1" in changed.content
    assert changed.etag != first.etag


def test_304_with_last_modified(server: SpecServer, source: HttpSpecSource) -> None:
    server.set_spec("/swagger.json", SPEC, etag=None)
    first = source.fetch(server.url("/swagger.json"))
    assert first.etag is None
    assert first.last_modified
    again = source.fetch(server.url("/swagger.json"), last_modified=first.last_modified)
    assert again.not_modified
    assert again.last_modified == first.last_modified
    assert server.requests[1].headers["if-modified-since"] == first.last_modified
    older = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert source.fetch(server.url("/swagger.json"), last_modified=older).content == SPEC


def test_unconditional_304_is_a_spec_error(server: SpecServer, source: HttpSpecSource) -> None:
    server.fail("/swagger.json", times=None, status=304, body=b"")
    with pytest.raises(SpecError, match="304 to an unconditional request"):
        source.fetch(server.url("/swagger.json"))


# --- parsing what was fetched --------------------------------------------------------------------


def test_yaml_dates_stay_strings(server: SpecServer, source: HttpSpecSource) -> None:
    yaml_spec = (
        b"openapi: 3.0.3\ninfo:\n  title: Dates\n  version: 2024-01-31\n"
        b"paths:\n  /x:\n    get:\n      responses:\n        200:\n          description: ok\n"
    )
    server.set_spec("/openapi.yaml", yaml_spec, "application/yaml")
    doc = load_document(source.fetch(server.url("/openapi.yaml")).content or b"")
    assert doc["info"]["version"] == "2024-01-31"
    assert "200" in doc["paths"]["/x"]["get"]["responses"]


def test_bom_is_kept_in_bytes_and_tolerated_by_the_parser(
    server: SpecServer, source: HttpSpecSource
) -> None:
    server.set_spec("/bom.json", b"\xef\xbb\xbf" + SPEC)
    content = source.fetch(server.url("/bom.json")).content or b""
    assert content.startswith(b"\xef\xbb\xbf")
    assert load_document(content)["info"]["title"] == "Invoices"


def test_real_corpus_specs_round_trip(server: SpecServer) -> None:
    bookings = (
        corpus_dir("connectors", "Microsoft-Bookings", "after") / "apiDefinition.swagger.json"
    )
    museum = corpus_dir("openapi3") / "redocly-museum.yaml"
    server.set_spec("/bookings.json", bookings.read_bytes())
    server.set_spec("/museum.yaml", museum.read_bytes(), "application/yaml")
    server.chunked("/museum.yaml")  # served without Content-Length
    with make_source(fetch_max_bytes=10 * 1024 * 1024) as source:
        fetched = source.fetch(server.url("/bookings.json"))
        assert fetched.content == bookings.read_bytes()
        assert load_document(fetched.content) == json.loads(
            bookings.read_bytes().decode("utf-8-sig")
        )
        museum_doc = load_document(source.fetch(server.url("/museum.yaml")).content or b"")
    assert str(museum_doc["openapi"]).startswith("3.")


# --- warm-up retries and the budget ------------------------------------------------------------


@pytest.mark.reliability
def test_retries_through_503_warm_up(server: SpecServer, source: HttpSpecSource) -> None:
    server.set_spec("/swagger.json", SPEC)
    server.warm_up("/swagger.json", times=3, status=503)
    assert source.fetch(server.url("/swagger.json")).content == SPEC
    assert server.count("/swagger.json") == 4


@pytest.mark.reliability
def test_retries_through_404_warm_up(server: SpecServer, source: HttpSpecSource) -> None:
    server.set_spec("/swagger.json", SPEC)
    server.warm_up("/swagger.json", times=2, status=404)
    assert source.fetch(server.url("/swagger.json")).content == SPEC
    assert server.count("/swagger.json") == 3


@pytest.mark.reliability
@pytest.mark.parametrize("status", [408, 429, 500, 502, 504])
def test_other_transient_statuses_are_retried(
    server: SpecServer, source: HttpSpecSource, status: int
) -> None:
    server.set_spec("/swagger.json", SPEC)
    server.fail("/swagger.json", times=1, status=status, headers={"Retry-After": "0"})
    assert source.fetch(server.url("/swagger.json")).content == SPEC
    assert server.count("/swagger.json") == 2


@pytest.mark.reliability
def test_connection_drops_and_truncated_bodies_are_retried(
    server: SpecServer, source: HttpSpecSource
) -> None:
    server.set_spec("/swagger.json", SPEC)
    server.drop("/swagger.json", times=2)
    server.lying_length("/swagger.json", declared=5000, actual=10, times=1)
    assert source.fetch(server.url("/swagger.json")).content == SPEC
    assert server.count("/swagger.json") == 4


@pytest.mark.reliability
def test_budget_exhaustion_is_transient_and_names_url_and_attempts(server: SpecServer) -> None:
    server.fail("/swagger.json", times=None, status=503)
    with make_source(fetch_budget_seconds=0.4) as source, pytest.raises(TransientError) as info:
        source.fetch(server.url("/swagger.json?sig=S3cret"))
    message = str(info.value)
    assert server.url("/swagger.json?sig=REDACTED") in message
    assert "S3cret" not in message
    assert "HTTP 503" in message
    attempts = int(re.search(r"after (\d+) attempts", message).group(1))  # type: ignore[union-attr]
    assert attempts == server.count("/swagger.json")
    assert attempts >= 2


@pytest.mark.reliability
def test_404_that_never_goes_away_ends_as_transient(server: SpecServer) -> None:
    with make_source(fetch_budget_seconds=0.3) as source, pytest.raises(TransientError) as info:
        source.fetch(server.url("/missing.json"))
    assert "HTTP 404" in str(info.value)
    assert "warming up" in str(info.value)


@pytest.mark.reliability
def test_slow_first_byte_times_out_then_retries(server: SpecServer) -> None:
    server.set_spec("/swagger.json", SPEC)
    server.slow("/swagger.json", delay=1.0, times=1)
    with make_source(fetch_timeout_seconds=0.2) as source:
        assert source.fetch(server.url("/swagger.json")).content == SPEC
    assert server.count("/swagger.json") == 2


@pytest.mark.reliability
def test_trickling_body_is_cut_by_the_per_request_timeout(server: SpecServer) -> None:
    server.set_spec("/swagger.json", b'{"a":"' + b"x" * 4000 + b'"}')
    server.slow("/swagger.json", delay=0.05, times=None, trickle=True)
    with (
        make_source(fetch_timeout_seconds=0.3, fetch_budget_seconds=0.7) as source,
        pytest.raises(TransientError, match="did not finish within"),
    ):
        source.fetch(server.url("/swagger.json"))


@pytest.mark.reliability
@pytest.mark.parametrize("status", [400, 401, 403, 405, 410, 451])
def test_other_4xx_are_permanent_at_once(
    server: SpecServer, source: HttpSpecSource, status: int
) -> None:
    server.fail("/swagger.json", times=None, status=status)
    with pytest.raises(PermanentError) as info:
        source.fetch(server.url("/swagger.json"))
    assert f"HTTP {status}" in str(info.value)
    assert server.url("/swagger.json") in str(info.value)
    assert not isinstance(info.value, TransientError)
    assert isinstance(info.value, DownloadRefused) and info.value.status == status
    assert server.count("/swagger.json") == 1


def test_unexpected_2xx_and_empty_bodies_are_refused(
    server: SpecServer, source: HttpSpecSource
) -> None:
    server.fail("/partial.json", times=None, status=206, body=b"{}")
    with pytest.raises(PermanentError, match="unexpected HTTP 206"):
        source.fetch(server.url("/partial.json"))
    server.set_spec("/empty.json", b"  \n")
    with pytest.raises(SpecError, match="empty body"):
        source.fetch(server.url("/empty.json"))


# --- download cap ----------------------------------------------------------------------------


@pytest.mark.reliability
def test_content_length_over_the_cap_is_refused_up_front(server: SpecServer) -> None:
    server.oversized("/big.json", 5000, declare_length=True)
    with make_source(fetch_max_bytes=4096) as source, pytest.raises(SpecError) as info:
        source.fetch(server.url("/big.json"))
    message = str(info.value)
    assert "Content-Length 5,000 bytes" in message
    assert "cap of 4,096 bytes" in message
    assert server.url("/big.json") in message
    assert server.count("/big.json") == 1  # not retried


@pytest.mark.reliability
def test_chunked_body_over_the_cap_is_aborted(server: SpecServer) -> None:
    server.oversized("/big.json", 300_000, declare_length=False)
    with make_source(fetch_max_bytes=100_000) as source, pytest.raises(SpecError) as info:
        source.fetch(server.url("/big.json"))
    assert "cap of 100,000 bytes" in str(info.value)
    assert "received" in str(info.value)


@pytest.mark.reliability
def test_infinite_body_is_aborted(server: SpecServer) -> None:
    server.infinite("/forever.json")
    with make_source(fetch_max_bytes=256 * 1024) as source, pytest.raises(SpecError, match="cap"):
        source.fetch(server.url("/forever.json"))
    assert server.count("/forever.json") == 1


def test_body_exactly_at_the_cap_is_accepted(server: SpecServer) -> None:
    body = b'{"a":"' + b"x" * (4096 - 8) + b'"}'
    assert len(body) == 4096
    server.set_spec("/edge.json", body)
    server.chunked("/edge.json")
    with make_source(fetch_max_bytes=4096) as source:
        assert source.fetch(server.url("/edge.json")).content == body


# --- redirects -------------------------------------------------------------------------------


def test_relative_redirect_is_followed(server: SpecServer, source: HttpSpecSource) -> None:
    server.set_spec("/v2/swagger.json", SPEC)
    server.redirect("/swagger.json", "/v2/swagger.json", status=301)
    spec = source.fetch(server.url("/swagger.json"))
    assert spec.content == SPEC
    assert spec.url == server.url("/swagger.json")
    assert [r.route for r in server.requests] == ["/swagger.json", "/v2/swagger.json"]


@pytest.mark.reliability
@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://10.1.2.3/swagger.json",
        "http://[::ffff:192.168.0.1]/",
        "file:///etc/passwd",
    ],
)
def test_redirect_to_a_private_host_is_refused(
    server: SpecServer, source: HttpSpecSource, target: str
) -> None:
    server.redirect("/swagger.json", target)
    with pytest.raises(UnsafeUrlError):
        source.fetch(server.url("/swagger.json"))
    assert server.count() == 1


@pytest.mark.reliability
def test_redirect_chain_longer_than_five_is_refused(
    server: SpecServer, source: HttpSpecSource
) -> None:
    hops = MAX_REDIRECTS + 1
    for i in range(hops):
        server.redirect(f"/r{i}", f"/r{i + 1}")
    server.set_spec(f"/r{hops}", SPEC)
    with pytest.raises(SpecError, match=f"more than {MAX_REDIRECTS} redirects"):
        source.fetch(server.url("/r0"))
    assert server.count() == MAX_REDIRECTS + 1
    # exactly five hops is fine
    assert source.fetch(server.url("/r1")).content == SPEC


def test_redirect_loop_and_missing_location(server: SpecServer, source: HttpSpecSource) -> None:
    server.redirect("/loop", "/loop")
    with pytest.raises(SpecError, match="redirects"):
        source.fetch(server.url("/loop"))
    server.fail("/nowhere", times=None, status=302, body=b"")
    with pytest.raises(SpecError, match="without a Location"):
        source.fetch(server.url("/nowhere"))


@pytest.fixture
def tls_server() -> Iterator[tuple[SpecServer, ssl.SSLContext]]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with SpecServer(tls=server_ctx) as srv:
        yield srv, client_ctx


@pytest.mark.reliability
def test_https_to_http_downgrade_is_refused(
    server: SpecServer, tls_server: tuple[SpecServer, ssl.SSLContext]
) -> None:
    from sync.adapters.urlguard import guarded_client

    secure, client_ctx = tls_server
    server.set_spec("/swagger.json", SPEC)
    secure.set_spec("/ok.json", SPEC)
    secure.redirect("/swagger.json", server.url("/swagger.json"))
    settings = fast_settings()
    with (
        guarded_client(settings, verify=client_ctx) as client,
        HttpSpecSource(settings, client=client) as source,
    ):
        assert source.fetch(secure.url("/ok.json")).content == SPEC  # https itself works
        with pytest.raises(UnsafeUrlError, match="downgrade"):
            source.fetch(secure.url("/swagger.json"))
    assert server.count() == 0


# --- HTML instead of a spec ------------------------------------------------------------------


def test_html_page_is_a_clear_spec_error(server: SpecServer, source: HttpSpecSource) -> None:
    server.html_error("/swagger.json", status=200, title="Sign in to your account")
    with pytest.raises(SpecError) as info:
        source.fetch(server.url("/swagger.json"))
    message = str(info.value)
    assert "server answered an HTML page, not a spec" in message
    assert "Sign in to your account" in message
    assert server.url("/swagger.json") in message


def test_html_without_html_content_type_is_caught(
    server: SpecServer, source: HttpSpecSource
) -> None:
    server.set_spec(
        "/swagger.json", b"\n  <!doctype html><html><body>Oops</body></html>", "text/plain"
    )
    with pytest.raises(SpecError, match="HTML page"):
        source.fetch(server.url("/swagger.json"))


@pytest.mark.reliability
def test_html_5xx_error_pages_are_still_retried(server: SpecServer, source: HttpSpecSource) -> None:
    server.set_spec("/swagger.json", SPEC)
    server.html_error("/swagger.json", status=502, times=2)
    assert source.fetch(server.url("/swagger.json")).content == SPEC


# --- unsafe locations and secrets in logs ---------------------------------------------------


@pytest.mark.reliability
def test_unsafe_location_is_refused_without_retrying(server: SpecServer) -> None:
    with make_source(allow_private_hosts=frozenset()) as source:
        with pytest.raises(UnsafeUrlError, match="loopback"):
            source.fetch(server.url("/swagger.json"))
        with pytest.raises(UnsafeUrlError, match="scheme 'ftp'"):
            source.fetch("ftp://example.com/swagger.json")
    assert server.count() == 0


@pytest.mark.reliability
def test_sas_signatures_never_reach_logs_or_errors(
    server: SpecServer, source: HttpSpecSource, caplog: pytest.LogCaptureFixture
) -> None:
    server.set_spec("/c/spec.json", SPEC)
    server.fail("/c/forbidden.json", times=None, status=403)
    query = "?sv=2024-05-04&se=2030-01-01&sp=r&sig=VerySecretSignature%3D"
    # httpx's own request line is the one that carries the URL; a test that ran
    # configure_logging earlier in this process quieted that logger, so open it explicitly.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        source.fetch(server.url("/c/spec.json" + query))
        with pytest.raises(PermanentError) as info:
            source.fetch(server.url("/c/forbidden.json" + query))
    assert "VerySecretSignature" not in str(info.value)
    assert "VerySecretSignature" not in caplog.text
    assert "sig=REDACTED" in caplog.text


@pytest.mark.reliability
@pytest.mark.parametrize(
    "target", ["http://spec.example:abc/x?sig=SECRETSIG", "http://999.1.1.1/", "http://[::1/"]
)
def test_redirect_to_an_unparseable_location_is_a_spec_error(
    server: SpecServer, source: HttpSpecSource, target: str
) -> None:
    """A server's bad Location is the server's fault: a permanent SpecError naming it (redacted),
    not an httpx.InvalidURL that escapes the error tree and is retried until poisoned."""
    server.redirect("/swagger.json", target)
    with pytest.raises(SpecError, match="Location") as caught:
        source.fetch(server.url("/swagger.json"))
    assert "SECRETSIG" not in str(caught.value)
    assert server.count() == 1


@pytest.mark.reliability
@pytest.mark.parametrize(
    "target", ["http://xn--/", "http://xn--zz-/spec.json?sig=SECRETSIG", "//xn--a.example/x"]
)
def test_redirect_to_an_invalid_idna_host_is_a_spec_error(
    server: SpecServer, source: HttpSpecSource, target: str
) -> None:
    """httpx decodes a Location's host as IDNA while building the redirect and raises
    ``idna.IDNAError`` (a ValueError, not an httpx error) for a bad A-label: it escaped the error
    tree and the work item was redelivered until poisoned. A permanent SpecError, not retried."""
    server.redirect("/swagger.json", target)
    with pytest.raises(SpecError, match="invalid Location") as caught:
        source.fetch(server.url("/swagger.json?sig=SECRETSIG"))
    assert "SECRETSIG" not in str(caught.value)
    assert server.count() == 1


class _RawRedirectClient(httpx.Client):
    """Answers every request with a redirect to ``location`` without httpx's own parsing of it."""

    def __init__(self, location: str) -> None:
        super().__init__()
        self.location = location

    def send(self, request: httpx.Request, **kwargs: object) -> httpx.Response:
        return httpx.Response(302, headers={"location": self.location}, request=request)


@pytest.mark.reliability
@pytest.mark.parametrize("target", ["http://spec.example:abc/x", "/x\x7f", "http://[zz]/"])
def test_a_location_the_redirect_join_refuses_is_a_spec_error(target: str) -> None:
    """The hop's own ``url.join`` is the second line of defence, for a client that hands back a
    redirect without having parsed its Location: httpx.InvalidURL is no HTTPError and escaped."""
    client = _RawRedirectClient(target)
    with (
        HttpSpecSource(fast_settings(), client=client) as source,  # never connects
        pytest.raises(SpecError, match="invalid Location") as caught,
    ):
        source.fetch("http://127.0.0.1/swagger.json?sig=SECRETSIG")
    assert "SECRETSIG" not in str(caught.value)


@pytest.mark.reliability
@pytest.mark.parametrize(
    "location",
    [
        "https://spec.example:abc/x?sig=SECRETSIG",
        "https://[::1/x?sig=SECRETSIG",
        "https://spec.example/x\t?sig=SECRETSIG",
    ],
)
def test_a_location_httpx_refuses_is_an_unsafe_url_error(
    server: SpecServer, source: HttpSpecSource, location: str
) -> None:
    """An export link (APIM value.link, API Center's link value) is the service's answer: one
    httpx cannot parse is refused as an UnsafeUrlError naming it (redacted), not an
    httpx.InvalidURL that escapes the error tree and is retried until poisoned."""
    with pytest.raises(UnsafeUrlError, match="not a valid URL") as caught:
        source.fetch(location)
    assert "SECRETSIG" not in str(caught.value)
    assert server.count() == 0
