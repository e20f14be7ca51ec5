"""Publish a churn scoring run to the online store from the batch score's `online_records.jsonl`.

Each line is one customer as the online store holds it (docs/contracts.md): `customer_id`, `features` (name ->
number, or null for a registered customer without purchase history: a cold start), `as_of` (YYYY-MM-DD),
`feature_set_version` and, for a scored customer, `probability` and `model_version`. A line of another feature-set
version than this code's is rejected, naming both. Streaming, chunking, monotonic writes and the accounting of every
line are `shelfwise.publishing`'s.

Pure Python over boto3 (no pyarrow): the publish Lambda and the local demo both call `publish_lines`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from shelfwise import publishing
from shelfwise.churn.features import FEATURE_SET, VERSION_COLUMN
from shelfwise.online_store import OnlineItem
from shelfwise.publishing import (
    ONLINE_RECORDS,
    MalformedLineError,
    Rejection,
    as_of_date,
    json_object,
)

__all__ = ["ONLINE_RECORDS", "ChurnRecord", "MalformedLineError", "Rejection", "parse_line", "publish_lines"]

#: The online store's sort key of churn items.
SORT_KEY = FEATURE_SET.name
ENTITY = FEATURE_SET.entity.name
KEY_FIELD = "customer_id"

_REQUIRED = ("customer_id", "features", "as_of", VERSION_COLUMN)
_OPTIONAL = ("probability", "model_version")
_MAX_ID = 128


@dataclass(frozen=True)
class ChurnRecord:
    """One customer's latest churn features and batch score; a cold start has `features=None` and no score."""

    customer_id: str
    features: dict[str, float] | None
    as_of: str
    feature_set_version: str = FEATURE_SET.qualified_version
    probability: float | None = None
    model_version: str | None = None

    @property
    def key(self) -> str:
        return self.customer_id

    @property
    def cold_start(self) -> bool:
        return self.features is None

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


def parse_line(raw: bytes | str, line: int) -> ChurnRecord:
    """One JSONL line as a record; raises MalformedLineError naming the line and the offending field."""
    return _record(json_object(raw, line), line)


#: Write every valid line to the online store (`shelfwise.publishing.publish_lines` with this domain's parser).
publish_lines = functools.partial(publishing.publish_lines, parse=parse_line, key_field=KEY_FIELD)


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
        as_of=as_of_date(value["as_of"], line),
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
