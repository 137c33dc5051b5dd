"""``python -m sync`` starts cheaply: no command's heavy module is imported to build the parser,
and the one-shot process runs without the cyclic GC (``worker`` turns it back on).

Every CLI call builds the whole parser; the ``credential``/``doctor`` work (token providers,
azure-identity, the sync map loader) must only be imported when one of those commands runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sync.credential_cli", "azure.identity", "sync.adapters.credentials", "msal", "jsonschema")


def test_build_parser_imports_no_command_module() -> None:
    code = (
        "import json, sys\n"
        "from sync.cli import build_parser\n"
        "args = build_parser().parse_args(['doctor', '--config', 'm.yaml', '--api', 'a', "
        "'--target', 't'])\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
        "print(json.dumps(callable(args.func)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded, has_handler = map(json.loads, out.stdout.splitlines())
    assert loaded == []
    assert has_handler is True


def test_doctor_missing_map_runs_its_handler_and_exits_2(tmp_path, capsys) -> None:
    """The lazily imported handler still does the work (here: names the unreadable map)."""
    from sync.cli import main

    missing = tmp_path / "absent.yaml"
    code = main(["doctor", "--config", str(missing), "--api", "a", "--target", "t"])
    assert code == 2
    assert "absent.yaml" in capsys.readouterr().out


def test_the_old_import_path_still_offers_register_and_clideps() -> None:
    from sync import credential_cli, credential_commands

    assert credential_cli.register is credential_commands.register
    assert credential_cli.CliDeps is credential_commands.CliDeps


def test_python_m_sync_collects_rarely_and_skips_import_time_objects(tmp_path) -> None:
    """A one-shot CLI process does not re-scan its import-time objects (sync/__main__.py), and
    the collector still runs (cyclic garbage of a long run is reclaimed)."""
    sync_map = tmp_path / "map.yaml"
    sync_map.write_text(
        "apis:\n  a:\n    spec: {url: 'https://a.example/s.json'}\n    targets: []\n"
    )
    code = (
        "import atexit, gc, runpy, sys\n"
        "atexit.register(lambda: print('gc:', gc.isenabled(), gc.get_threshold(),"
        " gc.get_freeze_count() > 10000))\n"
        f"sys.argv = ['sync', 'config', 'validate', {str(sync_map)!r}]\n"
        "runpy.run_module('sync', run_name='__main__')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert "gc: True (200000, 20, 20) True" in out.stdout, out.stdout + out.stderr


def test_worker_goes_back_to_the_default_thresholds(tmp_path) -> None:
    """``worker`` loops for as long as there is work: cyclic garbage must be collected often."""
    import gc

    from sync.cli import main

    before = gc.get_threshold()
    gc.set_threshold(200_000, 20, 20)
    try:
        assert main(["worker", "--config", str(tmp_path / "absent.yaml")]) == 2
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)
