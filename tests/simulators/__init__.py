"""Strict local stand-ins for cloud services that have no official emulator."""
