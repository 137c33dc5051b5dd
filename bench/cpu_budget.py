"""Where a warm update's CPU goes (issue 8): ``python bench/cpu_budget.py [--updates N] [--fanout]``.

``io_overhead_ratio`` compares a warm update's wall time, less its engine time, with the same
requests sent one after another by a bare httpx client. The servers' share of both is the same;
what differs is the client's CPU, and in one CPython process every thread's CPU passes through
the one GIL. This tool runs warm updates on the bench's local stack (``bench.stack``) and
reports, per update, the process's CPU against its wall time and the thread CPU of each part of
the update, so that a change can be judged by the CPU it removes, not by one noisy ratio.

Accounting: each listed function is wrapped; its thread CPU (``time.thread_time``) is charged to
its category, exclusive of the listed functions it calls, on whichever thread runs it (the
connector read, the early ledger record and the run row run on workers). CPU outside every
listed function (glue, thread hand-overs, garbage collection) is "unlisted". Only the updates
to the case's "after" definition are counted, as in ``bench/run.py``.

``--fanout`` does the same for one event fanned out to 20 targets through the queue
(``bench/run.py``'s fan-out), where the queue's and the event marker's calls count too.

Not part of the test suite; it changes nothing it measures except for the wrappers' own cost
(~2 microseconds per wrapped call, ~30 calls per warm update).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import run as bench_run  # noqa: E402
from bench import stack as stack_mod  # noqa: E402
from bench import tools  # noqa: E402

ENGINE = "engine (convert, refs, overlay, merge, validate, diff)"

# (module, attribute path, category). The pipeline imports the engine's functions where it calls
# them, so the module attribute is what runs; ``load_object`` and ``sha256_hex_kept`` are bound in
# ``sync.pipeline`` itself. A name that no longer exists fails the tool instead of hiding a part.
LISTED: tuple[tuple[str, str, str], ...] = (
    ("sync.spec.refs", "check_refs", ENGINE),
    ("sync.spec.convert", "normalize", ENGINE),
    ("sync.spec.overlay", "apply_overlay", ENGINE),
    ("sync.spec.merge", "merge3", ENGINE),
    ("sync.spec.validate", "validate", ENGINE),
    ("sync.spec.diff", "diff", ENGINE),
    ("sync.pipeline", "load_object", "spec: parse"),
    ("sync.pipeline", "sha256_hex_kept", "spec: encode and hash"),
    ("sync.adapters.spec_sources", "SpecSources.fetch_for", "spec: download"),
    ("sync.adapters.powerapps", "PowerAppsTarget._get_registration", "connector: registration GET"),
    (
        "sync.adapters.powerapps",
        "PowerAppsTarget._download_definition",
        "connector: definition GETs",
    ),
    ("sync.adapters.powerapps", "PowerAppsTarget._validate", "connector: validation POST"),
    ("sync.adapters.powerapps", "PowerAppsTarget.write", "connector: PATCH"),
    ("sync.adapters.stored_definitions", "expect_soon", "connector: read-back preparation"),
    ("sync.adapters.ledger_tables", "TableLedger.start_run", "ledger: run row insert"),
    ("sync.adapters.ledger_tables", "TableLedger.state", "ledger: state reads (2)"),
    ("sync.adapters.ledger_tables", "TableLedger.acquire_lease", "ledger: lease"),
    ("sync.adapters.ledger_tables", "TableLedger.mark_pending", "ledger: pending marker"),
    ("sync.adapters.ledger_tables", "TableLedger.prepare_definitions", "ledger: pack definitions"),
    ("sync.adapters.ledger_tables", "TableLedger.record_version", "ledger: version transaction"),
    ("sync.adapters.ledger_tables", "TableLedger.release_lease", "ledger: lease"),
    ("sync.adapters.ledger_tables", "TableLedger.finish_item", "ledger: run row outcome"),
    ("sync.adapters.ledger_tables", "TableLedger.mark_notified", "ledger: run row card status"),
    ("sync.runs", "notify", "card"),
    ("sync.adapters.urlguard", "UrlGuard.check", "outbound URL checks"),
    # the queue path (``--fanout``): the planner's sends, the worker's receives and deletes
    ("sync.adapters.queue_storage", "StorageWorkQueue.send", "queue: send"),
    ("sync.adapters.queue_storage", "StorageWorkQueue.receive", "queue: receive"),
    ("sync.adapters.queue_storage", "StorageWorkQueue.delete", "queue: delete"),
    ("sync.adapters.ledger_tables", "TableLedger.seen_event", "ledger: event marker"),
)


Saved = list[tuple[Any, str, Any]]  # (owner, attribute, original function)


def wrap_listed(make: Callable[[str, str, Callable[..., Any]], Callable[..., Any]]) -> Saved:
    """Replace each function ``LISTED`` names with ``make(category, name, original)``; returns
    what ``unwrap`` puts back. Shared by this tool and ``bench/timeline.py``."""
    saved: Saved = []
    for module_name, path, category in LISTED:
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        original = getattr(owner, name)  # AttributeError: LISTED names a part that is gone
        saved.append((owner, name, original))
        setattr(owner, name, make(category, name, original))
    return saved


def unwrap(saved: Saved) -> None:
    for owner, name, original in reversed(saved):
        setattr(owner, name, original)
    saved.clear()


class Budget:
    """Exclusive thread CPU per category, on every thread (see the module docstring)."""

    def __init__(self) -> None:
        self.spent: Counter[str] = Counter()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._saved: Saved = []

    def _charge(self, category: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        local = self._local

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            stack = getattr(local, "stack", None)
            if stack is None:
                stack = local.stack = []
            now = time.thread_time()
            if stack:
                self._add(stack[-1], now - local.mark)
            stack.append(category)
            local.mark = now
            try:
                return fn(*args, **kwargs)
            finally:
                now = time.thread_time()
                self._add(stack.pop(), now - local.mark)
                local.mark = now

        return wrapper

    def _add(self, category: str, seconds: float) -> None:
        with self._lock:
            self.spent[category] += seconds

    def install(self) -> None:
        self._saved = wrap_listed(lambda category, _, original: self._charge(category, original))

    def remove(self) -> None:
        unwrap(self._saved)

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.spent)


def measure(updates: int, *, fanout: bool = False) -> dict[str, Any]:
    """``updates`` warm updates (or, with ``fanout``, fan-outs of one event to 20 targets, as
    ``bench/run.py`` times them), each to the case's "after" definition."""
    stack = stack_mod.start()
    budget = Budget()
    try:
        svc = tools.in_process_service(stack)
        for _ in range(6):  # warm: connections open, imports done, the collector settled
            bench_run.warm_update(stack, svc)
        if fanout:
            for _ in range(2):  # the 20 targets' adapters and connections, as the bench does
                bench_run.fan_out_once(stack, svc)
        budget.install()
        walls, cpus, engines, per_update = [], [], [], Counter()
        for _ in range(updates):
            name = "fan" if fanout else "warm"
            if stack.next_flip(name) != "after":  # back to "before", not counted
                run_once(stack, svc, fanout)
            before = budget.snapshot()
            wall, engine_s, cpu = run_once(stack, svc, fanout)
            cpus.append(cpu)
            walls.append(wall)
            engines.append(engine_s)
            per_update.update(budget.snapshot() - before)
    finally:
        budget.remove()
        stack.stop()
    return {
        "case": stack.case.name,
        "what": "fan-outs of one event to 20 targets" if fanout else "warm updates",
        "updates": updates,
        "wall_ms": statistics.median(walls) * 1000,
        "engine_on_item_thread_ms": statistics.median(engines) * 1000,
        "process_cpu_ms": statistics.median(cpus) * 1000,
        "process_cpu_mean_ms": statistics.mean(cpus) * 1000,
        "categories_ms": {k: v / updates * 1000 for k, v in per_update.most_common()},
    }


def run_once(stack: stack_mod.Stack, svc: Any, fanout: bool) -> tuple[float, float, float]:
    """(wall, engine on the item's thread, process CPU) seconds; a fan-out's engine time is in
    its parts, not measured apart (0)."""
    if fanout:
        wall, cpu = bench_run.fan_out_once(stack, svc)
        return wall, 0.0, cpu
    return bench_run.warm_update(stack, svc)


def report(result: dict[str, Any]) -> str:
    listed = sum(result["categories_ms"].values())
    unlisted = result["process_cpu_mean_ms"] - listed
    lines = [
        f"{result['updates']} {result['what']} of {result['case']} (the 'after' definition), "
        "medians:",
        f"  wall {result['wall_ms']:.1f} ms, "
        + (
            ""
            if result["what"] != "warm updates"
            else f"engine on the item's thread {result['engine_on_item_thread_ms']:.1f} ms, "
        )
        + f"process CPU {result['process_cpu_ms']:.1f} ms (all threads; mean "
        f"{result['process_cpu_mean_ms']:.1f})",
        "",
        "| part | thread CPU per run (ms, mean) |",
        "|---|---:|",
    ]
    for category, ms in result["categories_ms"].items():
        lines.append(f"| {category} | {ms:.2f} |")
    lines.append(f"| unlisted (glue, hand-overs, collector) | {unlisted:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=40, help="measured runs (default 40)")
    parser.add_argument(
        "--fanout", action="store_true", help="fan-outs of one event to 20 targets instead"
    )
    args = parser.parse_args(argv)
    if args.updates < 1:
        parser.error("--updates must be at least 1")
    print(report(measure(args.updates, fanout=args.fanout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
