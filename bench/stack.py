"""The local stack the benchmark runs against: Azurite, a spec server, the Power Platform
simulator and a local managed-identity endpoint, all on free loopback ports.

Why reuse the test helpers: the benchmark must measure the same wire contract the tests prove
(the simulator is checked against the real paconn 0.0.21), not a friendlier stand-in.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from bench.corpus import CORPUS, largest_connector, load_json
from bench.remote import RemoteSimulator, RemoteSpecServer
from bench.remote import start as start_remote
from tests.support.azurite import Azurite, start_azurite
from tests.support.local_identity import LocalIdentity, start_local_identity

ENV = "Default-11111111-2222-3333-4444-555555555555"
USER_OID = "0c1e6f0a-3b7d-4c55-9a4e-2f1e8b7a9c01"
FANOUT = 20


@dataclass
class Case:
    """Before/after definitions and the connector properties of one corpus connector."""

    name: str
    before: dict[str, Any]
    after: dict[str, Any]
    before_bytes: bytes
    after_bytes: bytes
    properties: dict[str, Any]

    @classmethod
    def load(cls, name: str) -> Case:
        folder = CORPUS / "connectors" / name
        props = load_json(folder / "before" / "apiProperties.json")["properties"]
        props = {k: v for k, v in props.items() if k != "stackOwner"}  # the RP refuses it
        before_raw = (folder / "before" / "apiDefinition.swagger.json").read_bytes()
        after_raw = (folder / "after" / "apiDefinition.swagger.json").read_bytes()
        return cls(
            name=name,
            before=json.loads(before_raw.decode("utf-8-sig")),
            after=json.loads(after_raw.decode("utf-8-sig")),
            before_bytes=before_raw,
            after_bytes=after_raw,
            properties=props,
        )


def user_token(aud: str = "https://service.powerapps.com/") -> str:
    """What `paconn login` would leave behind (reference 1.8); the simulator reads claims only."""
    claims = {"aud": aud, "oid": USER_OID, "idtyp": "user", "exp": int(time.time()) + 36000}
    return jwt.encode(claims, "local-bench-key-not-a-secret-0123456789", algorithm="HS256")


@dataclass
class Stack:
    """Every local server plus the sync map and environment the CLI processes use."""

    azurite: Azurite
    server: RemoteSpecServer
    sim: RemoteSimulator
    identity: LocalIdentity
    root: Path
    case: Case
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    flips: dict[str, int] = field(default_factory=dict)

    # --- names ---------------------------------------------------------------------------------
    def connector_id(self, api: str, index: int = 0) -> str:
        return f"shared_bench-{api}-{index:02d}-{self.suffix}"

    @property
    def map_path(self) -> Path:
        return self.root / "sync-map.json"

    def env(self) -> dict[str, str]:
        """App settings of a local Function App / CLI pointed at this stack."""
        return {
            "SYNC_CONFIG": str(self.map_path),
            "SYNC_STORAGE_CONNECTION_STRING": self.azurite.connection_string,
            "SYNC_LEDGER_TABLE": f"bench{self.suffix}",
            "SYNC_LEDGER_CONTAINER": f"bench-{self.suffix}",
            "SYNC_WORK_QUEUE": f"bench-{self.suffix}",
            "SYNC_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
            "SYNC_NOTIFY_FILE": str(self.root / "cards.jsonl"),
            "SYNC_LOG_LEVEL": "WARNING",
            **self.identity.managed_identity_env(),
        }

    # --- content -------------------------------------------------------------------------------
    def write_map(self) -> None:
        def api(name: str, targets: int) -> dict[str, Any]:
            return {
                "spec": {"url": self.server.url(f"/{name}.json")},
                "on": [{"custom": name}],
                "breaking": "allow",
                "targets": [
                    {
                        "name": f"t{i:02d}",
                        "powerapps": {
                            "environment": ENV,
                            "credential": "func",
                            "connector": self.connector_id(name, i),
                            "oauthSecret": "none",
                        },
                    }
                    for i in range(targets)
                ],
            }

        doc = {
            "endpoints": {"powerApps": self.sim.url},
            "credentials": {"func": {"managedIdentity": {}}},
            "apis": {
                "cli": api("cli", 1),
                "warm": api("warm", 1),
                "fan": api("fan", FANOUT),
                "first": api("first", 1),
            },
        }
        self.map_path.write_text(json.dumps(doc, indent=2))

    def seed(self) -> None:
        """Each connector and each spec starts at 'before'; ``flip`` serves the other one."""
        for api, count in (("cli", 1), ("warm", 1), ("fan", FANOUT), ("first", 1)):
            for i in range(count):
                self.sim.seed_powerapps(
                    ENV, self.connector_id(api, i), self.case.before, self.case.properties
                )
            self.flips[api] = 0
            self.server.set_spec(f"/{api}.json", self.case.before_bytes, "application/json")
        self.sim.seed_powerapps(
            ENV, self.connector_id("paconn"), self.case.before, self.case.properties
        )

    def next_flip(self, api: str) -> str:
        """Which definition the next ``flip`` of ``api`` serves: "after" (odd flips) or "before"."""
        return "after" if (self.flips[api] + 1) % 2 else "before"

    def flip(self, api: str) -> str:
        """Serve a definition the service has never seen, so the next sync of ``api`` is a real
        update (a PATCH) and no content-addressed cache (prepared spec, validation verdicts,
        merge bases) can answer for it: before/after alternate, and each one carries a new
        ``info.x-bench-build``, as every real deployment brings new content. Returns which of
        the two it serves (the case's definitions differ in size: compare like with like)."""
        to = self.next_flip(api)
        self.flips[api] += 1
        doc = self.case.after if to == "after" else self.case.before
        build = f"{self.suffix}-{api}-{self.flips[api]}"
        body = {**doc, "info": {**(doc.get("info") or {}), "x-bench-build": build}}
        self.server.set_spec(
            f"/{api}.json", json.dumps(body, indent=2).encode(), "application/json"
        )
        return to

    def stop(self) -> None:
        for stop in (self.server.stop, self.sim.stop, self.identity.stop, self.azurite.stop):
            with contextlib.suppress(Exception):  # best effort: the next server still stops
                stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start(case_name: str | None = None) -> Stack:
    """Every server, the map and the seeded connectors; a server that fails to start stops the
    ones started before it (an Azurite left behind would hold its ports for the next run)."""
    case = Case.load(case_name or largest_connector())
    started: list[Any] = []
    try:
        azurite = start_azurite()
        started.append(azurite.stop)
        sim, server = start_remote()  # their own process: remote services in production
        started.append(sim.stop)
        identity = start_local_identity()
        started.append(identity.stop)
        root = Path(tempfile.mkdtemp(prefix="connector-sync-bench-"))
        started.append(lambda: shutil.rmtree(root, ignore_errors=True))
        stack = Stack(azurite, server, sim, identity, root, case)
        stack.write_map()
        stack.seed()
    except BaseException:
        for stop in reversed(started):
            with contextlib.suppress(Exception):  # best effort: the next one still stops
                stop()
        raise
    return stack
