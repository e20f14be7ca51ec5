"""Placeholder benchmark until its owner fills it in."""

from __future__ import annotations


def command() -> None:
    """Not yet available."""
    raise SystemExit("not yet available")
