"""The claims of an access token we were given, read without verifying it.

The service only reads its own tokens' claims to pick the ``oid`` that validateApiSwagger needs,
to explain a 401/403 (an app-only token where the PowerApps API wants a user's) and for
``doctor``'s display; no decision to trust anything rests on them, so the signature is not
checked. That is the JWS compact form's payload (RFC 7515 section 7.1): base64url JSON between
two dots. PyJWT can decode it too, but importing it loads ``cryptography`` (~30-40 ms of CPU in
every CLI update, which asks for the ``oid`` each time); PyJWT stays the verifier of inbound
tokens (``sync.auth``).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

MAX_TOKEN_CHARS = 16_384  # Entra tokens are a few KB; a larger value is not one of them


def _segment(text: str) -> Any:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return json.loads(raw)


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The token's payload claims, or None when it is not a JWS-compact JWT whose header and
    payload are JSON objects (an opaque token, say). Never raises for any string."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return None
    parts = token.split(".")
    if len(parts) != 3 or not all(
        part.isascii() and part.replace("-", "").replace("_", "").isalnum() for part in parts[:2]
    ):
        return None
    try:
        header, claims = _segment(parts[0]), _segment(parts[1])
    except (binascii.Error, ValueError, RecursionError):  # bad base64, JSON or UTF-8
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return claims
