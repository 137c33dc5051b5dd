"""Logging set-up for the CLI (the Functions worker installs its own handlers)."""

from __future__ import annotations

import logging
import sys

QUIET = ("azure", "azure.core.pipeline.policies.http_logging_policy", "httpx", "httpcore", "msal")


def configure_logging(level: str = "WARNING") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
