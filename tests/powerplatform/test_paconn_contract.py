"""The simulator proven against a client no one here wrote: the real paconn 0.0.21.

paconn lives in its own venv (it pins the legacy azure-storage-blob 2.x): /work/main/.venv-paconn
when present, else one made once in ~/.cache/connector-sync. A fake token file under a temporary
HOME replaces `paconn login` (reference 1.8)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, corpus_dir
from tests.powerplatform.conftest import ENV, USER_OID, mint
from tests.powerplatform.samples import DEFINITION, OAUTH_PROPERTIES, changed
from tests.simulators.powerplatform import Simulator

pytestmark = [pytest.mark.contract, pytest.mark.slow]
PACONN_VERSION = "0.0.21"
CID = "shared_contoso-20invoicing-5f0629412a7d1fe83e-5f6f049093c9b7a698"


@pytest.fixture(scope="session")
def paconn() -> Path:
    existing = ROOT / ".venv-paconn" / "bin" / "paconn"
    if existing.exists():
        return existing
    venv = (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "connector-sync"
        / f"paconn-{PACONN_VERSION}"
    )
    binary = venv / "bin" / "paconn"
    if not binary.exists():
        made = subprocess.run(
            ["python3", "-m", "venv", str(venv)], capture_output=True, text=True, check=False
        )
        if made.returncode == 0:
            made = subprocess.run(
                [str(venv / "bin" / "pip"), "install", "-q", f"paconn=={PACONN_VERSION}"],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        if made.returncode != 0 or not binary.exists():
            pytest.skip(
                f"could not install paconn=={PACONN_VERSION} into {venv}: {made.stderr[-300:]}"
            )
    return binary


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    (folder / ".paconn").mkdir(parents=True)
    token = {
        "token_type": "Bearer",
        "access_token": mint("https://service.powerapps.com/", idtyp=None),
        "expires_on": time.time() + 36000,
        "oid": USER_OID,
    }
    path = folder / ".paconn" / "accessTokens.json"
    path.write_text(json.dumps(token))
    path.chmod(0o600)
    return folder


def run(paconn: Path, home: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", ""),
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
    }
    return subprocess.run(
        [str(paconn), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def download(
    paconn: Path, home: Path, cwd: Path, sim: Simulator, cid: str = CID
) -> subprocess.CompletedProcess[str]:
    """``paconn download`` of connector ``cid`` from the simulator into ``cwd/out``."""
    return run(
        paconn, home, cwd, "download", "-c", cid, "-e", ENV, "--pau", sim.url, "-d", "out", "-w"
    )


def update_args(
    sim: Simulator, properties: str, definition: str, cid: str = CID
) -> tuple[str, ...]:
    """``paconn update``'s arguments for connector ``cid`` in the simulator, with these files."""
    return ("update", "-c", cid, "-e", ENV, "--pau", sim.url, "-p", properties, "-d", definition)


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8-sig"))


def connector(case: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    if case == "sample":
        return DEFINITION, changed(DEFINITION), OAUTH_PROPERTIES
    folder = corpus_dir("connectors", case)
    return (
        load(folder / "before" / "apiDefinition.swagger.json"),
        load(folder / "after" / "apiDefinition.swagger.json"),
        load(folder / "before" / "apiProperties.json")["properties"],
    )


@pytest.mark.parametrize("case", ["sample", "GitLab", "Planner"])
def test_paconn_download_and_update_against_the_simulator(
    case: str, sim: Simulator, paconn: Path, home: Path, tmp_path: Path
) -> None:
    before, after, props = connector(case)
    sim.seed_powerapps(ENV, CID, before, props)
    work = tmp_path / "work"
    work.mkdir()

    done = download(paconn, home, work, sim)
    assert done.returncode == 0, done.stderr
    out = work / "out"
    assert load(out / "apiDefinition.swagger.json") == before
    downloaded = load(out / "apiProperties.json")["properties"]
    assert downloaded == {k: v for k, v in props.items() if k in downloaded}
    assert all("authorization" not in r.headers for r in sim.requests_to("GET", r"^/blob/"))
    assert sim.requests_to("GET", r"/apis/")[0].headers["authorization"].startswith("Bearer ")

    api_def = out / "apiDefinition.swagger.json"
    api_def.write_text(json.dumps(after, indent=2))
    update = update_args(sim, str(out / "apiProperties.json"), str(api_def))

    if "stackOwner" in downloaded:  # paconn sends it back; the RP refuses it (issue #614)
        refused = run(paconn, home, work, *update)
        assert refused.returncode == 1
        assert (
            "Could not find member 'stackOwner' on object of type 'ApiPropertiesDefinition'"
            in refused.stderr
        )
        assert "stackOwner" in sim.requests_to("PATCH")[-1].json["properties"]
        assert sim.powerapps_connector(ENV, CID)["definition"] == before
        stripped = {"properties": {k: v for k, v in downloaded.items() if k != "stackOwner"}}
        (out / "apiProperties.json").write_text(json.dumps(stripped, indent=2))

    sim.clear_requests()
    done = run(paconn, home, work, *update)
    assert done.returncode == 0, done.stderr
    assert "updated successfully" in done.stdout + done.stderr

    validate = sim.requests_to("POST", r"/validateApiSwagger$")
    assert [r.path for r in validate] == [
        f"/providers/Microsoft.PowerApps/objectIds/{USER_OID}/validateApiSwagger"
    ]
    patch = sim.requests_to("PATCH")
    assert len(patch) == 1
    sent = patch[0].json["properties"]
    assert sent["openApiDefinition"] == load(api_def)
    assert sent["environment"] == {"name": ENV}
    assert sent["scriptDefinitionUrl"] == ""  # paconn clears custom code on every update
    assert patch[0].headers["x-ms-origin"] == "paconn-cli"
    held = sim.powerapps_connector(ENV, CID)
    assert held["definition"] == after
    for key, value in downloaded.items():
        if key != "stackOwner":
            assert held["members"][key] == value


def test_paconn_create_gets_an_id_the_simulator_serves(
    sim: Simulator, paconn: Path, home: Path, tmp_path: Path
) -> None:
    sim.environments.add(ENV)
    (tmp_path / "apiDefinition.swagger.json").write_text(json.dumps(DEFINITION))
    (tmp_path / "apiProperties.json").write_text(
        json.dumps(
            {
                "properties": {
                    "connectionParameters": {},
                    "iconBrandColor": "#da3b01",
                    "capabilities": [],
                }
            }
        )
    )
    done = run(
        paconn,
        home,
        tmp_path,
        "create",
        "-e",
        ENV,
        "--pau",
        sim.url,
        "-p",
        "apiProperties.json",
        "-d",
        "apiDefinition.swagger.json",
        "-w",
    )
    assert done.returncode == 0, done.stderr
    settings = load(tmp_path / "settings.json")
    assert settings["connectorId"] in sim.powerapps_ids(ENV)
    assert (
        sim.powerapps_connector(ENV, settings["connectorId"])["displayName"] == "Contoso Invoicing"
    )


def test_paconn_without_token_is_refused_by_the_simulator(
    sim: Simulator, paconn: Path, home: Path, tmp_path: Path
) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, {})
    token_file = home / ".paconn" / "accessTokens.json"
    token = json.loads(token_file.read_text())
    token["access_token"] = mint(
        "https://management.core.windows.net/", idtyp=None
    )  # pre-0.0.21 audience
    token_file.write_text(json.dumps(token))
    done = download(paconn, home, tmp_path, sim)
    assert done.returncode == 1
    assert "InvalidAuthenticationToken" in done.stderr
    assert "wrong audience or resource" in done.stderr
