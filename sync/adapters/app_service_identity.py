"""Managed-identity tokens where the platform serves them at ``IDENTITY_ENDPOINT`` (Azure
Functions, App Service): one documented GET over httpx instead of azure-identity.

Why not azure-identity here: a Function App signs in with its managed identity, so every cold
start paid azure-identity's import (msal, cryptography and requests come with it) for this one
request: about 120 ms of CPU in a fresh process, more than the request itself by far
(docs/benchmarks.md, 2026-12-07). azure-identity hands this very protocol to msal, which sends the
same GET; only the import is saved. Everything else stays on azure-identity, picked as it picks:
IMDS on VMs and CI agents, Azure Arc, Service Fabric (``IDENTITY_SERVER_THUMBPRINT``), Cloud
Shell, Azure ML, and every other credential kind.

The protocol (api-version 2019-08-01): ``GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=R``
(``client_id=`` for a user-assigned identity) with the header ``X-IDENTITY-HEADER:
$IDENTITY_HEADER``. It answers ``{"access_token", "expires_on": "<epoch seconds>", ...}``, and
refuses with ``{"statusCode", "message"}``. The header value is a secret of the platform: it is
never logged and is cut out of any error text.
"""

from __future__ import annotations

import math
import os
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from sync.adapters.http import (
    TOKEN_RETRIES,
    Retries,
    default_timeout,
    json_or_none,
    send_retried,
)
from sync.adapters.httpx_transport import NO_TLS
from sync.errors import PermanentError, TransientError

API_VERSION = "2019-08-01"
ENDPOINT_VARIABLE = "IDENTITY_ENDPOINT"
HEADER_VARIABLE = "IDENTITY_HEADER"
# Service Fabric sets the two above as well, with an https endpoint whose certificate only this
# thumbprint vouches for: azure-identity's.
_SERVICE_FABRIC_VARIABLE = "IDENTITY_SERVER_THUMBPRINT"
_DEFAULT_SUFFIX = "/.default"


def serves(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process's managed identity speaks the App Service protocol, as azure-identity
    decides it (read at call time: the platform sets the variables, not our settings)."""
    env = os.environ if environ is None else environ
    return bool(
        env.get(ENDPOINT_VARIABLE)
        and env.get(HEADER_VARIABLE)
        and not env.get(_SERVICE_FABRIC_VARIABLE)
    )


def resource_of(scope: str) -> str:
    """The v1 resource a managed-identity endpoint takes for a v2 scope (azure-identity's rule:
    the ``/.default`` suffix goes, the rest stays as it is)."""
    return scope[: -len(_DEFAULT_SUFFIX)] if scope.endswith(_DEFAULT_SUFFIX) else scope


class AppServiceIdentity:
    """A ``Fetch`` (scope -> token, expiry) for ``CachedTokenProvider``: the cache, the error
    naming and the scrubbing are the provider's; this sends the GET and reads the answer.

    Statuses worth retrying (408, 429, 5xx) and transport failures are retried within a budget;
    after that, and for an answer that is not the endpoint's JSON (a front end's error page), the
    error is transient. A refusal the endpoint words itself (``statusCode`` + ``message``: no such
    identity, a wrong header) is permanent.
    """

    def __init__(
        self,
        *,
        where: str,
        client_id: str | None,
        remember: Callable[[str, str], Any],
        scrub: Callable[[str], str],
        environ: Mapping[str, str] | None = None,
        retries: Retries = TOKEN_RETRIES,
        timeout_seconds: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        env = os.environ if environ is None else environ
        self.where = where
        self.endpoint = env.get(ENDPOINT_VARIABLE, "")
        self._header = env.get(HEADER_VARIABLE, "")
        self._client_id = client_id
        self._remember = remember
        self._scrub = scrub
        self._timeout = default_timeout(timeout_seconds)
        self._retries = retries
        self._clock = clock
        # The platform's endpoint is plain http on the instance (localhost): no TLS context to
        # build for it; an https endpoint keeps httpx's verification.
        self._verify: ssl.SSLContext | bool = (
            True if self.endpoint.lower().startswith("https:") else NO_TLS
        )
        remember(self._header, HEADER_VARIABLE)

    def __call__(self, scope: str) -> tuple[str, float]:
        params = {"api-version": API_VERSION, "resource": resource_of(scope)}
        if self._client_id:
            params["client_id"] = self._client_id
        headers = {"X-IDENTITY-HEADER": self._header}

        def send() -> httpx.Response:
            # trust_env off: the endpoint is the platform's own, on the instance; a proxy from
            # the environment must never see the header.
            with httpx.Client(
                timeout=self._timeout, trust_env=False, verify=self._verify
            ) as client:
                return client.get(self.endpoint, params=params, headers=headers)

        response = send_retried(
            send,
            where=self.where,
            describe=self._describe,
            retries=self._retries,
        )
        body = json_or_none(response)
        if response.status_code != 200:
            # The endpoint's own refusal names its status; anything else came from in front of
            # it (a front end's page) or was no answer at all, and may pass.
            error = PermanentError if _worded(body) else TransientError
            raise error(
                f"{self._describe(response)} to the token request",
                where=self.where,
            )
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise TransientError(
                f"the identity endpoint answered HTTP 200 without an access_token "
                f"({'JSON' if isinstance(body, dict) else 'not JSON'})",
                where=self.where,
            )
        self._remember(token, f"access:{scope}")
        return token, self._expires_on(body)

    def _expires_on(self, body: dict[str, Any]) -> float:
        """``expires_on`` is epoch seconds as a string; older answers gave only ``expires_in``.
        NaN, infinity or text would keep a token forever or break the SDK clients' int()."""
        raw = body.get("expires_on")
        try:
            value = float(raw) if raw is not None else self._clock() + float(body["expires_in"])
        except (KeyError, TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            shown = body.get("expires_on", body.get("expires_in"))
            raise PermanentError(
                f"the identity endpoint answered an expiry {shown!r:.40} that is not a finite "
                "number of seconds",
                where=self.where,
            )
        return value

    def _describe(self, response: httpx.Response) -> str:
        """Status and the endpoint's own message (its first line, scrubbed): the platform's
        words about the identity, never a token."""
        body = json_or_none(response)
        parts = [f"the identity endpoint answered HTTP {response.status_code}"]
        message = body.get("message") if isinstance(body, dict) else None
        if isinstance(message, str) and message.strip():
            line = message.strip().splitlines()[0]
            parts.append(line if len(line) <= 300 else line[:300] + "...")
        return self._scrub(": ".join(parts))


def _worded(body: Any) -> bool:
    """The endpoint's refusal shape: ``statusCode`` (a number, or one written as text) and
    ``message`` both present."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return False
    status = body.get("statusCode")
    return isinstance(status, int) or (isinstance(status, str) and status.strip().isdigit())
