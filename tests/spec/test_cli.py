"""The spec subcommands through argparse, as ``python -m sync`` wires them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from sync.spec.cli import register
from tests.spec import corpus


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="sync")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def swagger(**ops: Any) -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {
            "title": "Pets",
            "version": "1",
            "description": "Pets of a pet shop, one at a time.",
        },
        "x-ms-connector-metadata": [],
        "paths": {
            f"/{name.lower()}": {
                "get": {
                    "operationId": name,
                    "summary": "s",
                    "responses": {"200": {"description": "ok"}},
                }
            }
            for name in ops
        },
    }


def write(tmp_path: Path, name: str, doc: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc, encoding="utf-8")
    return str(path)


def test_convert_writes_swagger_and_reports_losses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = corpus_dir_file("oai-callback-example.yaml")
    out = tmp_path / "out.json"
    assert run("convert", src, "-o", str(out)) == 0
    assert json.loads(out.read_text())["swagger"] == "2.0"
    err = capsys.readouterr().err
    assert "loss: paths." in err and "callbacks" in err


def corpus_dir_file(name: str) -> str:
    from tests.conftest import corpus_dir

    return str(corpus_dir("openapi3") / name)


def test_convert_yaml_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write(tmp_path, "a.yaml", "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {}\n")
    assert run("convert", src) == 0
    assert json.loads(capsys.readouterr().out)["swagger"] == "2.0"


def test_validate_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.json", swagger(A=1))
    assert run("validate", good) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out
    assert run("validate", good, "--limit", "10", "--json") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and "over the limit of 10 bytes" in data["errors"][0]
    doc = swagger(A=1)
    doc["info"]["title"] = "x" * 40
    warn = write(tmp_path, "warn.json", doc)
    assert run("validate", warn) == 0
    assert run("validate", warn, "--strict") == 1


def test_diff_prints_breaking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path, "old.json", swagger(A=1, B=1))
    new = write(tmp_path, "new.json", swagger(A=1, C=1))
    assert run("diff", old, new, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {"added": ["C"], "removed": ["B"], "changed": [], "breaking": True}
    assert run("diff", old, new) == 0
    text = capsys.readouterr().out
    assert "+ C" in text and "- B (breaking)" in text and "breaking: true" in text


def test_merge_writes_result_and_conflicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = swagger(A=1)
    ours = swagger(A=1)
    ours["paths"]["/a"]["get"]["summary"] = "ours"
    theirs = swagger(A=1)
    theirs["paths"]["/a"]["get"]["summary"] = "theirs"
    out = tmp_path / "merged.json"
    code = run(
        "merge",
        write(tmp_path, "b.json", base),
        write(tmp_path, "o.json", ours),
        write(tmp_path, "t.json", theirs),
        "-o",
        str(out),
    )
    assert code == 0
    assert json.loads(out.read_text())["paths"]["/a"]["get"]["summary"] == "ours"
    assert "conflict: paths./a.get.summary" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["convert", "validate", "diff", "merge"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read file"),
        ("{not json: [", "not valid JSON or YAML"),
        ("[1, 2]", "top level must be an object"),
        ('{"swagger": "2.0", "paths": {"/a": {"$ref": "http://127.0.0.1:9/x"}}}', "paths./a.$ref"),
    ],
)
def test_unreadable_or_invalid_input_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    content: str | None,
    message: str,
) -> None:
    bad = (
        str(tmp_path / "missing.json") if content is None else write(tmp_path, "bad.json", content)
    )
    good = write(tmp_path, "good.json", swagger(A=1))
    args = {"convert": [bad], "validate": [bad], "diff": [good, bad], "merge": [good, good, bad]}[
        command
    ]
    assert run(command, *args) == 2
    assert message in capsys.readouterr().err


def test_convert_refuses_a_non_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("convert", write(tmp_path, "x.json", {"hello": 1})) == 2
    assert "neither" in capsys.readouterr().err


def test_diff_on_a_corpus_case(capsys: pytest.CaptureFixture[str]) -> None:
    case = "ZohoSign"
    before = corpus.connector_bytes(case, "before")  # skips without the corpus
    assert before
    from tests.conftest import corpus_dir

    folder = corpus_dir("connectors", case)
    assert (
        run(
            "diff",
            str(folder / "before/apiDefinition.swagger.json"),
            str(folder / "after/apiDefinition.swagger.json"),
            "--json",
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["breaking"] is True and len(data["removed"]) == 7
