"""``credential init --device-code`` and ``doctor`` against the local authority + vault (real MSAL,
real azure-identity, real SecretClient)."""

from __future__ import annotations

import argparse
import io
import json
import logging
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from sync.credential_cli import CliDeps, register
from sync.errors import TargetError
from tests.credentials.conftest import store_for
from tests.support.local_identity import LocalIdentity
from tests.support.local_vault import LocalVault

TENANT = "44444444-0000-0000-0000-00000000000d"


@pytest.fixture
def setup(identity: LocalIdentity, vault: LocalVault, tmp_path: Path):
    user_app = identity.add_app(TENANT, client_id=str(uuid.uuid4()), public_client=True)
    mi = identity.identities[None]
    fed_app = identity.add_app(
        TENANT, client_id=str(uuid.uuid4()), federated_subjects={mi.object_id}
    )
    sp_app = identity.add_app(TENANT, client_id=str(uuid.uuid4()), secret="right")
    sync_map = {
        "cloud": "public",
        "endpoints": {"authorityHost": identity.authority},
        "credentials": {
            "pp-user": {
                "delegated": {
                    "tenant": TENANT,
                    "clientId": user_app.client_id,
                    "refreshToken": "kv:pp-user-refresh",
                }
            },
            "pp-app": {"federated": {"tenant": TENANT, "clientId": fed_app.client_id}},
            "pp-sp": {
                "servicePrincipal": {
                    "tenant": TENANT,
                    "clientId": sp_app.client_id,
                    "secret": "kv:sp-secret",
                }
            },
        },
        "apis": {
            "invoicing": {
                "spec": {"url": "https://invoicing.example.com/swagger.json"},
                "targets": [
                    {
                        "name": "maker",
                        "powerapps": {"environment": "Default-" + TENANT, "credential": "pp-user"},
                    },
                    {
                        "name": "dv",
                        "dataverse": {
                            "org": "https://contoso.crm.dynamics.com",
                            "credential": "pp-app",
                        },
                    },
                    {
                        "name": "dv-sp",
                        "dataverse": {
                            "org": "https://contoso.crm.dynamics.com",
                            "credential": "pp-sp",
                        },
                    },
                    {"name": "files", "folder": "out/invoicing"},
                ],
            }
        },
    }
    path = tmp_path / "sync-map.json"
    path.write_text(json.dumps(sync_map))
    vault.put("sp-secret", "wrong")

    def store(settings, cloud):
        return store_for(identity, vault, cloud)

    return path, user_app, store


def run(argv: list[str], deps: CliDeps) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    deps.out, deps.err = out, err
    parser = argparse.ArgumentParser(prog="sync")
    register(parser.add_subparsers(dest="command", required=True), deps=deps)
    args = parser.parse_args(argv)
    return args.func(args), out.getvalue(), err.getvalue()


def deps_for(identity: LocalIdentity, store, probe=None) -> CliDeps:
    return CliDeps(
        env={"SYNC_ALLOW_PRIVATE_HOSTS": "127.0.0.1"},  # the local authority is on loopback
        probe=probe,
        secret_store=store,
        connection_verify=identity.ca_pem_path,
        transport_options={"retry_total": 0},
    )


def test_credential_init_stores_refresh_token_and_prints_only_its_name(
    identity: LocalIdentity, vault: LocalVault, setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path, user_app, store = setup
    code, out, err = run(
        ["credential", "init", "--credential", "pp-user", "--config", str(path), "--device-code"],
        deps_for(identity, store),
    )
    assert code == 0, err
    stored = vault.latest("pp-user-refresh")
    assert stored in identity.refresh_tokens
    assert identity.refresh_tokens[stored].client_id == user_app.client_id
    assert "'pp-user-refresh'" in out
    assert "enter the code" in err
    assert stored not in out + err + caplog.text
    (device,) = [r for r in identity.requests if r.path.endswith("/devicecode")]
    assert "https://service.powerapps.com/.default" in device.form["scope"]
    # and the stored token works for the delegated credential afterwards
    code, out, _ = run(
        ["doctor", "--config", str(path), "--api", "invoicing", "--target", "maker"],
        deps_for(identity, store),
    )
    assert code == 0, out
    assert "idtyp: user" in out
    assert "aud: https://service.powerapps.com" in out


def test_credential_init_refuses_non_delegated_and_missing_flag(
    identity: LocalIdentity, setup
) -> None:
    path, _app, store = setup
    deps = deps_for(identity, store)
    code, _, err = run(
        ["credential", "init", "--credential", "pp-app", "--config", str(path), "--device-code"],
        deps,
    )
    assert code == 2 and "federated" in err
    code, _, err = run(
        ["credential", "init", "--credential", "nope", "--config", str(path), "--device-code"], deps
    )
    assert code == 2 and "'nope'" in err
    code, _, err = run(
        ["credential", "init", "--credential", "pp-user", "--config", str(path)], deps
    )
    assert code == 2 and "--device-code" in err
    code, _, err = run(
        [
            "credential",
            "init",
            "--credential",
            "pp-user",
            "--config",
            str(path / "missing"),
            "--device-code",
        ],
        deps,
    )
    assert code == 2 and "cannot read sync map" in err


def test_credential_init_with_read_only_store_is_usage_error(
    identity: LocalIdentity, setup
) -> None:
    path, _app, _store = setup
    deps = CliDeps(env={"SYNC_SECRETS_FROM_ENV": "1"}, connection_verify=identity.ca_pem_path)
    code, _, err = run(
        ["credential", "init", "--credential", "pp-user", "--config", str(path), "--device-code"],
        deps,
    )
    assert code == 2 and "read-only" in err


def test_credential_init_with_a_tenant_the_authority_refuses_is_one_line(
    identity: LocalIdentity, vault: LocalVault, setup
) -> None:
    """MSAL raises ValueError when the authority has no configuration for the tenant (a typo in
    the map); it escaped the command, and ``python -m sync`` showed a traceback."""
    path, _app, store = setup
    sync_map = json.loads(path.read_text())
    bad_tenant = "contoso.onmicrosoft.com/typo"
    sync_map["credentials"]["pp-user"]["delegated"]["tenant"] = bad_tenant
    path.write_text(json.dumps(sync_map))
    code, out, err = run(
        ["credential", "init", "--credential", "pp-user", "--config", str(path), "--device-code"],
        deps_for(identity, store),
    )
    assert code == 1
    assert out == ""
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert bad_tenant in err and "'pp-user'" in err
    assert vault.latest("pp-user-refresh") is None


def test_doctor_federated_shows_claims_and_calls_probe(identity: LocalIdentity, setup) -> None:
    path, _app, store = setup
    seen: list[tuple[str, str]] = []

    def probe(api: str, target: str) -> str:
        seen.append((api, target))
        return "connector 3f2a found"

    code, out, _ = run(
        ["doctor", "--config", str(path), "--api", "invoicing", "--target", "dv"],
        deps_for(identity, store, probe),
    )
    assert code == 0, out
    assert seen == [("invoicing", "dv")]
    assert "aud: https://contoso.crm.dynamics.com" in out
    assert f"oid: {identity.identities[None].object_id}" not in out  # the app's oid, not the MI's
    assert "idtyp: app" in out
    assert "probe: ok - connector 3f2a found" in out
    grant = identity.token_requests("client_credentials")[-1]
    assert grant.form["client_assertion"] not in out


def test_doctor_probe_refusal_exits_1(identity: LocalIdentity, setup) -> None:
    path, _app, store = setup

    def probe(api: str, target: str) -> str:
        raise TargetError("HTTP 403 Forbidden", where=f"{api}/{target}", status=403)

    code, out, _ = run(
        ["doctor", "--config", str(path), "--api", "invoicing", "--target", "dv"],
        deps_for(identity, store, probe),
    )
    assert code == 1
    assert "probe: REFUSED" in out and "403" in out


def test_doctor_refused_credential_exits_1_without_the_secret(
    identity: LocalIdentity, vault: LocalVault, setup
) -> None:
    path, _app, store = setup
    code, out, _ = run(
        ["doctor", "--config", str(path), "--api", "invoicing", "--target", "dv-sp"],
        deps_for(identity, store),
    )
    assert code == 1
    assert "REFUSED" in out and "AADSTS7000215" in out
    assert "pp-sp" in out


def test_doctor_usage_errors_exit_2(identity: LocalIdentity, setup, tmp_path: Path) -> None:
    path, _app, store = setup
    deps = deps_for(identity, store)
    assert run(["doctor", "--config", str(path), "--api", "nope", "--target", "dv"], deps)[0] == 2
    assert (
        run(["doctor", "--config", str(path), "--api", "invoicing", "--target", "nope"], deps)[0]
        == 2
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"apis": {}}')
    code, out, _ = run(["doctor", "--config", str(bad), "--api", "x", "--target", "y"], deps)
    assert code == 2 and "apis" in out


def test_doctor_folder_target_needs_no_token(identity: LocalIdentity, setup) -> None:
    path, _app, store = setup
    code, out, _ = run(
        ["doctor", "--config", str(path), "--api", "invoicing", "--target", "files"],
        deps_for(identity, store),
    )
    assert code == 0
    assert "needs no token" in out and "probe: skipped" in out
    assert identity.token_requests() == []


def test_the_cli_vets_the_authority_with_its_environment(identity: LocalIdentity, setup) -> None:
    """``doctor`` and ``credential init`` sign in where the map says: refused on loopback unless
    SYNC_ALLOW_PRIVATE_HOSTS lists it (deps_for sets it, as a developer would)."""
    path, _app, store = setup
    closed = replace(deps_for(identity, store), env={})
    code, out, _ = run(
        ["doctor", "--config", str(path), "--api", "invoicing", "--target", "dv-sp"], closed
    )
    assert code == 1
    assert "token: REFUSED" in out and "endpoints.authorityHost" in out and "loopback" in out
    code, _, err = run(
        ["credential", "init", "--credential", "pp-user", "--config", str(path), "--device-code"],
        closed,
    )
    assert code == 2
    assert err.startswith("error: ") and "endpoints.authorityHost" in err and "loopback" in err
    assert identity.token_requests() == []
    assert not [r for r in identity.requests if r.path.endswith("/devicecode")]

    code, out, _ = run(
        ["doctor", "--config", str(path), "--api", "invoicing", "--target", "dv-sp"],
        deps_for(identity, store),
    )
    assert "endpoints.authorityHost" not in out
    assert len(identity.token_requests()) == 1  # allow-listed: the request went out
