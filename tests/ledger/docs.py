"""Test documents: small realistic ones and deliberately incompressible big ones."""

from __future__ import annotations

import base64
import random
from typing import Any


def small_spec(title: str = "Invoicing", version: str = "1.0") -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": title, "version": version},
        "host": "contoso-invoicing.azurewebsites.net",
        "paths": {
            "/invoices": {
                "get": {"operationId": "ListInvoices", "responses": {"200": {"description": "OK"}}}
            }
        },
    }


def noisy_spec(raw_bytes: int, seed: int) -> dict[str, Any]:
    """A spec whose descriptions are random base64: zlib cannot shrink it much, forcing chunks."""
    rng = random.Random(seed)
    paths: dict[str, Any] = {}
    per_path = 4096
    for i in range(max(1, raw_bytes // per_path)):
        noise = base64.b64encode(rng.randbytes(per_path * 3 // 4)).decode()
        paths[f"/items{i}"] = {
            "get": {
                "operationId": f"GetItem{i}",
                "description": noise,
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {"swagger": "2.0", "info": {"title": f"Noisy {seed}", "version": "1"}, "paths": paths}
