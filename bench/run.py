"""Connector Sync benchmark (issue 8): side by side with paconn, fan-out, 1 MB specs, cold start.

    python bench/run.py [--quick] [--json FILE]

Everything is measured in ONE run on this machine, against the same local servers (Azurite, spec
server, Power Platform simulator, local managed-identity endpoint); runs are alternated and
medians reported, because absolute times on a shared box drift while ratios hold.
Not part of the test suite: speed targets live here, not in timed tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import engine, floor, tools  # noqa: E402
from bench import stack as stack_mod  # noqa: E402

# paconn updates beside each fan-out (two to each definition): 20 samples of the "after" one
PACONN_PER_FANOUT = 4

TARGETS = {
    "paconn_ratio": ("<=", 2.0),
    "warm_vs_paconn_ratio": ("<=", 0.5),
    "fanout_ratio": ("<=", 0.3),
    "engine_100kb_ms": ("<=", 100),
    "io_overhead_ratio": ("<=", 1.5),
    "spec1mb_ms": ("<=", 500),
    "spec1mb_rss_mb": ("<=", 150),
    "cold_start_ms": ("<=", 100),
    "unchanged_writes": ("==", 0),
}


def overhead_interval(
    warm: list[float], engine_s: list[float], floor_s: list[float], draws: int = 2000
) -> list[float]:
    """The 5th and 95th percentiles of ``io_overhead_ratio`` over resamplings of the same pairs
    (a bootstrap, seeded: the same samples give the same interval): how far the reported median
    ratio may sit from the machine's own, given how much single pairs vary."""
    import random

    pick_from = random.Random(0)
    n = len(warm)
    ratios = []
    for _ in range(draws):
        chosen = [pick_from.randrange(n) for _ in range(n)]
        ratios.append(
            (med([warm[i] for i in chosen]) - med([engine_s[i] for i in chosen]))
            / med([floor_s[i] for i in chosen])
        )
    ratios.sort()
    return [round(ratios[draws // 20], 2), round(ratios[draws - 1 - draws // 20], 2)]


def med(values: list[float]) -> float:
    return statistics.median(values)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- 1, 2, 5: one update ---------------------------------------------------------------------


class EngineClock:
    """Engine time on the item's critical path during a warm sync: the pipeline's own engine
    calls on the item's thread, including its waits in ``validate_cached`` for a validation
    another thread is running (single flight). Engine work on other threads is not subtracted
    from the wall time (``background_seconds`` reports it), so an overlap can only show up as a
    shorter wall, never as a smaller ``io_overhead_ratio`` numerator by itself.
    Nested calls (``validate_cached`` computing ``validate``) count once."""

    STAGES = (
        ("refs", "check_refs"),
        ("convert", "normalize"),
        ("overlay", "apply_overlay"),
        ("merge", "merge3"),
        ("validate", "validate"),
        ("diff", "diff"),
    )  # the pipeline imports each where it calls it, so the module's attribute is what it runs

    def __init__(self) -> None:
        self.seconds = 0.0
        self.background_seconds = 0.0
        self._saved: dict[tuple[Any, str], Any] = {}
        self._thread = threading.get_ident()
        self._depth = threading.local()

    def __enter__(self) -> EngineClock:
        import importlib

        import sync.pipeline as pipeline

        # The engine is convert + overlay + merge + validate + diff: the spec's parse
        # (pipeline.load_object, ~5 ms at 512 KB) was subtracted too until the evening of
        # 2026-12-06, although engine_100kb_ms leaves it out; it now counts as the service's own
        # work.
        targets = [
            (importlib.import_module(f"sync.spec.{module}"), name) for module, name in self.STAGES
        ] + [
            (pipeline, "validate_cached"),
        ]
        for owner, name in targets:
            fn = getattr(owner, name)
            self._saved[(owner, name)] = fn
            setattr(owner, name, self._timed(fn))
        return self

    def _timed(self, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._depth, "n", 0)
            self._depth.n = depth + 1
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth.n = depth
                if depth == 0:
                    spent = time.perf_counter() - started
                    if threading.get_ident() == self._thread:
                        self.seconds += spent
                    else:
                        self.background_seconds += spent

        return wrapper

    def __exit__(self, *exc: object) -> None:
        for (owner, name), fn in self._saved.items():
            setattr(owner, name, fn)


def warm_update(stack: stack_mod.Stack, svc: Any) -> tuple[float, float, float]:
    """One in-process update of the 'warm' API: (wall, engine, process CPU) seconds. The CPU is
    every thread's (``time.process_time``) during the update alone, the new definition being
    made before the clocks start: with the wall time it tells a CPU-bound update (the GIL
    serializes the item's thread and its workers) from one that waits on the servers."""
    from sync import collector
    from sync.models import SyncRequest
    from sync.runs import run_inline

    stack.flip("warm")
    request = SyncRequest(api="warm", reason="bench", caller="bench")
    with EngineClock() as clock:
        cpu = time.process_time()
        started = time.perf_counter()
        result = run_inline(request, svc.map, svc.ports, svc.pipeline)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
    if [o.result for o in result.outcomes] != ["updated"]:
        raise RuntimeError(f"warm update did not update: {result.outcomes}")
    collector.settle()  # what the Function App's triggers do after each item (the first counts)
    return wall, clock.seconds, cpu


def one_update(
    stack: stack_mod.Stack, svc: Any, paconn: tools.Paconn, rounds: int
) -> dict[str, Any]:
    """Rounds of one update each by the CLI, paconn and the warm pipeline. In every round all
    three update to the same definition (before -> after, then back), so each contender's
    samples of one definition compare with the others' of that definition: the case's two
    definitions differ in size (512 KB and 305 KB for iManage-Work), and ratios are taken
    between samples of the "after" one, the case's own (``pick``)."""
    say("warming up (two runs of each) ...")
    for _ in range(2):
        paconn.update()
        tools.sync_cli(stack)
        warm_update(stack, svc)
    cli, pac, warm, eng, to = [], [], [], [], []
    patches_before = len(stack.sim.requests_to("PATCH"))
    for i in range(rounds):
        direction = "after" if i % 2 == 0 else "before"
        if {paconn.next_update(), stack.next_flip("cli"), stack.next_flip("warm")} != {direction}:
            raise RuntimeError(
                f"round {i + 1}: the contenders would update to different definitions"
            )
        to.append(direction)
        order = ["cli", "paconn", "warm"]
        if (i // 2) % 2:  # each definition is met in both orders
            order.reverse()
        for name in order:
            if name == "cli":
                cli.append(tools.sync_cli(stack))
            elif name == "paconn":
                pac.append(paconn.update())
            else:
                wall, engine_s, _ = warm_update(stack, svc)
                warm.append(wall)
                eng.append(engine_s)
        say(
            f"  round {i + 1}/{rounds} (to {direction}): cli {cli[-1]:.3f}s "
            f"paconn {pac[-1]:.3f}s warm {warm[-1]:.3f}s"
        )
    patches = len(stack.sim.requests_to("PATCH")) - patches_before
    if patches != 3 * rounds:
        raise RuntimeError(f"expected {3 * rounds} PATCHes (one per update), saw {patches}")
    return {"cli_s": cli, "paconn_s": pac, "warm_s": warm, "warm_engine_s": eng, "to": to}


def pick(values: list[float], to: list[str], direction: str = "after") -> list[float]:
    """The samples of updates to ``direction``'s definition."""
    return [value for value, went in zip(values, to, strict=True) if went == direction]


def io_floor(stack: stack_mod.Stack, svc: Any, rounds: int) -> dict[str, Any]:
    """Record the storage requests of a warm update to the "after" definition (the one the
    update samples are picked for), then time the minimal request set of that very update."""
    if stack.next_flip("warm") != "after":
        warm_update(stack, svc)
    with floor.record_storage_requests() as storage:
        warm_update(stack, svc)
    table_port = f":{stack.azurite.table_port}/"
    if any(table_port not in request.url for request in storage):
        raise RuntimeError("floor: a warm update used storage other than the ledger's table")
    counts = Counter(f"{r.method} {urlsplit(r.url).port}" for r in storage)
    sim_requests = stack.sim.requests
    patch_body = next(
        r.body
        for r in reversed(sim_requests)
        if r.method == "PATCH" and stack.connector_id("warm") in r.path
    )
    partition = "warm~t00"
    if not any(f"PartitionKey='{partition}'" in r.url for r in storage):
        raise RuntimeError(f"floor: the warm update did not use partition {partition}")
    floor.seed_floor_connector(stack)
    floor.seed_floor_partition(stack, partition)

    def floor_round() -> dict[str, float]:
        # Each round's registration GET reads the connector as the update's own GET did, at the
        # definition the update started from: after a round's PATCH it held the "after" one
        # (344 KB against 210 KB), which made the floor ~4 ms longer (until the evening of
        # 2026-12-06).
        floor.seed_floor_connector(stack)
        return floor.network_floor(stack, storage, patch_body, "warm", partition)

    floor_round()  # warm-up: a first round runs cold
    # Each floor round right after a warm update to the same definition (and one back to the
    # other, untimed, so the next is a real update again): numerator and denominator of
    # io_overhead_ratio are then sampled side by side, under the same conditions, as many times.
    rounds_, warm, engine_s, cpu_s = [], [], [], []
    for _ in range(rounds):
        if stack.next_flip("warm") != "after":
            warm_update(stack, svc)
        wall, spent, cpu = warm_update(stack, svc)
        warm.append(wall)
        engine_s.append(spent)
        cpu_s.append(cpu)
        rounds_.append(floor_round())
    return {
        "warm_s": warm,
        "warm_engine_s": engine_s,
        "warm_cpu_s": cpu_s,
        "storage_requests": dict(counts),
        "table_requests": len(storage),
        "storage_requests_total": len(storage),
        "storage_request_bytes": sum(len(r.body or b"") for r in storage),
        "floor_s": [r["replay"] for r in rounds_],
        "floor_reads_s": [r["reads"] for r in rounds_],
        "storage_replay_s": [r["storage_replay"] for r in rounds_],
        "storage_reads_s": [r["storage_reads"] for r in rounds_],
    }


# --- 3: fan-out --------------------------------------------------------------------------------


def fan_out_once(stack: stack_mod.Stack, svc: Any) -> tuple[float, float]:
    """One CI event -> 20 targets: planner + queue drain in-process (warm), to a definition the
    service has not seen. Returns (wall, process CPU) seconds, the definition made before."""
    import uuid

    from sync.triggers import plan
    from sync.worker_loop import drain

    stack.flip("fan")
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/bench/pipelines/fan",
        "type": "ConnectorSync.ApiDeployed",
        "time": datetime.now(UTC).isoformat(),
        "data": {"api": "fan"},
    }
    cpu = time.process_time()
    started = time.perf_counter()
    plan(event, svc)
    outcomes = drain(svc, max_items=stack_mod.FANOUT, wait_seconds=5.0, concurrency=4)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    results = [o.result for o in outcomes]
    if results != ["updated"] * stack_mod.FANOUT:
        raise RuntimeError(f"fan-out did not update every target: {results}")
    return wall, cpu


def fanout(stack: stack_mod.Stack, svc: Any, paconn: tools.Paconn, rounds: int) -> dict[str, Any]:
    """One CI event -> 20 targets (``fan_out_once``), alternating the definitions. Beside each
    fan-out run ``PACONN_PER_FANOUT`` paconn updates (to both definitions, in turn), after it
    or, every other two fan-outs, before it (so that each definition's fan-outs meet both
    orders and neither side inherits the other's leftovers): the denominator, 20 paconn runs,
    is sampled in the same minutes as the numerator. Until 2026-12-07 15:15 it was 20 x the
    median of the update rounds' paconn, taken a minute earlier: a machine that grew busier in
    between (or quieter) moved the ratio by itself."""

    def once() -> float:
        return fan_out_once(stack, svc)[0]

    once()  # warm-up: first use of 20 target adapters and their connections
    walls, to, pac, pac_to = [], [], [], []
    if stack.next_flip("fan") != "after":
        once()

    def paconn_runs() -> None:
        for _ in range(PACONN_PER_FANOUT):
            pac_to.append(paconn.next_update())
            pac.append(paconn.update())

    for i in range(2 * rounds):  # ``rounds`` fan-outs to each definition, alternated
        paconn_first = (i // 2) % 2 == 1
        if paconn_first:
            paconn_runs()
        to.append(stack.next_flip("fan"))
        walls.append(once())
        if not paconn_first:
            paconn_runs()
    return {"walls_s": walls, "to": to, "paconn_s": pac, "paconn_to": pac_to}


# --- 4, 6: engine ------------------------------------------------------------------------------


def spec1mb(stack: stack_mod.Stack, repeats: int) -> dict[str, Any]:
    before, after = engine.write_scaled(stack.root)
    done = subprocess.run(
        [
            tools.python_exe(),
            str(ROOT / "bench" / "engine.py"),
            "--one-mb",
            str(before),
            str(after),
            str(repeats),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- 7: cold start -----------------------------------------------------------------------------


def cold_start(runs: int) -> dict[str, Any]:
    """Fresh processes, alternated: `import function_app` vs `import azure.functions`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    def wall(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([tools.python_exe(), "-c", code], cwd=ROOT, env=env, check=True)
        return time.perf_counter() - started

    wall("import function_app")  # byte-compile once, as a deployed package is
    app, base = [], []
    for _ in range(runs):
        app.append(wall("import function_app"))
        base.append(wall("import azure.functions"))
    return {"app_s": app, "azure_functions_s": base}


# --- 8: unchanged ------------------------------------------------------------------------------


def unchanged(stack: stack_mod.Stack, svc: Any) -> dict[str, Any]:
    """The spec did not change: a redelivered-looking event and a full re-fetch of identical
    content must write nothing to the connector or to the target's ledger rows."""
    from sync.models import SyncRequest
    from sync.runs import run_inline

    out: dict[str, Any] = {}
    for label, refetch in (("304", False), ("same_content", True)):
        if refetch:  # a new ETag and Last-Modified: the body has to be compared by hash
            current = stack.server.spec_body("/warm.json")
            stack.server.set_spec("/warm.json", current, "application/json", etag='"other"')
        before = len(stack.sim.requests)
        with floor.count_ledger_writes() as ledger_calls, floor.count_storage_requests() as storage:
            result = run_inline(
                SyncRequest(api="warm", reason="bench", caller="bench"),
                svc.map,
                svc.ports,
                svc.pipeline,
            )
        sent = stack.sim.requests[before:]
        out[label] = {
            "result": [o.result for o in result.outcomes],
            "connector_writes": sum(1 for r in sent if r.method in ("PATCH", "POST", "PUT")),
            "ledger_target_writes": sum(ledger_calls[n] for n in floor.LEDGER_WRITES),
            "run_bookkeeping_writes": sum(ledger_calls[n] for n in floor.RUN_WRITES),
            "storage_write_requests": sum(
                n for key, n in storage.items() if key.split()[0] in floor.WRITE_METHODS
            ),
            "ledger_calls": dict(ledger_calls),
        }
    out["writes"] = sum(
        v["connector_writes"] + v["ledger_target_writes"]
        for v in out.values()
        if isinstance(v, dict)
    )
    return out


# --- report ------------------------------------------------------------------------------------


def verdict(key: str, value: float) -> str:
    op, limit = TARGETS[key]
    ok = value <= limit if op == "<=" else value == limit
    return "ok" if ok else "MISS"


def table(results: dict[str, Any]) -> str:
    rows = [
        ("paconn_ratio", "CLI process update / paconn update (median)"),
        ("warm_vs_paconn_ratio", "warm in-process update / paconn update"),
        ("fanout_ratio", "1 event -> 20 targets / 20 x paconn"),
        ("engine_100kb_ms", "engine on ~100 KB (convert..diff), new content"),
        ("io_overhead_ratio", "(warm wall - engine) / network floor"),
        ("spec1mb_ms", "1 MB definition, all stages, new content"),
        ("spec1mb_rss_mb", "1 MB definition, peak memory"),
        ("cold_start_ms", "import function_app - import azure.functions"),
        ("unchanged_writes", "writes when the spec did not change"),
    ]
    lines = ["| metric | what | value | target | |", "|---|---|---:|---:|---|"]
    for key, what in rows:
        op, limit = TARGETS[key]
        value = results[key]
        lines.append(f"| `{key}` | {what} | {value:g} | {op} {limit:g} | {verdict(key, value)} |")
    lines.append(
        f"| `first_invocation_ms` | fresh process: import + first work item | "
        f"{results['first_invocation_ms']:g} | - | |"
    )
    lines.append(
        f"| `spec1mb_first_ms` | the same, the first pass of a fresh process (not a median) | "
        f"{results['spec1mb_first_ms']:g} | - | |"
    )
    lines.append(
        "| `unchanged_run_row_writes` | run-row bookkeeping when the spec did not change (the "
        f"run, its outcome, its card status; per run) | {results['unchanged_run_row_writes']:g} "
        "| - | |"
    )
    medians = results["details"]["medians_ms"]
    lines.append(
        "| `io_overhead_ratio` CPU | those warm updates: our process's CPU (all threads) / their "
        f"wall, median ms | {medians['warm_cpu_beside_floor']:g} / "
        f"{medians['warm_update_beside_floor']:g} | - | |"
    )
    low, high = results["details"]["io_overhead_ratio_interval"]
    lines.append(
        f"| `io_overhead_ratio` 90% interval | resampling its {results['details']['io_overhead_pairs']}"
        f" warm/floor pairs | {low:g}-{high:g} | - | |"
    )
    lines.append(
        "| `io_overhead_ratio_reads_floor` | the same, storage in the floor as reads of a missing "
        f"row (before 2026-12-05) | {results['io_overhead_ratio_reads_floor']:g} | - | |"
    )
    lines.append(f"| validator | hot-path structural validator | {results['validator']} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (well under a minute)")
    parser.add_argument("--json", metavar="FILE", help="write the results here")
    args = parser.parse_args(argv)
    # 12: six updates to each definition per contender and 12 warm/floor pairs. With 6 (until
    # 2026-12-05 12:00) the ratios rested on medians of three, and io_overhead_ratio read
    # 1.28-1.63 in six runs of the same code on a quiet machine.
    rounds = 2 if args.quick else 12
    # 36 warm/floor pairs for io_overhead_ratio: single pairs vary by a quarter either way on
    # this machine, and with 12 (until 2026-12-07) resampling 80 pairs of one run put the
    # median ratio of 12 anywhere in 1.31-1.63 (5th-95th percentile) around 1.44; of 36, 1.36-1.55.
    io_pairs = 2 if args.quick else 36
    started = time.perf_counter()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}",
        "quick": args.quick,
    }
    # Byte-compile the package first, as pip does for an installed one (paconn's venv): with
    # PYTHONDONTWRITEBYTECODE set, an edited module would otherwise be compiled in every process.
    import compileall

    compileall.compile_dir(str(ROOT / "sync"), quiet=1)
    compileall.compile_file(str(ROOT / "function_app.py"), quiet=1)
    say("engine ...")
    e100 = engine.engine_100kb(rounds)
    stack = stack_mod.start()
    try:
        results["case"] = stack.case.name
        results["case_bytes"] = len(stack.case.after_bytes)
        svc = tools.in_process_service(stack)
        say(f"one update ({stack.case.name}, {len(stack.case.after_bytes):,} bytes) ...")
        paconn = tools.Paconn(stack)
        upd = one_update(stack, svc, paconn, rounds)
        pac = med(pick(upd["paconn_s"], upd["to"]))
        from sync.spec.validate import validator_name

        results["validator"] = validator_name()  # what the warm updates' validate() ran
        say("network floor ...")
        flo = io_floor(stack, svc, io_pairs)
        say("fan-out ...")
        fan = fanout(stack, svc, paconn, 1 if args.quick else 5)
        say("unchanged spec ...")
        unch = unchanged(stack, svc)
        say("first invocation ...")
        first, first_to = [], []
        for _ in range(1 if args.quick else 3):  # after, before, after: the "after" ones count
            first_to.append(stack.next_flip("first"))
            first.append(tools.first_invocation(stack, svc))
        say("1 MB definition ...")
        big = spec1mb(stack, 3)
    finally:
        stack.stop()
    say("cold start ...")
    # 21 pairs: with 9 (until 2026-12-06 20:00) one code read 44-130 ms in seven runs (the
    # median of its pairs' differences 55-109); resampling 60 pairs of one quiet run put a median
    # of 9 at 35-90 ms (5th-95th percentile) and one of 21 at 43-82, around the same 60 ms.
    cold = cold_start(5 if args.quick else 21)
    cold_pairs = [a - b for a, b in zip(cold["app_s"], cold["azure_functions_s"], strict=True)]
    to = upd["to"]
    paired_wall, paired_engine = med(flo["warm_s"]), med(flo["warm_engine_s"])
    warm_wall = med(pick(upd["warm_s"], to))
    warm_engine = med(pick(upd["warm_engine_s"], to))
    cli_wall = med(pick(upd["cli_s"], to))
    fan_wall = med(pick(fan["walls_s"], fan["to"]))
    fan_pac = med(pick(fan["paconn_s"], fan["paconn_to"]))  # paconn beside the fan-outs
    before = {  # the same medians for the updates back to the smaller definition
        "paconn_update": round(med(pick(upd["paconn_s"], to, "before")) * 1000, 1),
        "cli_update": round(med(pick(upd["cli_s"], to, "before")) * 1000, 1),
        "warm_update": round(med(pick(upd["warm_s"], to, "before")) * 1000, 1),
        "warm_engine": round(med(pick(upd["warm_engine_s"], to, "before")) * 1000, 1),
        "fanout_20": round(med(pick(fan["walls_s"], fan["to"], "before")) * 1000, 1),
    }
    results.update(
        {
            "paconn_ratio": round(cli_wall / pac, 2),
            "warm_vs_paconn_ratio": round(warm_wall / pac, 2),
            "fanout_ratio": round(fan_wall / (20 * fan_pac), 2),
            # the denominator as it was until 2026-12-07 15:15: the update rounds' paconn
            "fanout_ratio_rounds_paconn": round(fan_wall / (20 * pac), 2),
            "engine_100kb_ms": e100["engine_ms_without_parse"],
            "io_overhead_ratio": round((paired_wall - paired_engine) / med(flo["floor_s"]), 2),
            "io_overhead_ratio_reads_floor": round(
                (paired_wall - paired_engine) / med(flo["floor_reads_s"]), 2
            ),
            "spec1mb_ms": big["stages_ms"]["total"],
            "spec1mb_rss_mb": big["rss_peak_mb"],
            "cold_start_ms": round((med(cold["app_s"]) - med(cold["azure_functions_s"])) * 1000, 1),
            "first_invocation_ms": round(med(pick([f["handled_ms"] for f in first], first_to)), 1),
            "unchanged_writes": unch["writes"],
            # not counted above: the run row itself (start, outcome, card status), which records
            # that a run happened and what it found, for the HTTP caller and the card
            "unchanged_run_row_writes": max(
                v["run_bookkeeping_writes"] for v in unch.values() if isinstance(v, dict)
            ),
            "spec1mb_first_ms": big["first_run_stages_ms"]["total"],
            "details": {
                "medians_ms": {
                    "paconn_update": round(pac * 1000, 1),
                    "cli_update": round(cli_wall * 1000, 1),
                    "warm_update": round(warm_wall * 1000, 1),
                    "warm_engine": round(warm_engine * 1000, 1),
                    "network_floor": round(med(flo["floor_s"]) * 1000, 1),
                    "warm_update_beside_floor": round(paired_wall * 1000, 1),
                    "warm_engine_beside_floor": round(paired_engine * 1000, 1),
                    # our process's CPU (all threads) in those updates, since 2026-12-07 07:40
                    "warm_cpu_beside_floor": round(med(flo["warm_cpu_s"]) * 1000, 1),
                    "network_floor_reads": round(med(flo["floor_reads_s"]) * 1000, 1),
                    "floor_storage_replay": round(med(flo["storage_replay_s"]) * 1000, 1),
                    "floor_storage_reads": round(med(flo["storage_reads_s"]) * 1000, 1),
                    "fanout_20": round(fan_wall * 1000, 1),
                    "paconn_update_beside_fanout": round(fan_pac * 1000, 1),
                    "import_function_app": round(med(cold["app_s"]) * 1000, 1),
                    "import_azure_functions": round(med(cold["azure_functions_s"]) * 1000, 1),
                    "cold_start_paired": round(med(cold_pairs) * 1000, 1),  # a check on it
                },
                "medians_ms_to_before": before,
                "io_overhead_ratio_interval": overhead_interval(
                    flo["warm_s"], flo["warm_engine_s"], flo["floor_s"]
                ),
                "io_overhead_pairs": len(flo["floor_s"]),
                "io_overhead_ratio_from_rounds": round(
                    (warm_wall - warm_engine) / med(flo["floor_s"]), 2
                ),  # the warm samples of the contenders' rounds instead (before 2026-12-05 09:00)
                "raw": {"update": upd, "floor": flo, "fanout": fan, "cold_start": cold},
                "engine_100kb": e100,
                "spec1mb": big,
                "spec1mb_rss_note": "peak RSS (VmHWM) of a fresh process that imported the "
                "engine and ran one 1 MB update; rss_delta_mb is the growth caused by the update",
                "unchanged": unch,
                "first_invocation": first,
                "bench_seconds": round(time.perf_counter() - started, 1),
            },
        }
    )
    print(table(results))
    print(
        f"\n{results['date']} - {results['machine']} - case {results['case']} (updates to its "
        f"{results['case_bytes']:,}-byte definition)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
