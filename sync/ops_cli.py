"""``python -m sync status``: the health report of ``GET /api/health``, from a terminal.

Exit codes follow the CLI's convention: 0 healthy (or degraded: a target failed, the service is
up), 1 unhealthy (a part is unreachable), 2 configuration error (the map or an app setting).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sync.errors import ConfigError


def _line(check: dict[str, Any]) -> str:
    mark = "ok  " if check["ok"] else ("FAIL" if check["critical"] else "warn")
    extras = {
        k: v
        for k, v in check.items()
        if k not in ("name", "ok", "critical", "reason") and v is not None
    }
    tail = " ".join(f"{k}={v}" for k, v in extras.items())
    reason = f" {check['reason']}" if check.get("reason") else ""
    return f"  {mark} {check['name']:<32}{reason}{'  ' + tail if tail else ''}"


def cmd_status(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from sync.bootstrap import build
    from sync.config import load_map
    from sync.health import check_health, config_failure
    from sync.settings import Settings

    try:
        settings = Settings.from_env()
        if args.config:
            settings = replace(settings, config_path=args.config)
        svc = build(settings, load_map(settings.config_path))
    except ConfigError as exc:
        report = config_failure(exc)
        code = 2
    else:
        report = check_health(svc)
        code = 0 if report.ok else 1
    data = report.to_dict()
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(f"{data['status']} ({data['checkedAt']})")
        for check in data["checks"]:
            print(_line(check))
    return code


def register(sub: Any) -> None:
    status = sub.add_parser("status", help="health of this deployment (config, storage, vault)")
    status.add_argument("--config", help="sync map file (default: $SYNC_CONFIG)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)
