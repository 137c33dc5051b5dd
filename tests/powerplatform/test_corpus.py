"""Every real connector of the corpus: start from its `before` definition and apiProperties, write
its `after` definition, and check the platform then holds exactly `after` while every member of
apiProperties (OAuth settings, policies, script operations, ...) is unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sync.adapters.dataverse import DataverseTarget, compact_string, utf16_length
from sync.adapters.powerapps import PowerAppsTarget, oauth_settings
from sync.errors import TargetError
from sync.spec.canonical import canonical_bytes
from tests.conftest import CORPUS, corpus_dir
from tests.powerplatform.conftest import ENV, DictSecrets, new_guid
from tests.simulators.powerplatform import Simulator

_ROOT = CORPUS / "connectors"
CASES = sorted(p.name for p in _ROOT.iterdir() if p.is_dir()) if _ROOT.is_dir() else ["(no corpus)"]
SECRET = "corpus-client-secret-value"


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8-sig"))


def case_files(case: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    folder = corpus_dir("connectors", case)
    before = load(folder / "before" / "apiDefinition.swagger.json")
    after = load(folder / "after" / "apiDefinition.swagger.json")
    props = load(folder / "before" / "apiProperties.json")["properties"]
    return before, after, props


@pytest.mark.parametrize("case", CASES)
def test_powerapps_update_keeps_every_api_property(
    case: str, sim: Simulator, make_powerapps: Callable[..., PowerAppsTarget]
) -> None:
    before, after, props = case_files(case)
    cid = f"shared_{case.lower()}-5f0629412a7d1fe83e-5f6f049093c9b7a698"
    sim.seed_powerapps(
        ENV, cid, before, props, script="// script" if "scriptOperations" in props else None
    )
    oauth = bool(oauth_settings(props))
    params: dict[str, Any] = {"connector": cid}
    if oauth:
        params["oauthSecret"] = "kv:client-secret"
    target = make_powerapps(params, secrets=DictSecrets({"client-secret": SECRET}))

    current = target.read()
    assert canonical_bytes(current.definition) == canonical_bytes(before)
    assert target.write(after, current) == cid

    assert canonical_bytes(target.read_back()) == canonical_bytes(after)
    held = sim.powerapps_connector(ENV, cid)
    for key, value in props.items():
        if key == "stackOwner":
            continue
        assert held["members"].get(key) == value, f"{case}: apiProperties.{key} changed"
    for request in sim.requests_to("PATCH") + sim.requests_to("POST", r"/apis$"):
        assert "stackOwner" not in request.json["properties"]
    assert held["secrets"] == [SECRET] * len(oauth_settings(props))
    if "scriptOperations" in props:
        assert held["script"], f"{case}: custom code lost"


@pytest.mark.parametrize("case", CASES)
def test_dataverse_update_keeps_every_other_column(
    case: str, sim: Simulator, make_dataverse: Callable[..., DataverseTarget]
) -> None:
    before, after, props = case_files(case)
    cid = new_guid()
    columns = {
        "connectionparameters": json.dumps(props.get("connectionParameters") or {}),
        "iconbrandcolor": props.get("iconBrandColor"),
        "capabilities": None,
    }
    if "policyTemplateInstances" in props:
        columns["policytemplateinstances"] = json.dumps(props["policyTemplateInstances"])
    if "scriptOperations" in props:
        columns["scriptoperations"] = json.dumps(props["scriptOperations"])
    sim.seed_dataverse(cid, name=f"cr736_{case}", definition=before, columns=columns)
    seeded = sim.dataverse_row(cid)
    target = make_dataverse({"connector": cid})
    current = target.read()
    assert canonical_bytes(current.definition) == canonical_bytes(before)

    size = utf16_length(compact_string(after))
    if size > 500_000:
        with pytest.raises(TargetError, match=rf"{size:,} characters.*at most 500,000"):
            target.write(after, current)
        assert sim.requests_to("PATCH") == []
        return
    target.write(after, current)
    assert canonical_bytes(target.read_back()) == canonical_bytes(after)
    row = sim.dataverse_row(cid)
    for column, value in seeded.items():
        if column not in ("openapidefinition", "modifiedon", "versionnumber"):
            assert row[column] == value, f"{case}: column {column} changed"
