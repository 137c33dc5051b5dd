"""Connector Sync: keeps Power Platform custom connectors in sync with the APIs they wrap.

The package is the whole service minus the Functions bindings: ``function_app.py`` wires triggers to
``sync.triggers``; the CLI (``python -m sync``) runs the same pipeline inline.
"""

__version__ = "0.1.0"
