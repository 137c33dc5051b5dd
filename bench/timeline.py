"""When each part of a warm update runs (issue 8): ``python bench/timeline.py [--updates N]``.

``bench/cpu_budget.py`` says how much CPU each part costs; this says when it runs and on which
thread, which is what shows a critical path: what the item's thread waits for, what a worker
does meanwhile and what competes for the GIL. Every function ``cpu_budget.LISTED`` names is
wrapped; each call's start and end (wall, from the update's start) and thread CPU are kept, and
the median of each call over the updates is printed in order of start. Calls are matched across
updates by name and position (the second ``state`` call is ``state#1``). Only updates to the
case's "after" definition are counted, as in ``bench/run.py``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import run as bench_run  # noqa: E402
from bench import stack as stack_mod  # noqa: E402
from bench import tools  # noqa: E402
from bench.cpu_budget import Saved, unwrap, wrap_listed  # noqa: E402

Call = tuple[str, str, float, float, float]  # name, thread, start, end (s), thread CPU (s)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.started = 0.0
        self._lock = threading.Lock()
        self._saved: Saved = []

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                call = (
                    name,
                    threading.current_thread().name,
                    start - self.started,
                    time.perf_counter() - self.started,
                    time.thread_time() - cpu,
                )
                with self._lock:
                    self.calls.append(call)

        return wrapper

    def install(self) -> None:
        self._saved = wrap_listed(lambda _, name, original: self._wrap(name, original))

    def remove(self) -> None:
        unwrap(self._saved)

    def take(self) -> list[Call]:
        with self._lock:
            calls, self.calls = self.calls, []
        return calls


def measure(updates: int) -> tuple[list[float], dict[str, list[tuple[float, float, float, str]]]]:
    from sync import runs

    real_run_inline = runs.run_inline
    stack = stack_mod.start()
    recorder = Recorder()
    walls: list[float] = []
    per_call: dict[str, list[tuple[float, float, float, str]]] = defaultdict(list)
    try:
        svc = tools.in_process_service(stack)
        for _ in range(6):
            bench_run.warm_update(stack, svc)
        recorder.install()

        # offsets count from run_inline's call, after warm_update has made the new definition
        # (warm_update imports it at each call, so the module's attribute is what it runs)
        def run_inline(*args: Any, **kwargs: Any) -> Any:
            recorder.started = time.perf_counter()
            return real_run_inline(*args, **kwargs)

        runs.run_inline = run_inline
        for _ in range(updates):
            if stack.next_flip("warm") != "after":
                bench_run.warm_update(stack, svc)
            recorder.take()
            wall, _, _ = bench_run.warm_update(stack, svc)
            walls.append(wall * 1000)
            counts: dict[str, int] = defaultdict(int)
            for name, thread, start, end, cpu in sorted(recorder.take(), key=lambda c: c[2]):
                key = f"{name}#{counts[name]}"
                counts[name] += 1
                per_call[key].append((start * 1000, end * 1000, cpu * 1000, thread))
    finally:
        recorder.remove()
        runs.run_inline = real_run_inline
        stack.stop()
    return walls, per_call


def report(walls: list[float], per_call: dict[str, list[tuple[float, float, float, str]]]) -> str:
    lines = [
        f"{len(walls)} warm updates, median wall {statistics.median(walls):.1f} ms "
        "(offsets from the update's start, medians over the updates that made the call)",
        "",
        "| start | end | wall | thread CPU | thread | call | updates |",
        "|---:|---:|---:|---:|---|---|---:|",
    ]
    rows = []
    for key, seen in per_call.items():
        start = statistics.median(s[0] for s in seen)
        end = statistics.median(s[1] for s in seen)
        cpu = statistics.median(s[2] for s in seen)
        rows.append((start, end, cpu, seen[0][3], key, len(seen)))
    for start, end, cpu, thread, key, n in sorted(rows):
        lines.append(
            f"| {start:.1f} | {end:.1f} | {end - start:.1f} | {cpu:.2f} | {thread} | {key} | {n} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=30, help="measured updates (default 30)")
    args = parser.parse_args(argv)
    if args.updates < 1:
        parser.error("--updates must be at least 1")
    print(report(*measure(args.updates)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
