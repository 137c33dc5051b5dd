"""A finished ``python -m sync`` command skips the interpreter's teardown (sync/process_exit.py),
and loses nothing for it: its whole output, its exit code, the atexit handlers and the threads
the interpreter would have waited for.

Each case is a fresh process, as a terminal or CI job runs it, whose ``os._exit`` says so on
stderr before it ends the process: that tells the two exits apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = (
    "import atexit, os, runpy, sys, threading, time\n"
    "real_exit = os._exit\n"
    "def witness(code):\n"
    "    os.write(2, b'fast exit\\n')\n"
    "    real_exit(code)\n"
    "os._exit = witness\n"
)


def run_module(argv: list[str], extra: str = "") -> subprocess.CompletedProcess:
    """Run ``python -m sync ARGV`` with its standard streams block-buffered, as on a pipe in CI:
    output still in a buffer at the end is lost unless the exit flushes it."""
    code = (
        PRELUDE
        + extra
        + f"sys.argv = ['sync', *{argv!r}]\nrunpy.run_module('sync', run_name='__main__')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_map(path: Path) -> Path:
    path.write_text(
        "apis:\n  a:\n    spec: {url: 'https://a.example/s.json'}\n"
        "    targets: [{name: pr, folder: ./connector}]\n"
    )
    return path


def openapi(operations: int) -> dict:
    """An OpenAPI 3 document whose Swagger 2.0 conversion prints well over a pipe's buffer."""
    paths = {
        f"/items{i}/{{id}}": {
            "get": {
                "operationId": f"GetItem{i}",
                "summary": f"Gets item {i} of the shop, with its history and its owner.",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "the item",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        }
        for i in range(operations)
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Shop", "version": "1.0", "description": "Items of a shop."},
        "servers": [{"url": "https://shop.example.com/api"}],
        "paths": paths,
    }


def test_a_large_output_arrives_whole_and_the_teardown_is_skipped(tmp_path: Path) -> None:
    source = tmp_path / "openapi.json"
    source.write_text(json.dumps(openapi(2_000)))
    done = run_module(["convert", str(source)])
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) > 1_000_000  # far beyond a pipe's 64 KiB: flushed, not dropped
    converted = json.loads(done.stdout)
    assert converted["swagger"] == "2.0"
    assert len(converted["paths"]) == 2_000
    assert "fast exit" in done.stderr


def test_the_exit_code_is_the_commands(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"swagger": "2.0", "paths": {"/x": {"get": {"responses": 1}}}}))
    assert run_module(["validate", str(broken)]).returncode == 1
    missing = run_module(["config", "validate", str(tmp_path / "absent.yaml")])
    assert missing.returncode == 2
    assert "absent.yaml" in missing.stdout + missing.stderr


def test_a_short_output_left_in_the_buffer_is_flushed(tmp_path: Path) -> None:
    sync_map = write_map(tmp_path / "map.yaml")
    done = run_module(["config", "validate", str(sync_map)])
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{sync_map}: valid (1 APIs, 1 targets)\n"
    assert "fast exit" in done.stderr


def test_output_written_before_stdout_was_replaced_is_flushed(tmp_path: Path) -> None:
    """Code that swaps sys.stdout (a capture, a wrapper) leaves the real stream's buffer behind."""
    extra = "sys.stdout.write('written first\\n')\nimport io\nsys.stdout = io.StringIO()\n"
    done = run_module(["config", "validate", str(write_map(tmp_path / "map.yaml"))], extra)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "written first\n"
    assert "fast exit" in done.stderr


def test_atexit_handlers_and_logging_handlers_still_run(tmp_path: Path) -> None:
    """A MemoryHandler writes its records only when logging's atexit hook closes it."""
    marker = tmp_path / "atexit.txt"
    logfile = tmp_path / "sync.log"
    extra = (
        "import logging, logging.handlers\n"
        f"target = logging.FileHandler({str(logfile)!r})\n"
        "held = logging.handlers.MemoryHandler(1000, logging.CRITICAL + 1, target)\n"
        "logging.getLogger('witness').addHandler(held)\n"
        "logging.getLogger('witness').warning('held until logging shuts down')\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n"
    )
    done = run_module(["config", "validate", str(write_map(tmp_path / "map.yaml"))], extra)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "ran"
    assert "held until logging shuts down" in logfile.read_text()
    assert "fast exit" in done.stderr


@pytest.mark.parametrize("install", ["sys.settrace", "sys.setprofile"])
def test_a_tracer_or_profiler_keeps_the_ordinary_exit(tmp_path: Path, install: str) -> None:
    """coverage and cProfile write their results after the command returns: nothing is skipped."""
    extra = f"{install}(lambda *args: None)\n"
    done = run_module(["config", "validate", str(write_map(tmp_path / "map.yaml"))], extra)
    assert done.returncode == 0, done.stderr
    assert "valid (1 APIs, 1 targets)" in done.stdout
    assert "fast exit" not in done.stderr


def test_a_running_non_daemon_thread_is_waited_for(tmp_path: Path) -> None:
    """The interpreter waits for such a thread; ending at once would cut its work off."""
    marker = tmp_path / "thread.txt"
    extra = (
        "def late():\n"
        "    time.sleep(0.5)\n"
        f"    open({str(marker)!r}, 'w').write('finished')\n"
        "threading.Thread(target=late, daemon=False).start()\n"
    )
    done = run_module(["config", "validate", str(tmp_path / "absent.yaml")], extra)
    assert done.returncode == 2
    assert marker.read_text() == "finished"
    assert "fast exit" not in done.stderr  # the ordinary exit was taken


def test_a_stream_that_cannot_be_flushed_takes_the_ordinary_exit(tmp_path: Path) -> None:
    """A closed pipe or stream is reported the way Python always reports it, not swallowed."""
    extra = (
        "class Refusing:\n"
        "    def __init__(self, inner): self.inner = inner\n"
        "    def write(self, text): return len(text)\n"
        "    def flush(self): raise BrokenPipeError(32, 'Broken pipe')\n"
        "sys.stdout = Refusing(sys.stdout)\n"
    )
    done = run_module(["config", "validate", str(tmp_path / "absent.yaml")], extra)
    assert "fast exit" not in done.stderr
    assert done.returncode == 120  # CPython's code for a standard stream it could not flush
    assert "Exception ignored" in done.stderr  # its report, not a traceback out of the exit
    assert "process_exit" not in done.stderr
