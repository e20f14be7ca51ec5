"""The one structured line a Glue job prints about its run, and how the local runner reads it back."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

EVENT = "glue_job_counts"


def counts_line(job: str, seconds: float, counts: Mapping[str, int]) -> str:
    """A JSON line naming the job, its duration and its counts (CloudWatch and the local runner both read it)."""
    return json.dumps({"event": EVENT, "job": job, "seconds": round(seconds, 3), "counts": dict(counts)})


def parse_counts(lines: Iterable[str], job: str) -> dict[str, int] | None:
    """The counts of the last counts line of `job` among `lines`, or None if it printed none."""
    found = None
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("event") == EVENT and record.get("job") == job:
            found = {str(k): int(v) for k, v in record["counts"].items()}
    return found
