"""PowerAppsTarget against the strict simulator: update keeps the connector's own members, OAuth
secret re-injection, idempotent create, read-back, and error messages."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from sync.adapters.powerapps import PowerAppsTarget, service_url
from sync.errors import ConfigError, SecretError, TargetError, TransientError
from sync.spec.canonical import canonical_bytes
from tests.powerplatform.conftest import ENV, USER_OID, DictSecrets, FakeTokens
from tests.powerplatform.samples import APIKEY_PROPERTIES, DEFINITION, OAUTH_PROPERTIES, changed
from tests.simulators.powerplatform import Simulator

CID = "shared_contoso-20invoicing-5f0629412a7d1fe83e-5f6f049093c9b7a698"
Make = Callable[..., PowerAppsTarget]


def seed_oauth(
    sim: Simulator, *, script: str | None = "public class Script : ScriptBase {}"
) -> None:
    props = copy.deepcopy(OAUTH_PROPERTIES)
    props["connectionParameters"]["token"]["oAuthSettings"]["clientSecret"] = "old-secret"
    sim.seed_powerapps(
        ENV, CID, DEFINITION, props, display_name="Invoicing (portal name)", script=script
    )


def test_update_keeps_connector_members_and_reinjects_secret(
    sim: Simulator, make_powerapps: Make
) -> None:
    seed_oauth(sim)
    secrets = DictSecrets({"invoicing-client-secret": "s3cr3t-from-kv"})
    target = make_powerapps(
        {"connector": CID, "oauthSecret": "kv:invoicing-client-secret"}, secrets=secrets
    )

    current = target.read()
    assert current.connector_id == CID
    assert current.definition == DEFINITION
    new = changed(DEFINITION)
    assert target.write(new, current) == CID

    held = sim.powerapps_connector(ENV, CID)
    expected = {k: v for k, v in OAUTH_PROPERTIES.items() if k != "stackOwner"}
    assert held["members"] == expected
    assert held["secrets"] == ["s3cr3t-from-kv"]
    assert held["script"] is not None, "custom code must survive an update"
    assert held["displayName"] == "Invoicing (portal name)"
    assert held["definition"] == new
    assert held["backendService"] == {
        "serviceUrl": "https://contoso-invoicing.azurewebsites.net/api"
    }
    assert secrets.asked == ["invoicing-client-secret"]

    patch = sim.requests_to("PATCH", r"/apis/")[0]
    sent = patch.json["properties"]
    assert "stackOwner" not in sent
    assert sent.get("scriptDefinitionUrl") != ""
    assert "swagger" not in sent and "apiDefinitions" not in sent
    assert patch.raw_query.startswith("api-version=2016-11-01&%24filter=environment%20eq%20%27")
    validate = sim.requests_to("POST", r"/validateApiSwagger$")
    assert [r.path for r in validate] == [
        f"/providers/Microsoft.PowerApps/objectIds/{USER_OID}/validateApiSwagger"
    ]
    assert validate[0].json == new
    assert target.read_back() == new


def test_oauth_connector_without_oauth_secret_is_refused_before_any_write(
    sim: Simulator, make_powerapps: Make
) -> None:
    seed_oauth(sim)
    target = make_powerapps({"connector": CID})
    with pytest.raises(TargetError, match=r"uses OAuth.*oauthSecret.*'none'"):
        target.write(changed(DEFINITION), target.read())
    assert sim.requests_to("PATCH") == []
    assert sim.powerapps_connector(ENV, CID)["secrets"] == ["old-secret"]


def test_oauth_secret_none_sends_no_secret(sim: Simulator, make_powerapps: Make) -> None:
    seed_oauth(sim)
    target = make_powerapps({"connector": CID, "oauthSecret": "none"})
    target.write(changed(DEFINITION), target.read())
    token = sim.requests_to("PATCH")[0].json["properties"]["connectionParameters"]["token"]
    assert "clientSecret" not in token["oAuthSettings"]


def test_oauth_in_connection_parameter_sets_gets_the_secret(
    sim: Simulator, make_powerapps: Make
) -> None:
    oauth = copy.deepcopy(OAUTH_PROPERTIES["connectionParameters"]["token"])
    props = {
        "connectionParameterSets": {
            "uiDefinition": {"displayName": "Auth", "description": "Pick one"},
            "values": [
                {
                    "name": "oauth",
                    "uiDefinition": {"displayName": "OAuth", "description": "d"},
                    "parameters": {"token": oauth},
                },
                {
                    "name": "key",
                    "uiDefinition": {"displayName": "Key", "description": "d"},
                    "parameters": copy.deepcopy(APIKEY_PROPERTIES["connectionParameters"]),
                },
            ],
        },
        "iconBrandColor": "#da3b01",
        "capabilities": [],
    }
    sim.seed_powerapps(ENV, CID, DEFINITION, props)
    target = make_powerapps(
        {"connector": CID, "oauthSecret": "kv:s"}, secrets=DictSecrets({"s": "from-kv"})
    )
    target.write(DEFINITION, target.read())
    held = sim.powerapps_connector(ENV, CID)
    assert held["secrets"] == ["from-kv"]
    assert held["members"]["connectionParameterSets"] == props["connectionParameterSets"]


def test_missing_secret_names_the_secret_and_writes_nothing(
    sim: Simulator, make_powerapps: Make
) -> None:
    seed_oauth(sim)
    target = make_powerapps({"connector": CID, "oauthSecret": "kv:absent"})
    with pytest.raises(SecretError, match="absent"):
        target.write(DEFINITION, target.read())
    assert sim.requests_to("PATCH") == []


def test_bad_oauth_secret_reference_is_a_config_error(sim: Simulator, make_powerapps: Make) -> None:
    seed_oauth(sim)
    target = make_powerapps({"connector": CID, "oauthSecret": "plain-text-secret"})
    with pytest.raises(ConfigError) as caught:
        target.write(DEFINITION, target.read())
    assert "plain-text-secret" not in str(caught.value)  # it may be a pasted secret
    assert caught.value.path and caught.value.path.endswith("oauthSecret")


def test_apikey_connector_needs_no_oauth_secret(sim: Simulator, make_powerapps: Make) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": CID})
    target.write(changed(DEFINITION), target.read())
    assert sim.powerapps_connector(ENV, CID)["members"] == APIKEY_PROPERTIES


def test_no_script_means_no_script_member(sim: Simulator, make_powerapps: Make) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": CID})
    target.write(DEFINITION, target.read())
    assert "scriptDefinitionUrl" not in sim.requests_to("PATCH")[0].json["properties"]


def test_display_name_only_sent_when_configured(sim: Simulator, make_powerapps: Make) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES, display_name="Portal name")
    make_powerapps({"connector": CID}).write(DEFINITION, make_powerapps({"connector": CID}).read())
    assert sim.powerapps_connector(ENV, CID)["displayName"] == "Portal name"
    target = make_powerapps({"connector": CID, "displayName": "Configured name"})
    target.write(DEFINITION, target.read())
    assert sim.powerapps_connector(ENV, CID)["displayName"] == "Configured name"


def test_create_then_adopt_after_a_crash_before_the_ledger_write(
    sim: Simulator, make_powerapps: Make
) -> None:
    sim.environments.add(ENV)
    first = make_powerapps({"oauthSecret": "none"})
    assert first.read().definition is None
    created = first.write(DEFINITION, first.read())
    assert created and created in sim.powerapps_ids(ENV)
    held = sim.powerapps_connector(ENV, created)
    assert held["description"] == "Invoices of Contoso. [connector-sync:contoso/prod]"
    assert held["displayName"] == "Contoso Invoicing"

    # The run died before the ledger stored the id: a new run knows nothing of it.
    second = make_powerapps({"oauthSecret": "none"}, state_id=None)
    current = second.read()
    assert current.connector_id == created
    assert current.definition == DEFINITION
    assert second.write(changed(DEFINITION), current) == created
    assert len(sim.requests_to("POST", r"/apis$")) == 1, "adopt, never create a duplicate"
    assert sim.powerapps_ids(ENV) == [created]
    assert "[connector-sync:contoso/prod]" in sim.powerapps_connector(ENV, created)["description"]


def test_marker_of_another_target_is_not_adopted(sim: Simulator, make_powerapps: Make) -> None:
    sim.seed_powerapps(
        ENV, CID, DEFINITION, APIKEY_PROPERTIES, description="x [connector-sync:contoso/test]"
    )
    target = make_powerapps(name="prod")
    assert target.read().definition is None
    target.write(DEFINITION, target.read())
    assert len(sim.powerapps_ids(ENV)) == 2


def test_two_marked_connectors_are_refused(sim: Simulator, make_powerapps: Make) -> None:
    for cid in ("shared_a", "shared_b"):
        sim.seed_powerapps(
            ENV, cid, DEFINITION, APIKEY_PROPERTIES, description="[connector-sync:contoso/prod]"
        )
    with pytest.raises(TargetError, match=r"2 connectors carry the marker.*shared_a, shared_b"):
        make_powerapps().read()


def test_state_id_of_a_deleted_connector_falls_back_to_create(
    sim: Simulator, make_powerapps: Make
) -> None:
    sim.environments.add(ENV)
    target = make_powerapps(state_id="shared_gone")
    assert target.read().definition is None
    new_id = target.write(DEFINITION, target.read())
    assert new_id != "shared_gone"
    assert len(sim.requests_to("GET", r"/apis/shared_gone$")) == 1
    assert sim.requests_to("PATCH") == []


def test_configured_connector_not_found_names_it(sim: Simulator, make_powerapps: Make) -> None:
    sim.environments.add(ENV)
    with pytest.raises(
        TargetError, match=r"connector shared_nope was not found in environment"
    ) as caught:
        make_powerapps({"connector": "shared_nope"}).read()
    assert caught.value.status == 404


def test_state_id_is_used_when_no_connector_configured(
    sim: Simulator, make_powerapps: Make
) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    assert make_powerapps(state_id=CID).read().connector_id == CID
    assert sim.requests_to("GET", r"/apis$") == []  # no listing needed


def test_read_back_uses_original_swagger_url_without_authorization(
    sim: Simulator, make_powerapps: Make
) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": CID})
    doc = target.read_back()
    assert doc == DEFINITION  # properties.swagger has the APIM host: it is not what we read
    blob = sim.requests_to("GET", r"^/blob/")
    assert blob and all("authorization" not in r.headers for r in blob)


def test_verify_waits_for_propagation(sim: Simulator, make_powerapps: Make) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    sim.faults.propagation_seconds = 0.5
    target = make_powerapps({"connector": CID}, verify_seconds=10)
    new = changed(DEFINITION)
    target.write(new, target.read())
    assert target.read_back() == DEFINITION  # not visible yet
    target.verify(new)
    assert canonical_bytes(target.read_back()) == canonical_bytes(new)


def test_verify_reads_the_definition_url_it_already_knows(
    sim: Simulator, make_powerapps: Make
) -> None:
    """After read + write, one blob GET proves the write: no registration GET (512 KB of runtime
    swagger on a big connector) unless that blob does not serve the new definition."""
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": CID})
    new = changed(DEFINITION)
    target.write(new, target.read())
    sim.clear_requests()
    target.verify(new)
    assert len(sim.requests_to("GET", r"^/blob/")) == 1
    assert sim.requests_to("GET", r"/apis/") == []


def test_verify_falls_back_to_the_full_read_back_when_that_url_fails(
    sim: Simulator, make_powerapps: Make
) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": CID})
    new = changed(DEFINITION)
    target.write(new, target.read())
    sim.rotate_blob_sas(ENV, CID)  # the URL the read saw is refused now
    sim.clear_requests()
    target.verify(new)
    blobs = sim.requests_to("GET", r"^/blob/")
    assert len(blobs) == 2 and len(sim.requests_to("GET", r"/apis/")) == 1
    assert canonical_bytes(target.read_back()) == canonical_bytes(new)


def test_verify_uses_the_url_of_its_own_write_not_a_later_read(
    sim: Simulator, make_powerapps: Make
) -> None:
    """Another item's read (before its lease) may run on the same target object between this
    item's write and verify: the quick read-back still uses the URL this write was based on."""
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": CID})
    new = changed(DEFINITION)
    target.write(new, target.read())
    sim.rotate_blob_sas(ENV, CID)
    target.read()  # a concurrent item's read sees the new SAS
    sim.clear_requests()
    target.verify(new)
    assert len(sim.requests_to("GET", r"/apis/")) == 1  # the write's old URL failed: full path


def test_verify_gives_up_with_the_first_difference(sim: Simulator, make_powerapps: Make) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    sim.faults.propagation_seconds = 60
    target = make_powerapps({"connector": CID}, verify_seconds=0.3)
    new = changed(DEFINITION)
    target.write(new, target.read())
    with pytest.raises(
        TargetError, match=r"read-back does not match.*first difference at /info/version"
    ):
        target.verify(new)


def test_definition_over_one_megabyte_is_refused_before_any_call(
    sim: Simulator, make_powerapps: Make
) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": CID})
    big = changed(DEFINITION)
    big["info"]["description"] = "x" * 1_000_000
    current = target.read()
    sim.clear_requests()
    with pytest.raises(TargetError, match=r"1,000,\d{3} bytes.*prod.*less than 1,000,000 bytes"):
        target.write(big, current)
    assert sim.requests == []
    assert target.limit_bytes == 999_999


def test_validation_failure_stops_the_write(sim: Simulator, make_powerapps: Make) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    sim.validate_failures["Contoso Invoicing"] = "The 'schemes' array requires at least one value."
    target = make_powerapps({"connector": CID})
    with pytest.raises(
        TargetError, match=r"HTTP 400 SwaggerValidationFailed: The 'schemes' array"
    ) as caught:
        target.write(DEFINITION, target.read())
    assert caught.value.code == "SwaggerValidationFailed"
    assert caught.value.tracking_id
    assert sim.requests_to("PATCH") == []


def test_token_without_oid_is_refused_with_a_reason(sim: Simulator, make_powerapps: Make) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": CID}, tokens=FakeTokens(oid=""))
    with pytest.raises(TargetError, match="no 'oid' claim"):
        target.write(DEFINITION, target.read())


def test_wrong_audience_token_is_explained(sim: Simulator, make_powerapps: Make, cloud) -> None:
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)

    class WrongAudience(FakeTokens):
        def token(self, scope: str) -> str:
            return super().token("https://management.core.windows.net/.default")

    with pytest.raises(
        TargetError,
        match=r"401 InvalidAuthenticationToken: .*wrong audience.*service\.powerapps\.com/\.default",
    ):
        make_powerapps({"connector": CID}, tokens=WrongAudience()).read()


def test_portal_url_per_cloud(make_powerapps: Make) -> None:
    assert (
        make_powerapps().portal_url()
        == f"https://make.powerapps.com/environments/{ENV}/customconnectors"
    )


def test_service_url_like_paconn() -> None:
    assert service_url(DEFINITION) == "https://contoso-invoicing.azurewebsites.net/api"
    assert service_url({"host": "h.example"}) == "//h.example"
    assert service_url({}) == ""


def test_requires_an_environment(cloud, http) -> None:
    with pytest.raises(ConfigError, match="environment"):
        PowerAppsTarget(
            api="a",
            name="b",
            params={"credential": "c"},
            cloud=cloud,
            tokens=FakeTokens(),
            secrets=DictSecrets(),
            client=http,
        )


def test_unreachable_service_is_transient(make_powerapps: Make, sim: Simulator) -> None:
    sim.stop()
    with pytest.raises(TransientError, match="could not be reached"):
        make_powerapps({"connector": CID}).read()


def test_the_read_back_is_prepared_once_the_write_has_left(
    sim: Simulator, make_powerapps: Make, monkeypatch
) -> None:
    """The written definition is spelled for the read-back's comparison on a background worker,
    started once the PATCH body has been sent (``pp_errors.send(on_sent=...)``), once per write."""
    import sync.adapters.stored_definitions as stored
    from sync.background import unfinished

    prepared: list[str] = []
    real = stored.expect_soon

    def expect_soon(document: Any, store: Any = None) -> None:
        prepared.append(threading.current_thread().name)
        real(document, store)

    monkeypatch.setattr(stored, "expect_soon", expect_soon)
    sim.seed_powerapps(ENV, CID, DEFINITION, APIKEY_PROPERTIES)
    target = make_powerapps({"connector": CID})
    new = changed(DEFINITION)
    target.write(new, target.read())
    deadline = time.monotonic() + 5
    while unfinished() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert prepared == ["pp-expect"]
    target.verify(new)
    assert canonical_bytes(target.read_back()) == canonical_bytes(new)
