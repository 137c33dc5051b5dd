"""validateApiSwagger acceptances shared by the targets of a fan-out: the platform is asked once
per distinct definition, refusals are never remembered, and acceptances expire."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable

import pytest

from sync.adapters.powerapps import PowerAppsTarget
from sync.adapters.pp_verdicts import AcceptedDefinitions
from sync.errors import TargetError
from tests.powerplatform.conftest import ENV, settle
from tests.powerplatform.samples import APIKEY_PROPERTIES, DEFINITION, changed
from tests.simulators.powerplatform import Simulator

Make = Callable[..., PowerAppsTarget]
CIDS = [f"shared_contoso-{i}-5f0629412a7d1fe83e-5f6f049093c9b7a698" for i in range(3)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def validations(sim: Simulator) -> int:
    return len(sim.requests_to("POST", "validateApiSwagger"))


def seeded_targets(sim: Simulator, make_powerapps: Make, accepted: AcceptedDefinitions | None):
    targets = []
    for i, cid in enumerate(CIDS):
        sim.seed_powerapps(ENV, cid, DEFINITION, APIKEY_PROPERTIES)
        targets.append(make_powerapps({"connector": cid}, name=f"t{i}", accepted=accepted))
    return targets


def test_same_definition_is_validated_once_for_every_target(
    sim: Simulator, make_powerapps: Make
) -> None:
    targets = seeded_targets(sim, make_powerapps, AcceptedDefinitions())
    new = changed(DEFINITION)
    sim.clear_requests()
    for target in targets:
        target.write(new, target.read())
    assert validations(sim) == 1
    assert len(sim.requests_to("PATCH")) == 3
    for target in targets:  # every connector really holds it (not just "accepted")
        assert target.read_back() == new


def test_without_a_shared_store_every_write_validates(sim: Simulator, make_powerapps: Make) -> None:
    targets = seeded_targets(sim, make_powerapps, None)
    new = changed(DEFINITION)
    sim.clear_requests()
    for target in targets:
        target.write(new, target.read())
    assert validations(sim) == 3


def test_a_different_definition_is_validated_again(sim: Simulator, make_powerapps: Make) -> None:
    first, second, _ = seeded_targets(sim, make_powerapps, AcceptedDefinitions())
    one = changed(DEFINITION)
    other = copy.deepcopy(one)
    other["info"]["description"] = "another build"
    sim.clear_requests()
    first.write(one, first.read())
    second.write(other, second.read())
    assert validations(sim) == 2


def test_a_refusal_is_not_remembered(sim: Simulator, make_powerapps: Make) -> None:
    targets = seeded_targets(sim, make_powerapps, AcceptedDefinitions())
    new = changed(DEFINITION)
    sim.validate_failures[new["info"]["title"]] = "The 'schemes' array requires at least one value."
    sim.clear_requests()
    for target in targets[:2]:
        with pytest.raises(TargetError, match="SwaggerValidationFailed"):
            target.write(new, target.read())
    assert validations(sim) == 2  # each target heard the refusal from the platform itself
    assert sim.requests_to("PATCH") == []
    del sim.validate_failures[new["info"]["title"]]  # the platform fixed: asked again, then kept
    targets[2].write(new, targets[2].read())
    targets[0].write(new, targets[0].read())
    assert validations(sim) == 3


def test_doctor_probe_always_asks_the_platform(sim: Simulator, make_powerapps: Make) -> None:
    accepted = AcceptedDefinitions()
    [target, *_] = seeded_targets(sim, make_powerapps, accepted)
    sim.clear_requests()
    target.probe()
    target.probe()
    assert validations(sim) == 2


def test_acceptance_expires() -> None:
    clock = Clock()
    accepted = AcceptedDefinitions(ttl_seconds=60, clock=clock)
    calls: list[int] = []
    assert accepted.check("k", lambda: calls.append(1)) is True
    clock.now += 59
    assert accepted.check("k", lambda: calls.append(1)) is False
    clock.now += 2
    assert accepted.check("k", lambda: calls.append(1)) is True
    assert len(calls) == 2


def test_store_is_bounded() -> None:
    accepted = AcceptedDefinitions(max_entries=2)
    calls: list[str] = []
    for key in ("a", "b", "c", "a"):
        accepted.check(key, lambda key=key: calls.append(key))
    assert calls == ["a", "b", "c", "a"]  # "a" was pushed out by "c"


def test_concurrent_askers_wait_for_the_first_answer() -> None:
    accepted = AcceptedDefinitions()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []
    asked: list[bool] = []

    def slow() -> None:
        calls.append(1)
        started.set()
        assert release.wait(5)

    def ask() -> None:
        asked.append(accepted.check("same", slow))

    first = threading.Thread(target=ask)
    first.start()
    assert started.wait(5)
    others = [threading.Thread(target=ask) for _ in range(5)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert len(calls) == 1
    assert sorted(asked) == [False] * 5 + [True]


def test_waiters_ask_themselves_when_the_first_is_refused() -> None:
    accepted = AcceptedDefinitions()
    calls: list[int] = []

    def refuse() -> None:
        calls.append(1)
        raise TargetError("refused")

    for _ in range(2):
        with pytest.raises(TargetError):
            accepted.check("bad", refuse)
    assert len(calls) == 2
    assert accepted.check("bad", lambda: None) is True


def validated_bodies(sim: Simulator) -> list[dict]:
    import json

    return [json.loads(r.body) for r in sim.requests_to("POST", "validateApiSwagger")]


def test_prevalidated_upstream_is_not_validated_again_by_the_write(
    sim: Simulator, make_powerapps: Make
) -> None:
    [target, *_] = seeded_targets(sim, make_powerapps, AcceptedDefinitions())
    new = changed(DEFINITION)
    sim.clear_requests()
    target.prevalidate(new)
    target.write(new, target.read())
    settle()
    assert validated_bodies(sim) == [new]
    assert len(sim.requests_to("PATCH")) == 1


def test_a_different_merge_is_validated_by_the_write(sim: Simulator, make_powerapps: Make) -> None:
    [target, *_] = seeded_targets(sim, make_powerapps, AcceptedDefinitions())
    upstream = changed(DEFINITION)
    merged = copy.deepcopy(upstream)
    merged["info"]["description"] = "kept from the portal"
    sim.clear_requests()
    target.prevalidate(upstream)
    target.write(merged, target.read())
    settle()
    bodies = validated_bodies(sim)
    assert sorted(b["info"].get("description", "") for b in bodies) == [
        upstream["info"].get("description", ""),
        "kept from the portal",
    ]
    assert target.read_back() == merged


def test_a_refused_prevalidation_is_reported_by_the_write(
    sim: Simulator, make_powerapps: Make
) -> None:
    [target, *_] = seeded_targets(sim, make_powerapps, AcceptedDefinitions())
    new = changed(DEFINITION)
    sim.validate_failures[new["info"]["title"]] = "The 'schemes' array requires at least one value."
    sim.clear_requests()
    target.prevalidate(new)
    with pytest.raises(TargetError, match="SwaggerValidationFailed: The 'schemes' array"):
        target.write(new, target.read())
    settle()
    assert len(validated_bodies(sim)) == 2
    assert sim.requests_to("PATCH") == []


def test_prevalidate_without_a_shared_store_or_over_the_limit_asks_nothing(
    sim: Simulator, make_powerapps: Make
) -> None:
    [plain] = seeded_targets(sim, make_powerapps, None)[:1]
    shared = make_powerapps({"connector": CIDS[1]}, name="t1", accepted=AcceptedDefinitions())
    big = changed(DEFINITION)
    big["info"]["description"] = "x" * 1_000_001
    sim.clear_requests()
    plain.prevalidate(changed(DEFINITION))
    shared.prevalidate(big)
    settle()
    assert validated_bodies(sim) == []


def test_prevalidate_of_a_definition_json_cannot_carry_asks_nothing_and_never_raises(
    sim: Simulator, make_powerapps: Make
) -> None:
    """prevalidate runs before the lease for every new upstream: it only speculates, so a
    definition the body encoder refuses (``maximum: .inf``) is left to ``write`` to report."""
    [target] = seeded_targets(sim, make_powerapps, AcceptedDefinitions())[:1]
    odd = changed(DEFINITION)
    odd["x-limit"] = float("inf")
    sim.clear_requests()
    target.prevalidate(odd)
    settle()
    assert validated_bodies(sim) == []


def test_the_early_validation_gives_up_sooner_than_the_write(
    sim: Simulator, cloud, http, monkeypatch
) -> None:
    """A write that finds the early call running waits for it: that call must not hold it for a
    whole retry run (60 s here), so it has a 10 s budget; the write keeps its own."""
    from sync.adapters import pp_target
    from tests.powerplatform.conftest import DictSecrets, FakeTokens

    sim.seed_powerapps(ENV, CIDS[0], DEFINITION, APIKEY_PROPERTIES)
    budgets: list[tuple[str, float]] = []
    real_send = pp_target.send

    def send(client, method, url, **kwargs):
        if "validateApiSwagger" in url:
            budgets.append((threading.current_thread().name, kwargs["budget_seconds"]))
        return real_send(client, method, url, **kwargs)

    monkeypatch.setattr(pp_target, "send", send)
    target = PowerAppsTarget(
        api="contoso",
        name="t0",
        params={"environment": ENV, "credential": "pp-user", "connector": CIDS[0]},
        cloud=cloud,
        tokens=FakeTokens(),
        secrets=DictSecrets(),
        client=http,
        budget_seconds=60,
        accepted=AcceptedDefinitions(),
    )
    upstream = changed(DEFINITION)
    merged = copy.deepcopy(upstream)
    merged["info"]["description"] = "kept from the portal"
    target.prevalidate(upstream)
    target.write(merged, target.read())
    settle()
    assert sorted(budgets) == [("MainThread", 60), ("pp-prevalidate", 10.0)]


def test_the_early_validation_logs_with_the_items_fields(
    sim: Simulator, make_powerapps: Make, monkeypatch
) -> None:
    from sync.logs import current_context, log_context

    [target, *_] = seeded_targets(sim, make_powerapps, AcceptedDefinitions())
    seen: list[dict] = []
    real = PowerAppsTarget._validate

    def validate(self, encoded, **kwargs):
        seen.append(current_context())
        return real(self, encoded, **kwargs)

    monkeypatch.setattr(PowerAppsTarget, "_validate", validate)
    with log_context(run_id="run-1", api="contoso", target="t0"):
        target.prevalidate(changed(DEFINITION))
    settle()
    assert seen == [{"run_id": "run-1", "api": "contoso", "target": "t0"}]


def test_a_fan_out_encodes_the_shared_definition_once(
    sim: Simulator, make_powerapps: Make, monkeypatch
) -> None:
    import sync.spec.canonical as module

    encoded: list[int] = []
    whole, in_parts = module.compact_bytes, module._encode_in_parts
    monkeypatch.setattr(module, "compact_bytes", lambda doc: encoded.append(id(doc)) or whole(doc))
    monkeypatch.setattr(
        module, "_encode_in_parts", lambda doc: encoded.append(id(doc)) or in_parts(doc)
    )
    targets = seeded_targets(sim, make_powerapps, AcceptedDefinitions())
    new = changed(DEFINITION)  # one object, as the pipeline hands every target of a fan-out
    for target in targets:
        target.prevalidate(new)
        target.write(new, target.read())
    settle()
    assert encoded.count(id(new)) == 1  # (the properties around it are encoded per target)
    assert len(sim.requests_to("PATCH")) == 3
