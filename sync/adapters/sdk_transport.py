"""The transport every Azure SDK client of the service sends through: Table, Blob and Queue
Storage, and Key Vault.

azure-core sends through ``requests`` unless given a transport, and with ``trust_env`` on requests
looks up proxy variables and ~/.netrc on every call. Where the environment asks nothing of it
(no proxy, no netrc), the clients get azure-core's transport over httpx instead
(``sync.adapters.httpx_transport``), verifying TLS with the CA bundle requests would have
picked; where it does ask, they keep requests and its own handling of the environment.

The Azure SDKs are imported inside the functions, never at module level.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_TRANSPORT_KEYS = (
    "connection_timeout",
    "read_timeout",
    "connection_verify",
    "connection_cert",
    "connection_data_block_size",
)
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "netrc")
ENV_ONLY_PROXIES = sys.platform.startswith("linux")  # urllib's proxies come from env vars only


def plain_environment_verify() -> bool | str | None:
    """What ``requests`` would verify TLS with, when the environment asks nothing else of it.

    With ``trust_env`` on (azure-core's default) requests looks up proxy variables and ~/.netrc on
    every call (~0.5-1 ms each, ten storage calls per update). When none is set, the only thing the
    environment changes is the CA bundle (``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``): returned
    here so a transport without environment lookups verifies exactly as before. None: a proxy,
    a ``no_proxy`` or a netrc is configured, or the platform has system proxy settings (not
    Linux, where Functions run): keep requests' own handling."""
    if not ENV_ONLY_PROXIES:  # elsewhere urllib also reads system proxy settings
        return None
    names = {name.lower() for name in os.environ}
    if names & set(_PROXY_VARIABLES):
        return None
    home = os.path.expanduser("~")
    if any(os.path.exists(os.path.join(home, name)) for name in (".netrc", "_netrc")):
        return None
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def plain_transport(options: dict[str, Any]) -> Any | None:
    """A transport without the per-call environment lookups, or None (see
    ``plain_environment_verify``); takes the connection settings out of ``options``.

    azure-core's transport over httpx (``sync.adapters.httpx_transport``: requests is then never
    imported), else requests' with ``use_env_settings`` off when that one is unavailable."""
    verify = plain_environment_verify()
    if verify is None or options.get("proxies"):
        return None
    settings = {key: options.pop(key) for key in _TRANSPORT_KEYS if key in options}
    if settings.get("connection_verify", True) is True:
        settings["connection_verify"] = verify  # what requests' env merge would have chosen
    from sync.adapters.httpx_transport import transport

    ours = transport(**{k: v for k, v in settings.items() if k != "connection_data_block_size"})
    if ours is not None:
        return ours
    from azure.core.pipeline.transport import RequestsTransport

    return RequestsTransport(use_env_settings=False, **settings)


def import_transport() -> None:
    """Import what ``plain_transport`` will send through, ahead of the first client
    (``sync.adapters.sdk_imports``)."""
    if plain_environment_verify() is not None:
        from sync.adapters.httpx_transport import transport_class

        if transport_class() is not None:
            return
    from azure.core.pipeline.transport import RequestsTransport  # noqa: F401
