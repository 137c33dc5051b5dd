"""Secret values kept for masking stay bounded however often a secret rotates.

A delegated credential gets a new refresh token (written back to Key Vault) and a new access token
about every hour. Each was registered for log masking for the life of the process, and kept by the
credential's error scrubber too, so both grew for ever and every log line was scanned for months of
dead tokens. Now a secret's new value replaces its old ones but the last two: the value in use and
the one before it, which a late message may still quote.
"""

from __future__ import annotations

from sync import logs
from sync.clouds import Cloud
from sync.logs import register_secret
from tests.credentials.test_token_providers import PP_SCOPE, delegated_setup
from tests.support.local_identity import LocalIdentity
from tests.support.local_vault import LocalVault

ROTATIONS = 30
SECRET = "pp-user-refresh"


class Clock:
    """Wall-clock seconds that the test moves an hour at a time (an access token's life)."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def test_rotated_refresh_tokens_do_not_pile_up_in_log_masking(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud
) -> None:
    _app, first, store, tokens = delegated_setup(identity, vault, cloud)
    clock = Clock()
    tokens._clock = clock  # the provider's cache and the grant's expiry, on one clock
    tokens._fetch._clock = clock
    before = set(logs._secret_values())
    seen = [first]
    access: list[str] = []
    for _ in range(ROTATIONS):
        access.append(tokens.token(PP_SCOPE))  # redeems, rotates, writes the new token back
        seen.append(vault.latest(SECRET))
        clock.now += 3600  # the access token expired: the next call redeems again
    assert len(set(seen)) == ROTATIONS + 1  # the vault really holds a new token each time

    current, previous = seen[-1], seen[-2]
    line = f"grant failed for {current} (after {previous})"
    assert current not in logs.redact(line) and previous not in logs.redact(line)
    grown = set(logs._secret_values()) - before
    assert grown == {current, previous}, f"{len(grown)} values masked for one secret"

    scrub = tokens._scrub  # the credential's own error scrubber: same bound
    assert "***" in scrub(current) and "***" in scrub(access[-1]) and "***" in scrub(previous)
    assert len(scrub._values.values()) <= 4  # two per slot: the secret, the one scope
    assert store.get(SECRET) == current  # the store itself is unchanged by any of this


def test_a_new_value_replaces_the_oldest_of_its_name_only() -> None:
    owner = "https://kv-registry-test.vault.azure.net"
    values = [f"value-{n}-of-a-rotating-secret" for n in range(4)]
    for value in values:
        register_secret(value, owner=owner, name="rotating")
    register_secret("steady-value-of-another-secret", owner=owner, name="steady")
    text = " ".join([*values, "steady-value-of-another-secret"])
    masked = logs.redact(text)
    assert values[0] in masked and values[1] in masked  # two rotations old: no longer scanned
    assert values[2] not in masked and values[3] not in masked
    assert "steady-value-of-another-secret" not in masked  # another name keeps its own

    register_secret(values[2], owner=owner, name="rotating")  # read again: the newest once more
    register_secret("value-4-of-a-rotating-secret", owner=owner, name="rotating")
    assert values[2] not in logs.redact(values[2])
    assert values[3] in logs.redact(values[3])

    register_secret("shared-value-under-two-names", owner=owner, name="a")
    register_secret("shared-value-under-two-names", owner=owner, name="b")
    for n in range(3):
        register_secret(f"next-value-{n}-of-a", owner=owner, name="a")
    assert "shared" not in logs.redact("shared-value-under-two-names")  # still b's value
