"""A failing signing-key endpoint must not be hit again by every request (found in review: a
failed scheduled refresh and a failed unknown-kid refresh left no cooldown behind, so each request
re-fetched under the process-wide lock, seconds of retries each, and random kids became a JWKS
amplifier exactly while the authority was struggling)."""

from __future__ import annotations

import pytest

from sync import auth
from sync.errors import TransientError
from tests.auth.authority import CALLER_OID
from tests.auth.test_tokens import check

pytestmark = pytest.mark.reliability


def test_a_failed_scheduled_refresh_is_not_retried_by_every_request(authority, settings):
    now = [1000.0]
    keys = auth.SigningKeys(ttl=60, clock=lambda: now[0])
    check(authority.token(), settings, keys)
    authority.jwks_down = True
    now[0] += 61
    assert check(authority.token(), settings, keys).oid == CALLER_OID  # stale keys serve
    after_first_failure = authority.jwks_fetches
    for _ in range(3):
        assert check(authority.token(), settings, keys).oid == CALLER_OID
    assert authority.jwks_fetches == after_first_failure  # no fetch until the cooldown passed
    authority.jwks_down = False
    now[0] += auth.UNKNOWN_KID_COOLDOWN_SECONDS + 1
    check(authority.token(), settings, keys)
    assert authority.jwks_fetches == after_first_failure + 1  # then it tries again


def test_random_kids_during_an_outage_cause_one_refresh_per_cooldown(authority, settings):
    now = [1000.0]
    keys = auth.SigningKeys(clock=lambda: now[0])
    check(authority.token(), settings, keys)
    authority.jwks_down = True
    with pytest.raises(TransientError):  # the first unknown kid tries a refresh: unreachable
        check(authority.token(kid="key-b"), settings, keys)
    after_first_failure = authority.jwks_fetches
    for kid in ("key-c", "key-d", "key-e"):
        with pytest.raises(auth.Unauthorized):
            check(authority.token(kid=kid), settings, keys)
    assert authority.jwks_fetches == after_first_failure
    assert check(authority.token(), settings, keys).oid == CALLER_OID  # known keys still work
