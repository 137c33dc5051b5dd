"""The spec engine: pure functions, documents in, documents and reports out (no I/O).

Order in the pipeline: ``refs.check_refs`` -> ``convert.normalize`` -> ``overlay.apply_overlay``
-> ``merge.merge3`` -> ``validate.validate`` -> ``diff.diff``. ``check_refs`` always runs first,
because libraries downstream would otherwise follow remote ``$ref``s on their own.

The package imports none of its modules: a map's loader and the planner need only ``parse``
(and ``canonical``), and ``import sync.spec.parse`` runs this file first. Re-exporting the
stages here cost a fresh Function App process 13-18 ms of imports at start, which planning an
Event Grid event never needs: it converts, validates and diffs nothing. Import each stage from
its module, where it is used.
"""
