"""The spec engine: pure functions, documents in, documents and reports out (no I/O).

Order in the pipeline: ``check_refs`` -> ``normalize`` -> ``apply_overlay`` -> ``merge3`` ->
``validate`` -> ``diff``. ``check_refs`` always runs first, because libraries downstream would
otherwise follow remote ``$ref``s on their own.
"""

from __future__ import annotations

from sync.spec.convert import Normalized, normalize
from sync.spec.diff import Change, Diff, OperationChange, diff
from sync.spec.merge import merge3
from sync.spec.overlay import apply_overlay, check_overlay
from sync.spec.refs import check_refs
from sync.spec.validate import ValidationReport, validate, validator_name

__all__ = [
    "Change",
    "Diff",
    "Normalized",
    "OperationChange",
    "ValidationReport",
    "apply_overlay",
    "check_overlay",
    "check_refs",
    "diff",
    "merge3",
    "normalize",
    "validate",
    "validator_name",
]
