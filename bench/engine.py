"""Spec engine timings: a ~100 KB corpus definition warm, and a 1 MB one (scaled from the largest
corpus definition up to the platform limit) in a fresh process for its peak memory.

Run alone: ``python bench/engine.py --one-mb`` prints one JSON line (used by run.py in a
subprocess so the RSS figure is not polluted by the servers and earlier runs).
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.corpus import CORPUS, largest_connector  # noqa: E402

LIMIT_BYTES = 1_000_000 - 1  # PowerApps: compact UTF-8 JSON must be under 1 MB
OVERLAY = {
    "overlay": "1.0.0",
    "info": {"title": "bench polish", "version": "1.0.0"},
    "actions": [
        {"target": "$.info", "update": {"x-ms-api-annotation": {"status": "Preview"}}},
        {"target": "$.paths.*.get", "update": {"x-ms-visibility": "important"}},
    ],
}
STAGES = ("parse", "convert", "overlay", "merge", "validate", "diff")


def compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def corpus_pair(name: str) -> tuple[bytes, bytes]:
    folder = CORPUS / "connectors" / name
    return (
        (folder / "before" / "apiDefinition.swagger.json").read_bytes(),
        (folder / "after" / "apiDefinition.swagger.json").read_bytes(),
    )


def run_stages(before_raw: bytes, after_raw: bytes) -> dict[str, float]:
    """The pipeline's engine work for one update, in ms per stage: the connector holds
    ``before`` (also the merge base), the API now serves ``after``."""
    from sync.spec.convert import normalize
    from sync.spec.diff import diff
    from sync.spec.merge import merge3
    from sync.spec.overlay import apply_overlay
    from sync.spec.parse import load_object
    from sync.spec.refs import check_refs
    from sync.spec.validate import validate

    times: dict[str, float] = {}
    t = time.perf_counter()
    theirs_raw = load_object(after_raw, source="after")
    ours = load_object(before_raw, source="before")
    times["parse"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    check_refs(theirs_raw)
    theirs = normalize(theirs_raw).doc
    times["convert"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    theirs, _ = apply_overlay(theirs, OVERLAY)
    times["overlay"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    merged, _ = merge3(ours, ours, theirs)
    times["merge"] = (time.perf_counter() - t) * 1000
    forget_verified_entries()  # timed as new content: every path item and schema checked
    t = time.perf_counter()
    report = validate(merged, limit_bytes=LIMIT_BYTES)
    times["validate"] = (time.perf_counter() - t) * 1000
    if report.errors:
        raise RuntimeError(f"bench definition is invalid: {report.errors[:3]}")
    t = time.perf_counter()
    diff(ours, merged)
    times["diff"] = (time.perf_counter() - t) * 1000
    times["total"] = sum(times[s] for s in STAGES)
    return times


def forget_verified_entries() -> None:
    """Validation remembers the path items and schemas it verified (by content, also across
    processes), so repeating one definition would time a cache; the engine numbers are for
    content never seen. The validator itself stays loaded (its load is not an engine cost)."""
    import importlib

    from sync.lru import Lru

    module = importlib.import_module("sync.spec.validate")
    module._fast_validator()  # compiled or loaded, and the kept entries read, outside the clock
    module._VERIFIED = Lru(module._VERIFIED_SIZE)
    module._VERIFIED_STORE_WRITES = False  # and none of the bench's entries are kept


def median_stages(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 1) for k in (*STAGES, "total")}


def closest_to_100kb() -> str:
    """The corpus connector whose 'after' definition is closest to 100 KB of compact JSON."""
    sizes = {}
    for folder in (CORPUS / "connectors").iterdir():
        path = folder / "after" / "apiDefinition.swagger.json"
        if path.exists():
            sizes[folder.name] = len(compact(json.loads(path.read_text(encoding="utf-8-sig"))))
    return min(sizes, key=lambda name: abs(sizes[name] - 100_000))


def engine_100kb(repeats: int) -> dict[str, Any]:
    """The corpus connector closest to 100 KB (compact). Warm: the first run is discarded."""
    name = closest_to_100kb()
    before, after = corpus_pair(name)
    run_stages(before, after)
    runs = [run_stages(before, after) for _ in range(repeats)]
    stages = median_stages(runs)
    return {
        "case": name,
        "bytes": len(after),
        "compact_bytes": len(compact(json.loads(after))),
        "stages_ms": stages,
        "engine_ms_without_parse": round(stages["total"] - stages["parse"], 1),
    }


def scale_to_limit(doc: dict[str, Any], limit: int = LIMIT_BYTES - 1000) -> dict[str, Any]:
    """Copies of the paths (new path prefixes and operationIds) until the compact JSON is just
    under ``limit``, then a description pads the rest: same shapes, platform-limit size."""
    out = copy.deepcopy(doc)
    paths = doc.get("paths") or {}
    copy_no = 0
    while True:
        copy_no += 1
        extra = {}
        for path, item in paths.items():
            clone = copy.deepcopy(item)
            for op in clone.values() if isinstance(clone, dict) else []:
                if isinstance(op, dict) and "operationId" in op:
                    op["operationId"] = f"{op['operationId']}_c{copy_no}"
            extra[f"/copy{copy_no}{path}"] = clone
        trial = dict(out, paths={**out["paths"], **extra})
        if len(compact(trial)) > limit:
            break
        out = trial
    room = limit - len(compact(out))
    info = dict(out.get("info") or {})
    info["description"] = (str(info.get("description") or "") + " " + "x" * max(room - 2, 0))[
        : len(str(info.get("description") or "")) + max(room - 2, 0)
    ]
    out["info"] = info
    return out


def write_scaled(folder: Path) -> tuple[Path, Path]:
    """The 1 MB before/after pair as compact JSON files (made here, measured in a child)."""
    name = largest_connector()
    before_raw, after_raw = corpus_pair(name)
    paths = []
    for label, raw in (("before", before_raw), ("after", after_raw)):
        path = folder / f"spec1mb-{label}.json"
        path.write_bytes(compact(scale_to_limit(json.loads(raw.decode("utf-8-sig")))))
        paths.append(path)
    return paths[0], paths[1]


def vm_kb(field: str) -> float:
    """VmHWM / VmRSS of this process in MB. (ru_maxrss is not used: Linux carries the parent's
    peak across fork+exec, so a fresh child would report the bench's own peak.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def one_mb(before_path: Path, after_path: Path, repeats: int) -> dict[str, Any]:
    """In a fresh process: baseline RSS after imports and a warm-up on a small document, then
    the 1 MB update; RSS is the ru_maxrss delta (peak resident set growth) of this process."""
    import gc

    small = compact(
        {
            "swagger": "2.0",
            "info": {"title": "warm-up", "version": "1"},
            "paths": {
                "/a": {"get": {"operationId": "a", "responses": {"200": {"description": "ok"}}}}
            },
        }
    )
    run_stages(small, small)  # imports and compiles the validator: not spec-size dependent
    gc.collect()
    baseline = vm_kb("VmHWM")
    before_bytes, after_bytes = before_path.read_bytes(), after_path.read_bytes()
    first = run_stages(before_bytes, after_bytes)
    peak = vm_kb("VmHWM")
    tracemalloc.start()
    run_stages(before_bytes, after_bytes)
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    runs = [run_stages(before_bytes, after_bytes) for _ in range(repeats)]
    return {
        "case": f"{largest_connector()} scaled",
        "compact_bytes": len(after_bytes),
        "operations": sum(
            1
            for item in json.loads(after_bytes)["paths"].values()
            for key in item
            if key in ("get", "put", "post", "delete", "patch", "head", "options")
        ),
        "first_run_stages_ms": median_stages([first]),
        "stages_ms": median_stages(runs),
        "rss_baseline_mb": round(baseline, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_delta_mb": round(peak - baseline, 1),
        "tracemalloc_peak_mb": round(traced_peak, 1),
        "rss_method": "VmHWM (peak RSS) of a fresh process: baseline after imports and a warm-up "
        "on a small definition, peak after the first 1 MB update (input files included)",
    }


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--one-mb":
        print(json.dumps(one_mb(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))))
    else:
        print(json.dumps(engine_100kb(5)))
