"""The two contenders for "update one connector": paconn 0.0.21 and ``python -m sync run``, each
as a fresh process, plus the in-process (warm) variants used by the fan-out and warm numbers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.corpus import ROOT
from bench.stack import ENV, Stack, user_token

PACONN = ROOT / ".venv-paconn" / "bin" / "paconn"
PYTHON = ROOT / ".venv" / "bin" / "python"


class Paconn:
    """paconn in its own venv, a fake token file under a temp HOME (reference 1.8)."""

    def __init__(self, stack: Stack) -> None:
        if not PACONN.exists():
            raise SystemExit(f"paconn not found at {PACONN} (see tests/powerplatform)")
        self.stack = stack
        self.work = stack.root / "paconn"
        home = self.work / "home"
        (home / ".paconn").mkdir(parents=True)
        token = {
            "token_type": "Bearer",
            "access_token": user_token(),
            "expires_on": time.time() + 36000,
            "oid": "0c1e6f0a-3b7d-4c55-9a4e-2f1e8b7a9c01",
        }
        (home / ".paconn" / "accessTokens.json").write_text(json.dumps(token))
        (home / ".paconn" / "accessTokens.json").chmod(0o600)
        self.home = home
        (self.work / "before.json").write_text(json.dumps(stack.case.before, indent=2))
        (self.work / "after.json").write_text(json.dumps(stack.case.after, indent=2))
        (self.work / "apiProperties.json").write_text(
            json.dumps({"properties": stack.case.properties}, indent=2)
        )
        (self.work / "settings.json").write_text(
            json.dumps(
                {
                    "connectorId": stack.connector_id("paconn"),
                    "environment": ENV,
                    "powerAppsUrl": stack.sim.url,
                    "powerAppsApiVersion": "2016-11-01",
                    "apiProperties": "apiProperties.json",
                    "apiDefinition": "after.json",
                }
            )
        )
        self.count = 0

    def next_update(self) -> str:
        """Which definition the next ``update`` sends: "after" (odd updates) or "before"."""
        return "after" if (self.count + 1) % 2 else "before"

    def update(self) -> float:
        """One `paconn update`, alternating definitions so each one is a real PATCH."""
        definition = f"{self.next_update()}.json"
        self.count += 1
        args = [
            str(PACONN),
            "update",
            "-c",
            self.stack.connector_id("paconn"),
            "-e",
            ENV,
            "--pau",
            self.stack.sim.url,
            "-p",
            "apiProperties.json",
            "-d",
            definition,
        ]
        env = {
            "HOME": str(self.home),
            "PATH": os.environ.get("PATH", ""),
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
        }
        started = time.perf_counter()
        done = subprocess.run(
            args,
            cwd=self.work,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0 or "updated successfully" not in done.stdout + done.stderr:
            raise RuntimeError(f"paconn update failed: {done.stderr[-800:]}")
        return elapsed


def sync_cli(stack: Stack, api: str = "cli") -> float:
    """One `python -m sync run --api cli` as a fresh process (a real update each call)."""
    stack.flip(api)
    # A new machine, as a CI agent is: an empty per-user private cache (sync/private_cache.py), so
    # nothing an earlier process validated or compiled is reused. Until the evening of 2026-12-06
    # the CLI ran on the cache the warm-up runs had filled (a review measured 250-300 ms of
    # difference then).
    fresh_tmp = tempfile.mkdtemp(prefix="cli-tmp-", dir=stack.root)
    env = {**os.environ, **stack.env(), "PYTHONPATH": str(ROOT), "TMPDIR": fresh_tmp}
    started = time.perf_counter()
    done = subprocess.run(
        [str(PYTHON), "-m", "sync", "run", "--api", api, "--json"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.perf_counter() - started
    shutil.rmtree(fresh_tmp, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"python -m sync run failed: {done.stdout[-800:]} {done.stderr[-800:]}")
    [report] = json.loads(done.stdout)
    results = [t["result"] for t in report["targets"]]
    if results != ["updated"]:
        raise RuntimeError(f"python -m sync run did not update: {report}")
    return elapsed


def first_invocation(stack: Stack, svc: Any) -> dict[str, float]:
    """A fresh process: import the Function App, handle its first work item (queue body).
    The run row is written here first, as the planner would have."""
    from sync.models import RunSummary, SyncRequest, WorkItem, iso, new_run_id, utcnow

    stack.flip("first")
    request = SyncRequest(api="first", reason="bench")
    run_id = new_run_id()
    svc.ports.ledger.start_run(
        RunSummary(
            run_id=run_id, api="first", request=request, targets=("t00",), created_at=iso(utcnow())
        )
    )
    item = WorkItem(run_id=run_id, api="first", target="t00", request=request)
    body = json.dumps(item.to_dict())  # what msg.get_body() returns after the host decodes
    code = (
        "import time; t0 = time.perf_counter()\n"
        "import function_app\n"
        "t1 = time.perf_counter()\n"
        "from sync import triggers\n"
        f"triggers.on_work_item({body!r}, dequeue_count=1)\n"
        "t2 = time.perf_counter()\n"
        "print(round((t1 - t0) * 1000, 1), round((t2 - t0) * 1000, 1))\n"
    )
    env = {**os.environ, **stack.env(), "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        [str(PYTHON), "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"first invocation failed: {done.stderr[-800:]}")
    import_ms, handled_ms = (float(x) for x in done.stdout.split()[-2:])
    return {"import_ms": import_ms, "handled_ms": handled_ms, "process_wall_ms": wall * 1000}


def in_process_service(stack: Stack) -> Any:
    """A warm service as inside a running Function App (same settings as the CLI processes)."""
    from sync.bootstrap import build
    from sync.settings import Settings

    os.environ.update(stack.env())  # the managed-identity credential reads these
    return build(Settings.from_env())


def python_exe() -> str:
    return str(PYTHON) if PYTHON.exists() else sys.executable


def silence(path: Path) -> None:  # pragma: no cover - convenience for debugging
    path.write_text("")
