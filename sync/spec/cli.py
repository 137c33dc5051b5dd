"""``python -m sync convert|validate|diff|merge``: the spec engine on local files, no Azure needed.

Why: the same functions the worker runs, usable in a PR check or by hand before a sync. Exit codes
follow ``sync/cli.py``: 0 ok, 1 validation errors, 2 unreadable or invalid input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sync.errors import SpecError


def _load(path: str) -> dict[str, Any]:
    """Read, parse (JSON or YAML) and ref-check one input file."""
    from sync.spec.parse import load_object
    from sync.spec.refs import check_refs

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", where=path) from None
    doc = load_object(raw, source=path)
    try:
        check_refs(doc)
    except SpecError as exc:
        exc.where = f"{path}: {exc.where}" if exc.where else path
        raise
    return doc


def _write(doc: dict[str, Any], out: str | None) -> None:
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _fail(exc: SpecError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 2


def cmd_convert(args: argparse.Namespace) -> int:
    from sync.spec.convert import normalize

    try:
        result = normalize(_load(args.input))
    except SpecError as exc:
        return _fail(exc)
    _write(result.doc, args.output)
    print(f"converted from {result.source_version}", file=sys.stderr)
    for loss in result.losses:
        print(f"loss: {loss}", file=sys.stderr)
    for op_id in result.generated_operation_ids:
        print(f"generated operationId: {op_id}", file=sys.stderr)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from sync.spec.validate import validate

    try:
        doc = _load(args.file)
    except SpecError as exc:
        return _fail(exc)
    report = validate(doc, limit_bytes=args.limit, strict=args.strict)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        for message in report.errors:
            print(f"error: {message}")
        for message in report.warnings:
            print(f"warning: {message}")
        print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    return 0 if report.ok else 1


def cmd_diff(args: argparse.Namespace) -> int:
    from sync.spec.diff import diff

    try:
        old, new = _load(args.old), _load(args.new)
    except SpecError as exc:
        return _fail(exc)
    result = diff(old, new)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return 0
    for key in result.added:
        print(f"+ {key}")
    for key in result.removed:
        print(f"- {key} (breaking)")
    for op in result.changed:
        print(f"~ {op.operation_id}")
        for change in op.changes:
            flag = " (breaking)" if change.breaking else ""
            print(f"    {change.kind}: {change.message}{flag}")
    print(f"breaking: {str(result.breaking).lower()}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from sync.spec.merge import merge3

    try:
        base, ours, theirs = _load(args.base), _load(args.ours), _load(args.theirs)
    except SpecError as exc:
        return _fail(exc)
    merged, conflicts = merge3(base, ours, theirs)
    _write(merged, args.output)
    for conflict in conflicts:
        print(f"conflict: {conflict}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    """Add the spec subcommands to ``python -m sync``'s parser."""
    convert = subparsers.add_parser(
        "convert", help="OpenAPI 3.x -> Swagger 2.0 (loss report on stderr)"
    )
    convert.add_argument("input", metavar="IN")
    convert.add_argument("-o", "--output", metavar="OUT")
    convert.set_defaults(func=cmd_convert)

    check = subparsers.add_parser(
        "validate", help="validate a Swagger 2.0 definition (exit 1 on errors)"
    )
    check.add_argument("file", metavar="FILE")
    check.add_argument("--json", action="store_true")
    check.add_argument("--strict", action="store_true", help="warnings count as errors")
    check.add_argument("--limit", type=int, metavar="BYTES", help="size limit of the compact JSON")
    check.set_defaults(func=cmd_validate)

    compare = subparsers.add_parser("diff", help="operations added/removed/changed, breaking flags")
    compare.add_argument("old", metavar="OLD")
    compare.add_argument("new", metavar="NEW")
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=cmd_diff)

    merge = subparsers.add_parser("merge", help="three-way merge keeping connector-side edits")
    merge.add_argument("base", metavar="BASE")
    merge.add_argument("ours", metavar="OURS")
    merge.add_argument("theirs", metavar="THEIRS")
    merge.add_argument("-o", "--output", metavar="OUT")
    merge.set_defaults(func=cmd_merge)
