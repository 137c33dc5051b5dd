"""A spec URL that redirects to a signed download: with every logger at DEBUG, no log record
holds the signature. httpx's own request lines were redacted, but httpcore logs each response's
headers (the redirect's ``Location`` among them) as preformatted text, and nothing masked them
(found in review on 2026-12-07; the secrets canary's spec server never redirects)."""

from __future__ import annotations

import uuid

from sync import logs
from tests.auth.test_secrets_canary import every_logger_at_debug, record_texts  # noqa: F401
from tests.fetch.test_spec_http import SPEC, make_source


def test_a_redirect_to_a_signed_url_leaves_no_signature_in_any_log(
    server,
    every_logger_at_debug,  # noqa: F811
) -> None:
    logs.install()  # what every trigger does first
    canary = "SASCANARY" + uuid.uuid4().hex
    server.set_spec("/blob/spec.json", SPEC)
    server.redirect("/swagger.json", f"/blob/spec.json?sv=2024-11-04&sr=b&sig={canary}", 302)
    with make_source() as source:
        assert source.fetch(server.url("/swagger.json")).content == SPEC
    records = every_logger_at_debug.records
    assert any(r.name.startswith("httpcore.") for r in records)  # the lines were logged
    leaks = [r.name for r in records if any(canary in text for text in record_texts(r))]
    assert leaks == []
