"""Reading our own tokens' claims without PyJWT: the same answers PyJWT gives, for any input."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest

from sync.adapters.powerapps import token_claims
from sync.token_claims import MAX_TOKEN_CHARS, unverified_claims
from tests.support.local_identity import LocalIdentity

ROOT = Path(__file__).resolve().parents[2]


def b64(value: Any) -> str:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pyjwt(token: str) -> dict[str, Any] | None:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


def test_a_token_minted_by_the_local_identity(identity: LocalIdentity) -> None:
    claims = {"aud": "https://service.powerapps.com/", "oid": "1234", "tid": "t", "scp": "x"}
    token = identity.mint(claims)
    assert unverified_claims(token) == pyjwt(token)
    assert unverified_claims(token)["oid"] == "1234"  # type: ignore[index]


def test_signature_and_expiry_are_not_checked() -> None:
    for key in ("a" * 32, "b" * 32):
        token = jwt.encode({"oid": "o", "exp": 1}, key, algorithm="HS256")  # long expired
        assert unverified_claims(token) == {"oid": "o", "exp": 1} == pyjwt(token)


@pytest.mark.parametrize(
    "token",
    [
        "opaque-token",
        "",
        "a.b",
        "a.b.c.d",
        f"{b64({'alg': 'none'})}.{b64([1, 2])}.",  # payload not an object
        f"{b64([1])}.{b64({'oid': 'o'})}.",  # header not an object
        f"{b64({'alg': 'none'})}.{b64(b'not json')}.",
        f"{b64({'alg': 'none'})}.{b64(bytes([0xFF, 0xFE]))}.",  # not UTF-8
        f"{b64({'alg': 'none'})}.%%%.",  # not base64url
        f"{b64({'alg': 'none'})}.{b64({'oid': 'o'})}x.",  # a length no base64 has
        f"{b64({'alg': 'none'})}.{b64({'oid': 'o'})[:-1]}\u00e9.",  # non-ASCII
        f"{b64({'alg': 'none'})}.{b64(b'[' * 100_000)}.",  # nesting past the recursion limit
        f"{b64({'alg': 'none'})}.{b64({'pad': 'x' * MAX_TOKEN_CHARS})}.",  # oversized
    ],
)
def test_anything_else_is_not_a_token(token: str) -> None:
    assert unverified_claims(token) is None
    assert token_claims(token) == {}  # the PowerApps target's view: no claims, no oid


def test_the_cli_update_path_does_not_import_pyjwt() -> None:
    """PyJWT loads ``cryptography`` (~30-40 ms of CPU); the PowerApps target reads claims on
    every update, so it must not pull it in."""
    code = (
        "import sys\n"
        "from sync.adapters.powerapps import token_claims\n"
        "token_claims('e30.eyJvaWQiOiAibyJ9.')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jwt', 'cryptography')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
