"""Publish a churn scoring run to the online store from the batch score's `online_records.jsonl`.

Each line is one customer as the online store holds it (docs/contracts.md): `customer_id`, `features` (name ->
number, or null for a registered customer without purchase history: a cold start), `as_of` (YYYY-MM-DD),
`feature_set_version` and, for a scored customer, `probability` and `model_version`. Lines are parsed as they
stream in and written in chunks, so memory is bounded by the chunk size whatever the size of the run. Every line is
accounted for: lines = written + skipped_older + rejected. A line of another feature-set version than this code's
is rejected, naming both; a line older than what the store holds for the customer is skipped (monotonic writes,
`shelfwise.online_store`), so a redriven old run cannot roll customers back.

Pure Python over boto3 (no pyarrow): the publish Lambda and the local demo both call `publish_lines`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shelfwise.churn.features import FEATURE_SET, VERSION_COLUMN
from shelfwise.online_store import OnlineItem, write_items

#: The online store's sort key of churn items.
SORT_KEY = FEATURE_SET.name
ENTITY = FEATURE_SET.entity.name

#: The file the batch score writes beside `predictions.parquet`.
ONLINE_RECORDS = "online_records.jsonl"
#: Records per call of `write_churn_records`: what the publisher holds in memory at once.
CHUNK_RECORDS = 1000
#: Rejections kept in the report (all of them go to `on_reject`).
SAMPLE_REJECTIONS = 20
#: Rejected lines are kept in quarantine up to this many characters.
MAX_KEPT_TEXT = 4096

_REQUIRED = ("customer_id", "features", "as_of", VERSION_COLUMN)
_OPTIONAL = ("probability", "model_version")
_MAX_ID = 128


class MalformedLineError(ValueError):
    """A line of `online_records.jsonl` is not a valid online record; the message names the line and the field."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line


@dataclass(frozen=True)
class ChurnRecord:
    """One customer's latest churn features and batch score; a cold start has `features=None` and no score."""

    customer_id: str
    features: dict[str, float] | None
    as_of: str
    feature_set_version: str = FEATURE_SET.qualified_version
    probability: float | None = None
    model_version: str | None = None

    def to_item(self) -> OnlineItem:
        return OnlineItem(
            entity=ENTITY,
            entity_id=self.customer_id,
            feature_set=SORT_KEY,
            as_of=self.as_of,
            feature_set_version=self.feature_set_version,
            attributes={
                "features": self.features,
                "probability": self.probability,
                "model_version": self.model_version,
            },
        )


@dataclass(frozen=True)
class Rejection:
    """A line that was not written, with why; `text` is the line itself (cut at MAX_KEPT_TEXT characters)."""

    line: int
    reason: str
    customer_id: str | None = None
    text: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {"line": self.line, "customer_id": self.customer_id, "reason": self.reason, "text": self.text},
            ensure_ascii=False,
        )


@dataclass
class PublishReport:
    lines: int = 0
    written: int = 0
    cold_starts: int = 0  # written records without features
    #: Lines not written because the store holds a later as_of for the customer.
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


def parse_line(raw: bytes | str, line: int) -> ChurnRecord:
    """One JSONL line as a record; raises MalformedLineError naming the line and the offending field."""
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
    return _record(value, line)


def publish_lines(
    lines: Iterable[bytes | str],
    *,
    table: str | None = None,
    client: Any = None,
    chunk_records: int = CHUNK_RECORDS,
    on_reject: Callable[[Rejection], None] | None = None,
    now: datetime | None = None,
) -> PublishReport:
    """Write every valid line to the online store, chunk by chunk; report (and pass to `on_reject`) the others.

    A chunk is written before it would hold a customer twice, so a repeated customer is written again (in file
    order) and no line is merged away uncounted. Raises `shelfwise.online_store.ThrottledError` when DynamoDB keeps
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

    chunk: dict[str, tuple[int, ChurnRecord, str]] = {}

    def flush() -> None:
        if not chunk:
            return
        result = write_items((r.to_item() for _, r, _ in chunk.values()), table, client, now=now)
        refused = dict(result.rejected)
        for customer_id, reason in refused.items():
            number, _, text = chunk[customer_id]
            reject(Rejection(number, f"line {number}: {reason}", customer_id, text))
        report.written += result.written
        report.skipped_older += result.skipped_older
        report.cold_starts += sum(1 for c, (_, r, _) in chunk.items() if r.features is None and c not in refused)
        report.retries += result.retries
        latest = max((r.as_of for c, (_, r, _) in chunk.items() if c not in refused), default=None)
        if latest is not None and (report.as_of is None or latest > report.as_of):
            report.as_of = latest
        chunk.clear()

    for number, raw in enumerate(lines, start=1):
        report.lines += 1
        text = _kept_text(raw)
        try:
            record = parse_line(raw, number)
        except MalformedLineError as exc:
            reject(Rejection(number, str(exc), _customer_id_of(text), text))
            continue
        if record.customer_id in chunk or len(chunk) >= chunk_records:
            flush()
        chunk[record.customer_id] = (number, record, text)
    flush()
    return report


# -- validation --------------------------------------------------------------------------------------------------


def _record(value: dict[str, Any], line: int) -> ChurnRecord:
    missing = [name for name in _REQUIRED if name not in value]
    if missing:
        raise MalformedLineError(line, f"missing field {missing[0]!r}")
    unknown = sorted(set(value) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise MalformedLineError(line, f"unknown field {unknown[0]!r}")
    customer_id = value["customer_id"]
    if not isinstance(customer_id, str) or not 0 < len(customer_id) <= _MAX_ID:
        raise MalformedLineError(line, f"customer_id must be a string of 1-{_MAX_ID} characters, got {customer_id!r}")
    features = _features(value["features"], line)
    probability = value.get("probability")
    if probability is not None:
        probability = _number("probability", probability, line)
        if not 0 <= probability <= 1:
            raise MalformedLineError(line, f"probability must be in [0, 1], got {probability}")
    if features is None and probability is not None:
        raise MalformedLineError(line, "a cold start (features null) has no probability")
    model_version = value.get("model_version")
    if model_version is not None and (not isinstance(model_version, str) or not model_version):
        raise MalformedLineError(line, f"model_version must be a non-empty string or null, got {model_version!r}")
    version = value[VERSION_COLUMN]
    if version != FEATURE_SET.qualified_version:
        raise MalformedLineError(
            line, f"{VERSION_COLUMN} is {version!r}; this publisher serves {FEATURE_SET.qualified_version!r}"
        )
    return ChurnRecord(
        customer_id=customer_id,
        features=features,
        as_of=_as_of(value["as_of"], line),
        feature_set_version=version,
        probability=probability,
        model_version=model_version,
    )


def _features(value: Any, line: int) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise MalformedLineError(line, f"features must be a non-empty object or null, got {value!r}")
    return {name: _number(f"features.{name}", number, line) for name, number in value.items()}


def _number(name: str, value: Any, line: int) -> float:
    # bool is an int in Python, but true/false in a feature is a producer bug, not a 1/0.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MalformedLineError(line, f"{name} must be a finite number, got {value!r}")
    return float(value)


def _as_of(value: Any, line: int) -> str:
    try:
        if not isinstance(value, str) or len(value) != len("YYYY-MM-DD"):
            raise ValueError
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise MalformedLineError(line, f"as_of must be a date YYYY-MM-DD, got {value!r}") from None


def _no_constant(name: str) -> float:
    # json.loads accepts NaN and Infinity unless told otherwise; neither can be stored or scored.
    raise ValueError(f"{name} is not a number the online store can hold")


def _kept_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return text[:MAX_KEPT_TEXT]


def _customer_id_of(text: str) -> str | None:
    """The customer id of a rejected line, when it has a readable one (for the quarantine record)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    customer_id = value.get("customer_id") if isinstance(value, dict) else None
    return customer_id if isinstance(customer_id, str) else None
