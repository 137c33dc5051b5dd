"""The ``credential init`` and ``doctor`` command lines, without the code that does the work.

Why a module of its own: ``python -m sync`` builds its whole parser for every command, and the
work behind these two (``sync.credential_cli``: token providers, httpx, the sync map loader) costs
~65 ms to import. Registering the sub-commands only needs argparse, so the heavy module is
imported inside the handlers, when one of the two commands actually runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from sync.adapters.urlguard import UrlGuard
    from sync.clouds import Cloud
    from sync.ports import SecretStore
    from sync.settings import Settings

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

Probe = Callable[[str, str], str]  # (api, target) -> what it read, e.g. "connector found, 12 ops"


@dataclass
class CliDeps:
    """What the commands need from outside; defaults suit a developer's machine."""

    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    probe: Probe | None = None
    secret_store: Callable[[Settings, Cloud], SecretStore] | None = None
    connection_verify: str | None = None
    transport_options: Mapping[str, Any] | None = None
    out: TextIO | None = None
    err: TextIO | None = None

    def stdout(self) -> TextIO:
        return self.out or sys.stdout

    def stderr(self) -> TextIO:
        return self.err or sys.stderr

    def url_guard(self) -> UrlGuard:
        """The URL guard of ``env``'s app settings: the commands sign in where a map's
        ``endpoints.authorityHost`` says, so it is vetted as the service would vet it."""
        from sync.adapters.urlguard import UrlGuard
        from sync.settings import Settings

        return UrlGuard(Settings.from_env(self.env).allow_private_hosts)

    def store(self, settings: Settings, cloud: Cloud) -> SecretStore:
        if self.secret_store is not None:
            return self.secret_store(settings, cloud)
        from sync.adapters.credentials import build_token_provider
        from sync.adapters.secrets_env import EnvSecretStore, secret_store_for
        from sync.adapters.urlguard import UrlGuard

        # A developer runs these commands: their az login (or the host's MI) reads the vault.
        vault_identity = build_token_provider(
            "cli-vault",
            {"default": {}},
            cloud=cloud,
            secrets=EnvSecretStore(self.env),
            connection_verify=self.connection_verify,
            transport_options=self.transport_options,
            guard=UrlGuard(settings.allow_private_hosts),
        )
        return secret_store_for(
            settings, self.env, vault_identity, connection_verify=self.connection_verify
        )


def register(subparsers: Any, *, deps: CliDeps | None = None) -> None:
    """Add ``credential init`` and ``doctor``; each sets ``func(args) -> int`` (the exit code)."""
    deps = deps or CliDeps()

    credential = subparsers.add_parser("credential", help="set up credentials from the sync map")
    actions = credential.add_subparsers(dest="credential_command", required=True)
    init = actions.add_parser("init", help="sign in a delegated credential with a device code")
    init.add_argument("--credential", required=True, help="name under 'credentials:'")
    init.add_argument("--config", required=True, help="the sync map (YAML/JSON)")
    init.add_argument("--device-code", action="store_true", help="use the device-code flow")
    init.add_argument("--scope", help="token scope (default: the cloud's PowerApps scope)")

    def run_init(args: argparse.Namespace) -> int:
        if not args.device_code:
            print("error: --device-code is the only sign-in flow; pass it", file=deps.stderr())
            return EXIT_USAGE
        from sync.credential_cli import credential_init, map_and_store

        loaded = map_and_store(args.config, deps, deps.stderr())
        if loaded is None:
            return EXIT_USAGE
        sync_map, store = loaded
        return credential_init(
            sync_map,
            args.credential,
            store=store,
            scope=args.scope,
            connection_verify=deps.connection_verify,
            guard=deps.url_guard(),
            out=deps.stdout(),
            err=deps.stderr(),
        )

    init.set_defaults(func=run_init)

    check = subparsers.add_parser("doctor", help="acquire a target's token and probe the target")
    check.add_argument("--config", required=True, help="the sync map (YAML/JSON)")
    check.add_argument("--api", required=True)
    check.add_argument("--target", required=True)

    def run_doctor(args: argparse.Namespace) -> int:
        from sync.credential_cli import doctor, map_and_store

        loaded = map_and_store(args.config, deps, deps.stdout())
        if loaded is None:
            return EXIT_USAGE
        sync_map, store = loaded
        return doctor(
            sync_map,
            args.api,
            args.target,
            secrets=store,
            probe=deps.probe,
            connection_verify=deps.connection_verify,
            transport_options=deps.transport_options,
            guard=deps.url_guard(),
            out=deps.stdout(),
        )

    check.set_defaults(func=run_doctor)
