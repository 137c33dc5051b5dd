"""The spec engine: pure functions, documents in, documents and reports out (no I/O).

Order in the pipeline: ``refs.check_refs`` -> ``convert.normalize`` -> ``overlay.apply_overlay``
-> ``merge.merge3`` -> ``validate.validate`` -> ``diff.diff``. ``check_refs`` always runs first,
because libraries downstream would otherwise follow remote ``$ref``s on their own.

The package imports none of its modules: a map's loader and the planner need only ``parse``
(and ``canonical``), and ``import sync.spec.parse`` runs this file first. Re-exporting the
stages here cost every fresh Function App process ~12 ms of imports before its first event,
which plans work and never converts, validates or diffs a spec. Import each stage from its
module, where it is used.
"""
