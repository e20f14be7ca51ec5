"""`shelfwise demo`: placeholder until the demo lands."""

from __future__ import annotations


def run() -> None:
    """Run the whole system locally, end to end."""
    raise SystemExit("not yet available")
