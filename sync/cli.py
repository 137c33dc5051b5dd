"""``python -m sync``: the same pipeline as the Function App, run from a terminal or a CI job.

Exit codes: 0 ok, 1 a sync (or validation) failed, 2 usage or configuration error.
Settings come from the environment as in Azure (see README); ``--config`` overrides SYNC_CONFIG.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from sync.errors import ConfigError, SyncError

log = logging.getLogger(__name__)


def _settings(args: argparse.Namespace) -> Any:
    from sync.settings import Settings

    settings = Settings.from_env()
    config = getattr(args, "config", None)
    return replace(settings, config_path=config) if config else settings


def _service(args: argparse.Namespace) -> Any:
    from sync.bootstrap import build
    from sync.config import load_map

    settings = _settings(args)
    sync_map = load_map(settings.config_path)
    overrides: dict[str, Any] = {}
    if getattr(args, "dry_run", False) and not (
        settings.storage_connection_string or settings.table_endpoint
    ):
        from sync.adapters.read_only_ledger import EmptyLedger

        overrides["ledger"] = EmptyLedger()
    return build(settings, sync_map, **overrides)


def _print(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False) if as_json else text)


def _outcome_line(o: Any) -> str:
    diff = o.diff or {}
    counts = ""
    if diff:
        counts = (
            f" (+{len(diff.get('added', []))} -{len(diff.get('removed', []))} "
            f"~{len(diff.get('changed', []))}{' BREAKING' if diff.get('breaking') else ''})"
        )
    version = f" v{o.version}" if o.version else ""
    return f"  {o.target:<20} {o.result:<10}{version}{counts} {o.message}"


def cmd_run(args: argparse.Namespace) -> int:
    from sync.adapters.sdk_imports import import_sdks, needed
    from sync.models import SyncRequest
    from sync.runs import run_inline, target_names

    svc = _service(args)
    apis = [args.api] if args.api else list(svc.map.apis)
    # before the run starts its threads: imported from them, the SDKs would contend for the GIL
    import_sdks(needed(svc.settings, svc.map, apis))
    failed = False
    report: list[dict[str, Any]] = []
    requests = []
    # Every API's options are checked before the first one runs: checked as each came, a bad
    # --spec-url or --target for a later API ended a usage error after earlier APIs had
    # synced, and --json printed none of them
    for api in apis:
        if args.spec_url and not svc.map.api(api).allows_spec_url(args.spec_url):
            raise ConfigError(
                f"--spec-url is not under allowedSpecUrls of {api!r}", path="--spec-url"
            )
        request = SyncRequest(
            api=api,
            reason="cli",
            caller=f"cli:{os.environ.get('USER', 'unknown')}",
            targets=tuple(args.target) if args.target else None,
            dry_run=args.dry_run,
            spec_url=args.spec_url,
        )
        target_names(request, svc.map)  # raises naming the targets an API does not have
        requests.append(request)
    for request in requests:
        api = request.api
        result = run_inline(request, svc.map, svc.ports, svc.pipeline, concurrency=4)
        failed = failed or not result.ok
        report.append(
            {
                "api": api,
                "runId": result.run.run_id,
                "ok": result.ok,
                "targets": [o.to_dict() for o in result.outcomes],
            }
        )
        if not args.json:
            print(f"{api}: run {result.run.run_id}{' (dry run)' if args.dry_run else ''}")
            for outcome in result.outcomes:
                print(_outcome_line(outcome))
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    return 1 if failed else 0


def cmd_history(args: argparse.Namespace) -> int:
    from sync.http_api import version_json
    from sync.models import SyncRequest
    from sync.runs import target_names

    svc = _service(args)
    svc.map.api(args.api)
    if args.target is not None:  # a typo must not read as "no versions recorded" (exit 0)
        target_names(SyncRequest(api=args.api, reason="cli", targets=(args.target,)), svc.map)
    records = svc.ports.ledger.versions(args.api, args.target, limit=args.limit)
    rows = [version_json(r) for r in records]
    text = (
        "\n".join(
            f"{r['target']:<16} v{r['version']:<4} {r['createdAt']}  {r['reason']:<18} "
            f"{r.get('infoVersion', '-'):<10} {r.get('eventType', '')}"
            for r in rows
        )
        or "no versions recorded"
    )
    _print(rows, args.json, text)
    return 0


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` (to ``high``), or a usage error (exit 2)
    naming it. ``worker --max-items -5`` exited 0 having done nothing; ``history --limit``
    takes what HTTP takes."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if high is None and value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than {low}")
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in {low}..{high}")
        return value

    return parse


def cmd_config_validate(args: argparse.Namespace) -> int:
    from sync.config import load_map_file

    sync_map = load_map_file(args.file)
    targets = sum(len(a.targets) for a in sync_map.apis.values())
    print(f"{args.file}: valid ({len(sync_map.apis)} APIs, {targets} targets)")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Feed an event file through the planner (the Event Grid trigger's body), onto the queue.

    Every element is read as an event first (``normalize_event``), and one that is not an event
    (``[42]``, an object without a type) ends the command with exit 1 and one line naming it,
    before anything is planned. The trigger acknowledges such an event (Event Grid cannot fix
    it), but a file given here is the user's to fix: before, it crashed with AttributeError or
    exited 0 saying the event was ignored. A valid event that no API listens to still exits 0."""
    from collections.abc import Mapping

    from sync.events import normalize_event
    from sync.spec.parse import load_document
    from sync.triggers import plan

    svc = _service(args)
    with open(args.event, "rb") as handle:
        data = load_document(handle.read(), source=args.event)
    raw = data if isinstance(data, list) else [data]
    # raises MalformedEvent (a SyncError: ``main`` prints it and exits 1)
    events = [
        normalize_event(item, where=f"events[{i}]" if isinstance(data, list) else None)
        for i, item in enumerate(raw)
    ]
    runs = [
        run
        for item, event in zip(raw, events, strict=True)
        for run in plan(
            event,
            svc,
            traceparent=item.get("traceparent") if isinstance(item, Mapping) else None,
        )
    ]
    _print({"runs": runs}, args.json, "\n".join(runs) or "no run planned (event ignored)")
    return 0


DEFAULT_GC_THRESHOLDS = (700, 10, 10)  # CPython's own


def _failed_delivery_line(item: Any, exc: SyncError, what: Any) -> str:
    """One line for a delivery that failed without recording an outcome: target, API, what
    became of it, and the error (redacted, on one line)."""
    from sync.logs import redact
    from sync.runs import Delivery

    fate = "left for a retry" if what is Delivery.RETRY else "sent again (lease still held)"
    why = " ".join(redact(str(exc)).split())
    return f"  {item.target:<20} {'failed':<10} {item.api}: {fate}: {why}"


def cmd_worker(args: argparse.Namespace) -> int:
    """Drain the work queue here (what the queue trigger does in Azure), for local runs.

    Exit 1 when an outcome is failed or blocked, or when any delivery failed in this invocation:
    a delivery before the last records no outcome (the queue retries it, after this command has
    ended), so ``drain`` reports it through ``on_failure``; before, such a run exited 0 with no
    output. A delivery's failure recorded as an outcome (the last one) is shown by its outcome
    line, the others by a line of their own."""
    import gc

    from sync.adapters.sdk_imports import import_sdks, needed
    from sync.runs import Delivery
    from sync.worker_loop import DrainInterrupted, drain

    gc.set_threshold(
        *DEFAULT_GC_THRESHOLDS
    )  # ``python -m sync`` collects rarely; this may run long

    svc = _service(args)
    import_sdks(needed(svc.settings, svc.map, svc.map.apis))  # see cmd_run
    failed_deliveries: list[tuple[Any, SyncError, Delivery]] = []
    stopped: SyncError | None = None
    try:
        outcomes = drain(
            svc,
            max_items=args.max_items,
            wait_seconds=args.wait,
            concurrency=args.concurrency,
            on_failure=lambda item, exc, what: failed_deliveries.append((item, exc, what)),
        )
    except DrainInterrupted as interrupted:  # what was done is still shown
        outcomes, stopped = interrupted.outcomes, interrupted.error
    for outcome in outcomes:
        print(_outcome_line(outcome))
    for item, exc, what in failed_deliveries:
        if what is not Delivery.GAVE_UP:  # else its outcome line above says it
            print(_failed_delivery_line(item, exc, what))
    if stopped is not None:
        print(f"error: {stopped}", file=sys.stderr)
    failed = failed_deliveries or any(o.result in ("failed", "blocked") for o in outcomes)
    return 1 if failed or stopped is not None else 0


def build_parser() -> argparse.ArgumentParser:
    """Every command's arguments, cheaply: the parser is built on every call, so sub-commands
    are registered without importing the modules that do their work (handlers import them)."""
    from sync.credential_commands import CliDeps
    from sync.credential_commands import register as register_credentials

    doctor_deps = CliDeps()  # its probe is set once --config is known (see main)
    parser = argparse.ArgumentParser(
        prog="python -m sync",
        description="Keep Power Platform custom connectors in sync with the APIs they wrap.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="sync now, inline (no queue)")
    run.add_argument("--config", help="sync map file (default: $SYNC_CONFIG)")
    run.add_argument("--api", help="only this API (default: all)")
    run.add_argument("--target", action="append", help="only this target (repeatable)")
    run.add_argument("--spec-url", help="fetch this spec URL (must be under allowedSpecUrls)")
    run.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    run.add_argument("--json", action="store_true", help="machine-readable output")
    run.set_defaults(func=cmd_run)

    hist = sub.add_parser("history", help="versions recorded in the ledger, newest first")
    hist.add_argument("--config")
    hist.add_argument("--api", required=True)
    hist.add_argument("--target")
    hist.add_argument("--limit", type=_whole(1, 100), default=20, help="1..100, as over HTTP")
    hist.add_argument("--json", action="store_true")
    hist.set_defaults(func=cmd_history)

    config = sub.add_parser("config", help="sync map tools")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    validate = config_sub.add_parser("validate", help="validate a sync map against its schema")
    validate.add_argument("file")
    validate.set_defaults(func=cmd_config_validate)

    plan = sub.add_parser("plan", help="run an Event Grid/CloudEvents file through the planner")
    plan.add_argument("event", help="JSON file: one event or an array")
    plan.add_argument("--config")
    plan.add_argument("--json", action="store_true")
    plan.set_defaults(func=cmd_plan)

    worker = sub.add_parser("worker", help="process queued work items here (local queue trigger)")
    worker.add_argument("--config")
    worker.add_argument("--max-items", type=_whole(1), default=100)
    worker.add_argument("--wait", type=float, default=2.0, help="seconds to wait for more items")
    worker.add_argument(
        "--concurrency",
        type=_whole(1),
        default=4,
        help="items run at once (host.json batchSize: 4)",
    )
    worker.set_defaults(func=cmd_worker)

    register_credentials(sub, deps=doctor_deps)
    parser.set_defaults(doctor_deps=doctor_deps)
    for module in ("sync.spec.cli", "sync.ops_cli", "sync.rollback"):
        if importlib.util.find_spec(module) is not None:  # optional command groups
            importlib.import_module(module).register(sub)
    return parser


def target_probe(config: str | None) -> Any:
    """``doctor``'s read-only probe: the real target adapter from the composition root."""

    def probe(api: str, target: str) -> str:
        svc = _service(argparse.Namespace(config=config))
        adapter = svc.ports.targets(api, target)
        check = getattr(adapter, "probe", None)
        if callable(check):
            return str(check())
        current = adapter.read()
        return "readable" + (" (no definition yet)" if current.definition is None else "")

    return probe


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "doctor" and args.doctor_deps.probe is None:
        args.doctor_deps.probe = target_probe(args.config)
    from sync.logs import configure_logging

    configure_logging(level="DEBUG" if args.verbose else None)  # else SYNC_LOG_LEVEL, checked
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except SyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
