"""``python -m sync doctor``: one command tells whether the tenant accepts the credential."""

from __future__ import annotations

import json

import pytest

from sync.cli import main
from tests.pipeline.conftest import ENV

pytestmark = pytest.mark.azurite


def write_map(tmp_path, sim):
    path = tmp_path / "map.json"
    path.write_text(
        json.dumps(
            {
                "endpoints": {"powerApps": sim.url},
                "credentials": {"func": {"managedIdentity": {}}},
                "apis": {
                    "inv": {
                        "spec": {"url": "https://inv.example/openapi.json"},
                        "targets": [
                            {
                                "name": "prod",
                                "powerapps": {
                                    "environment": ENV,
                                    "credential": "func",
                                    "connector": "shared_inv-5f",
                                    "oauthSecret": "none",
                                },
                            }
                        ],
                    }
                },
            }
        )
    )
    return path


def test_doctor_shows_the_token_claims_and_probes_read_only(
    tmp_path,
    sim,
    identity,
    monkeypatch,
    capsys,
):
    monkeypatch.setenv("SYNC_ALLOW_PRIVATE_HOSTS", "127.0.0.1")
    monkeypatch.setenv("SYNC_SECRETS_FROM_ENV", "1")
    definition = {
        "swagger": "2.0",
        "info": {"title": "Inv", "version": "1"},
        "host": "inv.example",
        "paths": {"/a": {"get": {"operationId": "A", "responses": {"200": {"description": "ok"}}}}},
    }
    sim.seed_powerapps(ENV, "shared_inv-5f", definition, {"properties": {}})
    code = main(
        ["doctor", "--config", str(write_map(tmp_path, sim)), "--api", "inv", "--target", "prod"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "service.powerapps.com" in out  # the token's aud
    assert "idtyp" in out
    assert "validateApiSwagger accepted" in out
    assert not sim.requests_to("PATCH") and not sim.requests_to("POST", r"/apis$")
    token_lines = [line for line in out.splitlines() if line.count(".") >= 2 and len(line) > 200]
    assert token_lines == []  # the token itself is never printed


def test_doctor_says_refused_when_the_platform_refuses_app_tokens(
    tmp_path,
    sim,
    identity,
    monkeypatch,
    capsys,
):
    monkeypatch.setenv("SYNC_ALLOW_PRIVATE_HOSTS", "127.0.0.1")
    monkeypatch.setenv("SYNC_SECRETS_FROM_ENV", "1")
    sim.faults.refuse_app_tokens = True
    code = main(
        ["doctor", "--config", str(write_map(tmp_path, sim)), "--api", "inv", "--target", "prod"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "REFUSED" in out
    assert "InvalidAuthenticationToken" in out
