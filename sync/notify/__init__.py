"""Run notifications: the Adaptive Card a finished run posts to Teams (adapters deliver it)."""

from sync.notify.cards import (
    MAX_MESSAGE_BYTES,
    build_card,
    build_message,
    encode_message,
    run_status,
    summarize,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "build_card",
    "build_message",
    "encode_message",
    "run_status",
    "summarize",
]
