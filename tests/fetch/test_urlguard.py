"""The URL guard against hostile URLs: schemes, userinfo, every private/special address form."""

from __future__ import annotations

import pytest

from sync.adapters.urlguard import UrlGuard, system_resolver
from sync.errors import TransientError, UnsafeUrlError
from sync.settings import Settings
from tests.fetch.conftest import fake_resolver

pytestmark = pytest.mark.reliability

DNS = {
    "metadata.google.internal": ["169.254.169.254"],
    "metadata.azure.test": ["fe80::a9fe:a9fe"],
    "localhost": ["127.0.0.1", "::1"],
    "rebind.test": ["127.0.0.1"],
    "intranet.test": ["10.20.30.40"],
    "mixed.test": ["93.184.216.34", "10.0.0.7"],
    "mapped.test": ["::ffff:169.254.169.254"],
    "cgnat.test": ["100.100.1.1"],
    "api.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "garbage.test": ["not-an-ip"],
    "empty.test": [],
}


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"numeric host {host!r} must not reach the resolver")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        # cloud metadata and link-local
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://metadata.google.internal/computeMetadata/v1/", "link-local"),
        ("http://metadata.azure.test/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://mapped.test/", "embeds IPv4 169.254.169.254"),
        # loopback in all its spellings
        ("http://127.0.0.1/", "loopback"),
        ("http://127.1/", "loopback"),
        ("http://0x7f000001/", "loopback"),
        ("http://0x7f.1/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "embeds IPv4 127.0.0.1"),
        ("http://[::ffff:7f00:1]/", "embeds IPv4 127.0.0.1"),
        ("http://[::127.0.0.1]/", "embeds IPv4 127.0.0.1"),
        ("http://[64:ff9b::7f00:1]/", "embeds IPv4 127.0.0.1"),
        ("http://[2002:7f00:1::]/", "embeds IPv4 127.0.0.1"),
        ("http://localhost/", "loopback"),
        ("http://LOCALHOST./", "loopback"),
        # private ranges
        ("http://10.0.0.5/", "private"),
        ("http://172.16.3.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://intranet.test/", "private"),
        ("http://100.64.0.1/", "CGNAT"),
        ("http://cgnat.test/", "CGNAT"),
        ("http://[fc00::1]/", "private"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://[fec0::1]/", "site-local"),
        # unspecified, multicast, reserved, documentation
        ("http://0.0.0.0/", "unspecified"),
        ("http://0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://255.255.255.255/", "reserved"),
        ("http://192.0.2.1/", "private"),
        ("http://[2001:db8::1]/", "private"),
        # every resolved address counts
        ("http://mixed.test/", "10.0.0.7"),
    ],
)
def test_refuses_non_public_destinations(url: str, reason: str) -> None:
    guard = UrlGuard(resolver=fake_resolver(DNS))
    with pytest.raises(UnsafeUrlError) as info:
        guard.check(url)
    assert reason in str(info.value)
    assert "SYNC_ALLOW_PRIVATE_HOSTS" in str(info.value)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://example.com:70/_x", "scheme 'gopher'"),
        ("ftp://example.com/spec.json", "scheme 'ftp'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("//example.com/spec.json", "scheme '(none)'"),
        ("example.com/spec.json", "scheme '(none)'"),
        ("http://user@api.example.com/", "credentials"),
        ("https://user:pw@api.example.com/", "credentials"),
        ("http://:@api.example.com/", "credentials"),
        ("http:///spec.json", "no host"),
        ("http://api.example.com:99999/", "out of range"),
        ("http://%31%32%37.0.0.1/", "percent-encoded"),
        ("http://[fe80::1%25eth0]/", "percent-encoded"),
        ("http://0177.0.0.1/", "not a valid URL"),
        ("http://exa mple.com/", "percent-encoded"),
        ("http://garbage.test/", "not an IP address"),
    ],
)
def test_refuses_malformed_or_disallowed_urls(url: str, reason: str) -> None:
    guard = UrlGuard({"localhost", "127.0.0.1"}, resolver=fake_resolver(DNS))
    with pytest.raises(UnsafeUrlError) as info:
        guard.check(url)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    "url", ["http://127.1/", "http://0x7f000001/", "http://2130706433/", "http://[::1]/"]
)
def test_numeric_hosts_never_reach_the_resolver(url: str) -> None:
    with pytest.raises(UnsafeUrlError):
        UrlGuard(resolver=no_dns).check(url)


def test_public_urls_pass_with_every_address_recorded() -> None:
    vetted = UrlGuard(resolver=fake_resolver(DNS)).check("https://API.Example.com/swagger.json")
    assert vetted.host == "api.example.com"
    assert vetted.port == 443
    assert vetted.scheme == "https"
    assert vetted.addresses == ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    assert vetted.address == "93.184.216.34"
    assert not vetted.allowlisted
    assert UrlGuard(resolver=no_dns).check("http://8.8.8.8:8080/x").port == 8080
    assert UrlGuard(resolver=no_dns).check("https://[2606:4700::1]/").address == "2606:4700::1"


def test_resolver_failures_are_transient_and_empty_answers_refused() -> None:
    with pytest.raises(TransientError, match="no address"):
        UrlGuard(resolver=fake_resolver(DNS)).check("http://empty.test/")
    with pytest.raises(TransientError, match=r"cannot resolve host 'no-such-host\.invalid'"):
        UrlGuard().check("http://no-such-host.invalid/spec.json")


def test_system_resolver_sees_localhost_as_loopback() -> None:
    assert "127.0.0.1" in system_resolver("localhost", 80)
    with pytest.raises(UnsafeUrlError, match="loopback"):
        UrlGuard().check("http://localhost:7071/api/swagger.json")


# --- allowlist ----------------------------------------------------------------------------------


def test_allowlisted_address_passes_in_any_spelling_and_for_names_resolving_to_it() -> None:
    guard = UrlGuard({"127.0.0.1"}, resolver=fake_resolver(DNS))
    assert guard.check("http://127.0.0.1:7071/x").allowlisted
    assert guard.check("http://127.1:7071/x").address == "127.0.0.1"
    assert guard.check("http://rebind.test:1/").address == "127.0.0.1"
    with pytest.raises(UnsafeUrlError, match=r"127\.0\.0\.2"):
        guard.check("http://127.0.0.2/")
    with pytest.raises(UnsafeUrlError, match="::1"):  # localhost also resolves to ::1
        guard.check("http://localhost/")


def test_allowlist_with_port_is_port_specific() -> None:
    guard = UrlGuard({"localhost:7071", "[::1]:8080"}, resolver=fake_resolver(DNS))
    vetted = guard.check("http://localhost:7071/api")
    assert vetted.allowlisted
    assert vetted.addresses == ("127.0.0.1", "::1")
    with pytest.raises(UnsafeUrlError):
        guard.check("http://localhost:7072/api")
    assert guard.check("http://[::1]:8080/").allowlisted
    with pytest.raises(UnsafeUrlError):
        guard.check("http://[::1]:8081/")


def test_allowlist_does_not_open_other_doors() -> None:
    guard = UrlGuard({"localhost", "127.0.0.1"}, resolver=fake_resolver(DNS))
    for url in ("file://localhost/etc/passwd", "http://admin@localhost/", "gopher://localhost/"):
        with pytest.raises(UnsafeUrlError):
            guard.check(url)
    with pytest.raises(UnsafeUrlError, match="link-local"):
        guard.check("http://169.254.169.254/")


def test_allowlist_comes_from_the_app_setting() -> None:
    settings = Settings.from_env({"SYNC_ALLOW_PRIVATE_HOSTS": " 127.0.0.1 , Localhost:7071 "})
    guard = UrlGuard(settings.allow_private_hosts, resolver=fake_resolver(DNS))
    assert guard.check("http://localhost:7071/").allowlisted
    assert guard.check("http://127.0.0.1:9/").allowlisted
    with pytest.raises(UnsafeUrlError):
        UrlGuard(Settings.from_env({}).allow_private_hosts, resolver=no_dns).check(
            "http://127.0.0.1:9/"
        )


# --- redaction ----------------------------------------------------------------------------------


def test_errors_never_carry_sas_signatures() -> None:
    url = "http://10.0.0.1/specs/api.json?sv=2024-01-01&sig=SeCrEt%2Bsig&se=2030"
    with pytest.raises(UnsafeUrlError) as info:
        UrlGuard().check(url)
    assert "SeCrEt" not in str(info.value)
    assert "sig=REDACTED" in str(info.value)
