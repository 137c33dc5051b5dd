"""Building ``python -m sync``'s parser stays cheap: no command's heavy module is imported.

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
