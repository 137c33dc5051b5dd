"""A real sync on the local stack, end to end, in about half a minute.

1. Azurite (Table + Queue + Blob) and a sample "Contoso Invoicing" API on 127.0.0.1 serving v1.
2. A CI pipeline's CloudEvent (ConnectorSync.ApiDeployed) goes through the planner onto the
   Azurite queue; the worker drains it: OpenAPI 3 -> Swagger 2.0, overlay, validate, write the
   folder connector, record v1 in the ledger, write the run's Teams card.
3. A maker polishes the connector by hand (an x-ms-summary); the API is redeployed as v2 (one
   operation removed, one added, a new required field); the next event merges v2 with the maker's
   edit, flags the breaking changes, records v2 and writes the card.

Run it with ``bash scripts/demo.sh`` (installs first). Everything lives under ``.demo/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.azurite import start_azurite  # noqa: E402

DEMO = ROOT / ".demo"
EXAMPLES = ROOT / "examples" / "demo"


class SampleApi(BaseHTTPRequestHandler):
    """Serves the current OpenAPI document with an ETag, like an App Service after a deploy."""

    spec: bytes = b""

    def do_GET(self) -> None:
        if self.path != "/openapi.yaml":
            self.send_error(404)
            return
        etag = '"' + str(abs(hash(self.spec))) + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/yaml")
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(self.spec)))
        self.end_headers()
        self.wfile.write(self.spec)

    def log_message(self, *args: object) -> None:
        pass


def cli(env: dict[str, str], *args: str) -> str:
    print(f"\n$ python -m sync {' '.join(args)}")
    done = subprocess.run(
        [sys.executable, "-m", "sync", *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    out = done.stdout.strip()
    print(out)
    if done.returncode not in (0, 1):
        print(done.stderr, file=sys.stderr)
        raise SystemExit(f"command failed with exit code {done.returncode}")
    return out


def ci_event(version: str, commit: str) -> Path:
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/contoso/pipelines/invoicing",
        "type": "ConnectorSync.ApiDeployed",
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "subject": "contoso-invoicing",
        "data": {"api": "contoso-invoicing", "version": version, "commit": commit},
    }
    path = DEMO / f"event-{version}.json"
    path.write_text(json.dumps(event, indent=2))
    return path


def show_card(cards: Path) -> None:
    lines = cards.read_text().strip().splitlines()
    message = json.loads(lines[-1])
    card = message["attachments"][0]["content"]
    print(
        f"\nTeams card for the last run ({len(lines[-1])} bytes, Adaptive Card {card['version']}):"
    )

    def walk(node: object, depth: int = 0) -> None:
        if isinstance(node, dict):
            if node.get("type") == "TextBlock" and node.get("text"):
                print("   " + "  " * depth + str(node["text"])[:110])
            elif node.get("type") == "FactSet":
                for fact in node.get("facts", []):
                    print("   " + "  " * depth + f"{fact['title']}: {fact['value']}"[:110])
            for key in ("body", "items", "columns"):
                for child in node.get(key, []) or []:
                    walk(child, depth + (key == "items"))
        elif isinstance(node, list):
            for child in node:
                walk(child, depth)

    walk(card)
    print(f"   (full card JSON: {cards})")


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    (DEMO / "connectors").mkdir(parents=True)
    print("Starting Azurite and the sample API on 127.0.0.1 ...")
    azurite = start_azurite()
    server = ThreadingHTTPServer(("127.0.0.1", 0), SampleApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spec_url = f"http://127.0.0.1:{server.server_port}/openapi.yaml"
    try:
        sync_map = {
            "apis": {
                "contoso-invoicing": {
                    "spec": {"url": spec_url},
                    "on": [{"custom": "contoso-invoicing"}],
                    "overlay": str(EXAMPLES / "overlay.yaml"),
                    "breaking": "warn",
                    "targets": [{"name": "repo-folder", "folder": "connectors/contoso-invoicing"}],
                }
            },
            "notify": {"file": "cards.jsonl"},
        }
        (DEMO / "sync-map.yaml").write_text(json.dumps(sync_map, indent=2))
        env = {
            **os.environ,
            "SYNC_CONFIG": str(DEMO / "sync-map.yaml"),
            "SYNC_STORAGE_CONNECTION_STRING": azurite.connection_string,
            "SYNC_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
            "SYNC_SECRETS_FROM_ENV": "1",
            "SYNC_FETCH_BUDGET_SECONDS": "20",
        }
        cli(env, "config", "validate", str(DEMO / "sync-map.yaml"))

        print("\n== 1. The API is deployed as v1; the pipeline publishes a CloudEvent ==")
        SampleApi.spec = (EXAMPLES / "openapi-v1.yaml").read_bytes()
        cli(env, "plan", str(ci_event("1.0.0", "a1b2c3d")))
        cli(env, "worker", "--wait", "1")
        definition = DEMO / "connectors" / "contoso-invoicing" / "apiDefinition.swagger.json"
        doc = json.loads(definition.read_text())
        print(
            f"\nFolder connector: {definition.relative_to(ROOT)} "
            f"(swagger {doc['swagger']}, {len(doc['paths'])} paths, host {doc.get('host')})"
        )

        print("\n== 2. A maker improves the connector by hand ==")
        doc["paths"]["/invoices/{invoiceId}"]["get"]["summary"] = "Get invoice by ID"
        doc["paths"]["/invoices/{invoiceId}"]["get"]["x-ms-visibility"] = "important"
        definition.write_text(json.dumps(doc, indent=2))
        print("   set summary 'Get invoice by ID' and x-ms-visibility on GetInvoice")

        print("\n== 3. The API is redeployed as v2 (breaking: SendReminder removed) ==")
        SampleApi.spec = (EXAMPLES / "openapi-v2.yaml").read_bytes()
        cli(env, "plan", str(ci_event("2.0.0", "e4f5a6b")))
        cli(env, "worker", "--wait", "1")
        doc = json.loads(definition.read_text())
        kept = doc["paths"]["/invoices/{invoiceId}"]["get"]
        print(
            f"\nMaker's edit kept by the three-way merge: summary={kept.get('summary')!r}, "
            f"x-ms-visibility={kept.get('x-ms-visibility')!r}"
        )
        print(
            f"Operations now: {sorted(op['operationId'] for p in doc['paths'].values() for op in p.values() if isinstance(op, dict) and 'operationId' in op)}"
        )

        print("\n== 4. The ledger ==")
        cli(env, "history", "--api", "contoso-invoicing")
        show_card(DEMO / "cards.jsonl")
        print(
            "\nDemo finished: the folder connector, the ledger (Azurite) and the cards changed as shown."
        )
        return 0
    finally:
        server.shutdown()
        azurite.stop()


if __name__ == "__main__":
    raise SystemExit(main())
