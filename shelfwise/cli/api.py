"""`shelfwise api`: placeholder until the local API server lands."""

from __future__ import annotations


def serve() -> None:
    """Serve every Lambda handler on 127.0.0.1 as API Gateway would."""
    raise SystemExit("not yet available")
