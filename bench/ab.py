"""In-process A/B of one change (issue 8): ``python bench/ab.py MODULE [--pairs N] [--fanout]``.

Whole bench runs drift with the machine's speed (the network floor moved 36-95 ms in one day), so
a change of 1-3 ms per update cannot be read off two of them. This runs both sides in one process
on the bench's local stack (``bench.stack``), alternated update by update (on/off, then off/on),
and reports the median of the pairs' differences and how often the change was faster.

``MODULE`` is imported by name (put its folder on ``PYTHONPATH``) and switches the change: it
installs both sides when imported and reads its own ``ENABLED`` attribute on every call, which
this tool sets before each update. For example, to measure a function ``f`` of ``sync.x``
against a variant::

    import sync.x as x
    ENABLED = True
    _old = x.f
    def _new(*args, **kwargs): ...
    x.f = lambda *a, **k: (_new if ENABLED else _old)(*a, **k)

Warm updates are measured as ``bench/run.py`` measures them (to the case's "after" definition,
each one new content), reporting wall time less the engine's and the process's CPU;
``--fanout`` alternates fan-outs of one event to 20 targets instead (wall time). Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import run as bench_run  # noqa: E402
from bench import stack as stack_mod  # noqa: E402
from bench import tools  # noqa: E402


def one(stack: stack_mod.Stack, svc: Any, fanout: bool) -> tuple[float, float]:
    """(ms compared, process CPU ms) of one measured update or fan-out, to "after"."""
    name = "fan" if fanout else "warm"
    if stack.next_flip(name) != "after":  # back to "before", not counted
        _run(stack, svc, fanout)
    return _run(stack, svc, fanout)


def _run(stack: stack_mod.Stack, svc: Any, fanout: bool) -> tuple[float, float]:
    if fanout:
        wall, cpu = bench_run.fan_out_once(stack, svc)
        return wall * 1000, cpu * 1000
    wall, engine, cpu = bench_run.warm_update(stack, svc)
    return (wall - engine) * 1000, cpu * 1000


def measure(toggle: Any, pairs: int, *, fanout: bool = False) -> dict[str, Any]:
    stack = stack_mod.start()
    try:
        svc = tools.in_process_service(stack)
        for _ in range(6):  # warm: connections open, imports done, the collector settled
            bench_run.warm_update(stack, svc)
        if fanout:
            for _ in range(2):
                bench_run.fan_out_once(stack, svc)
        seen: dict[bool, list[float]] = {True: [], False: []}
        cpu: dict[bool, list[float]] = {True: [], False: []}
        differences = []
        for i in range(pairs):
            got = {}
            for enabled in (True, False) if i % 2 == 0 else (False, True):
                toggle.ENABLED = enabled
                value, spent = one(stack, svc, fanout)
                seen[enabled].append(value)
                cpu[enabled].append(spent)
                got[enabled] = value
            differences.append(got[True] - got[False])
    finally:
        toggle.ENABLED = True
        stack.stop()
    return {
        "what": "fan-out wall" if fanout else "warm update wall less engine",
        "pairs": pairs,
        "on_ms": statistics.median(seen[True]),
        "off_ms": statistics.median(seen[False]),
        "on_cpu_ms": statistics.median(cpu[True]),
        "off_cpu_ms": statistics.median(cpu[False]),
        "difference_ms": statistics.median(differences),
        "on_faster": sum(d < 0 for d in differences),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("module", help="the toggle module (see the docstring)")
    parser.add_argument("--pairs", type=int, default=60, help="alternated pairs (default 60)")
    parser.add_argument("--fanout", action="store_true", help="fan-outs instead of updates")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    toggle = importlib.import_module(args.module)
    if not hasattr(toggle, "ENABLED"):
        parser.error(f"{args.module} has no ENABLED attribute to switch")
    r = measure(toggle, args.pairs, fanout=args.fanout)
    print(
        f"{r['what']}, {r['pairs']} alternated pairs (medians): on {r['on_ms']:.2f} ms "
        f"(CPU {r['on_cpu_ms']:.2f}), off {r['off_ms']:.2f} ms (CPU {r['off_cpu_ms']:.2f}); "
        f"pairs' difference {r['difference_ms']:+.2f} ms, on faster in {r['on_faster']} "
        f"of {r['pairs']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
