"""The signing keys decide which tokens pass, so they are read over TLS only: plain http is
refused as a configuration error (HTTP 500 naming the setting) before any request, except for
hosts in SYNC_ALLOW_PRIVATE_HOSTS (the local authority these tests run)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from sync import auth
from sync import settings as names
from sync.clouds import CLOUDS
from sync.errors import ConfigError
from sync.settings import Settings
from tests.auth.authority import Authority


def test_plain_http_metadata_is_refused_before_any_request(authority: Authority) -> None:
    settings = Settings(
        auth_tenant_id=authority.tenant,
        auth_audience="api://x",
        auth_metadata_url=authority.metadata_url(),  # http://127.0.0.1:<port>/..., not listed
    )
    with pytest.raises(ConfigError) as caught:
        auth.SigningKeys().key_for("key-a", auth.metadata_url(settings, CLOUDS["public"]), settings)
    assert caught.value.path == names.AUTH_METADATA_URL
    assert "plain http" in str(caught.value)
    assert authority.metadata_fetches == 0


def test_an_http_jwks_uri_from_the_metadata_is_refused(
    authority: Authority, settings: Settings
) -> None:
    """Metadata read from a listed host may still name keys elsewhere over plain http."""
    authority.metadata_body = json.dumps(
        {"issuer": authority.issuer(), "jwks_uri": "http://keys.example.test/discovery/keys"}
    ).encode()
    with pytest.raises(ConfigError, match="jwks_uri") as caught:
        auth.SigningKeys().key_for("key-a", auth.metadata_url(settings, CLOUDS["public"]), settings)
    assert "keys.example.test" in str(caught.value)
    assert authority.metadata_fetches == 1 and authority.jwks_fetches == 0


def test_an_http_authority_host_is_named_when_no_metadata_url_is_set() -> None:
    cloud = replace(CLOUDS["public"], authority_host="http://login.example.test")
    settings = Settings(auth_tenant_id="t", auth_audience="api://x")
    with pytest.raises(ConfigError) as caught:
        auth.SigningKeys().key_for("key-a", auth.metadata_url(settings, cloud), settings)
    assert caught.value.path == "endpoints.authorityHost"


def test_a_listed_local_authority_still_serves_its_keys(
    authority: Authority, settings: Settings
) -> None:
    key, issuer = auth.SigningKeys().key_for(
        "key-a", auth.metadata_url(settings, CLOUDS["public"]), settings
    )
    assert key is not None and issuer == authority.issuer()
