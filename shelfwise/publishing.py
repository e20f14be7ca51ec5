"""Stream a batch run's `online_records.jsonl` into the online store: what every domain's publisher shares.

Each line is one JSON object that the domain's `parse` turns into a record (or refuses with `MalformedLineError`
naming the field). Lines are parsed as they stream in and written in chunks, so memory is bounded by the chunk size
whatever the size of the run. Every line is accounted for: lines = written + skipped_older + rejected; a line older
than what the store holds for its entity is skipped (monotonic writes, `shelfwise.online_store`), so a redriven old
run cannot roll entities back.

Pure Python over boto3 (no pyarrow or pandas): the publish Lambdas and the local demo call `publish_lines`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from shelfwise.online_store import OnlineItem, write_items

#: The file a batch run writes beside its predictions.
ONLINE_RECORDS = "online_records.jsonl"
#: Records per write: what a publisher holds in memory at once.
CHUNK_RECORDS = 1000
#: Rejections kept in the report (all of them go to `on_reject`).
SAMPLE_REJECTIONS = 20
#: Rejected lines are kept in quarantine up to this many characters.
MAX_KEPT_TEXT = 4096


class MalformedLineError(ValueError):
    """A line is not a valid online record; the message names the line and the field."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line


class PublishableRecord(Protocol):
    @property
    def key(self) -> str:
        """The entity's id in the store: two lines of a run with the same key write the same item."""
        ...

    @property
    def as_of(self) -> str: ...

    @property
    def cold_start(self) -> bool: ...

    def to_item(self) -> OnlineItem: ...


@dataclass(frozen=True)
class Rejection:
    """A line that was not written, with why; `text` is the line itself (cut at MAX_KEPT_TEXT characters) and `key`
    its entity id when readable, kept under the domain's name for it (`key_field`)."""

    line: int
    reason: str
    key: str | None = None
    text: str = ""
    key_field: str = "key"

    def to_json(self) -> str:
        return json.dumps(
            {"line": self.line, self.key_field: self.key, "reason": self.reason, "text": self.text},
            ensure_ascii=False,
        )


@dataclass
class PublishReport:
    lines: int = 0
    written: int = 0
    cold_starts: int = 0  # written records that are cold starts
    #: Lines not written because the store holds a later as_of for the entity.
    skipped_older: int = 0
    rejected: int = 0
    retries: int = 0
    as_of: str | None = None  # the latest as_of written
    sample: list[Rejection] = field(default_factory=list)  # the first SAMPLE_REJECTIONS rejections

    @property
    def reconciles(self) -> bool:
        return self.lines == self.written + self.skipped_older + self.rejected

    def summary(self) -> dict[str, int | str | None]:
        return {
            "lines": self.lines,
            "written": self.written,
            "cold_starts": self.cold_starts,
            "skipped_older": self.skipped_older,
            "rejected": self.rejected,
            "retries": self.retries,
            "as_of": self.as_of,
        }


def json_object(raw: bytes | str, line: int) -> dict[str, Any]:
    """One JSONL line as a JSON object; raises MalformedLineError naming the line and what is wrong."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise MalformedLineError(line, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise MalformedLineError(line, "empty line")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise MalformedLineError(line, f"not JSON ({exc.msg} at column {exc.colno})") from None
    except ValueError as exc:
        raise MalformedLineError(line, str(exc)) from None
    if not isinstance(value, dict):
        raise MalformedLineError(line, f"expected a JSON object, got {type(value).__name__}")
    return value


def as_of_date(value: Any, line: int) -> str:
    """A `YYYY-MM-DD` date, checked; raises MalformedLineError otherwise."""
    try:
        if not isinstance(value, str) or len(value) != len("YYYY-MM-DD"):
            raise ValueError
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise MalformedLineError(line, f"as_of must be a date YYYY-MM-DD, got {value!r}") from None


def publish_lines(
    lines: Iterable[bytes | str],
    parse: Callable[[bytes | str, int], PublishableRecord],
    *,
    key_field: str = "key",
    table: str | None = None,
    client: Any = None,
    chunk_records: int = CHUNK_RECORDS,
    on_reject: Callable[[Rejection], None] | None = None,
    now: datetime | None = None,
) -> PublishReport:
    """Write every line `parse` accepts to the online store, chunk by chunk; report (and pass to `on_reject`) the
    others. `key_field` names the entity id in a line (for the quarantine record of a line that cannot be parsed).

    A chunk is written before it would hold an entity twice, so a repeated entity is written again (in file order)
    and no line is merged away uncounted. Raises `shelfwise.online_store.ThrottledError` when DynamoDB keeps
    throttling; publishing is idempotent, so the caller may simply run it again.
    """
    if chunk_records < 1:
        raise ValueError(f"chunk_records must be at least 1, got {chunk_records}")
    report = PublishReport()

    def reject(rejection: Rejection) -> None:
        report.rejected += 1
        if len(report.sample) < SAMPLE_REJECTIONS:
            report.sample.append(rejection)
        if on_reject is not None:
            on_reject(rejection)

    chunk: dict[str, tuple[int, PublishableRecord, str]] = {}

    def flush() -> None:
        if not chunk:
            return
        items = {key: record.to_item() for key, (_, record, _) in chunk.items()}
        result = write_items(items.values(), table, client, now=now)
        key_of = {item.entity_id: key for key, item in items.items()}
        refused = {key_of[entity_id]: reason for entity_id, reason in result.rejected}
        for key, reason in refused.items():
            number, _, text = chunk[key]
            reject(Rejection(number, f"line {number}: {reason}", key, text, key_field))
        report.written += result.written
        report.skipped_older += result.skipped_older
        kept = [record for key, (_, record, _) in chunk.items() if key not in refused]
        report.cold_starts += sum(1 for r in kept if r.cold_start)
        report.retries += result.retries
        latest = max((r.as_of for r in kept), default=None)
        if latest is not None and (report.as_of is None or latest > report.as_of):
            report.as_of = latest
        chunk.clear()

    for number, raw in enumerate(lines, start=1):
        report.lines += 1
        text = _kept_text(raw)
        try:
            record = parse(raw, number)
        except MalformedLineError as exc:
            reject(Rejection(number, str(exc), _key_of(raw, key_field), text, key_field))
            continue
        if record.key in chunk or len(chunk) >= chunk_records:
            flush()
        chunk[record.key] = (number, record, text)
    flush()
    return report


def _no_constant(name: str) -> float:
    # json.loads accepts NaN and Infinity unless told otherwise; neither can be stored or served.
    raise ValueError(f"{name} is not a number the online store can hold")


def _kept_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return text[:MAX_KEPT_TEXT]


def _key_of(raw: bytes | str, key_field: str) -> str | None:
    """The entity id of a rejected line, when it has a readable one (for the quarantine record): read from the whole
    line, which may be longer than the text kept."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    key = value.get(key_field) if isinstance(value, dict) else None
    return key if isinstance(key, str) else None
