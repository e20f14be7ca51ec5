"""How demand forecasts are named: the feature-set version, the entities, and the ids of series and sums.

Store ids and SKUs are whatever the retailer's data holds (`#`, spaces, any script), so `<store_id>#<sku>` alone
would be ambiguous (`A#B` + `C` and `A` + `B#C`). The series id is therefore length-prefixed:
`<number of characters of store_id>:<store_id>#<sku>`, e.g. `4:CA_1#FOODS_3_090`. The count says where the store
id ends, so every pair has exactly one id and every id one pair; the `#` keeps it readable in the console. A sum's id
is `<level>#<key>` (`total#` for the total, which has no key); a level never contains `#`, so the first `#` ends it.

Standard library only: the Glue job, the pipeline steps, the publisher and the API all import it.
"""

from __future__ import annotations

import unicodedata
from typing import Final, Literal, get_args

#: The version of the demand features' definitions, stamped on every row, model and served forecast.
FEATURE_SET_VERSION: Final = "demand/1"
ENTITY: Final = "forecast"
AGGREGATE_ENTITY: Final = "forecast_aggregate"
#: The online store's sort key of every demand item.
SORT_KEY: Final = "demand"
#: The longest store id or SKU: two of them, their separators and a two-digit length fit the online store's
#: 128-character ids.
MAX_ID_CHARS: Final = 60
#: Unicode categories an id may not hold: control, format (invisible), surrogate, line and paragraph separators.
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def checked_id(name: str, value: str) -> str:
    """`value` if it can be a store id, SKU, category or group key; ValueError naming `name` otherwise."""
    if not 0 < len(value) <= MAX_ID_CHARS:
        raise ValueError(f"{name} must be 1-{MAX_ID_CHARS} characters, got {len(value)}")
    refused = next((c for c in value if unicodedata.category(c) in _REFUSED_CATEGORIES), None)
    if refused is not None:
        raise ValueError(f"{name} may not hold control or invisible characters (found U+{ord(refused):04X})")
    return value


AggregateLevel = Literal["region", "store", "category", "department", "total"]
LEVELS: tuple[AggregateLevel, ...] = get_args(AggregateLevel)
TOTAL: Final = "total"


class MalformedIdError(ValueError):
    """An id that `series_id` or `aggregate_id` does not write."""


# -- ids ---------------------------------------------------------------------------------------------------------


def series_id(store_id: str, sku: str) -> str:
    """`<len(store_id)>:<store_id>#<sku>`: one id per pair, whatever characters the two hold (module doc)."""
    for name, value in (("store_id", store_id), ("sku", sku)):
        if not 0 < len(value) <= MAX_ID_CHARS:
            raise ValueError(f"{name} must be 1-{MAX_ID_CHARS} characters, got {len(value)}")
    return f"{len(store_id)}:{store_id}#{sku}"


def parse_series_id(entity_id: str) -> tuple[str, str]:
    """(store_id, sku) of a `series_id`; raises MalformedIdError for anything `series_id` does not write."""
    length, colon, rest = entity_id.partition(":")
    # Only canonical counts (no sign, no leading zero), so that no pair has a second id.
    if not colon or not length.isascii() or not length.isdigit() or length.startswith("0"):
        raise MalformedIdError(f"series id {entity_id!r} does not start with the store id's length")
    size = int(length)
    store_id, separator, sku = rest[:size], rest[size : size + 1], rest[size + 1 :]
    if len(store_id) != size or separator != "#" or not sku:
        raise MalformedIdError(f"series id {entity_id!r} is not <length>:<store_id>#<sku>")
    return store_id, sku


def aggregate_id(level: AggregateLevel, key: str | None) -> str:
    """`<level>#<key>`; `total#` for the total."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if (key is None) != (level == TOTAL):
        raise ValueError("the total has no key" if level == TOTAL else f"level {level} needs a key")
    if key is not None and not 0 < len(key) <= MAX_ID_CHARS:
        raise ValueError(f"key must be 1-{MAX_ID_CHARS} characters, got {len(key)}")
    return f"{level}#{key or ''}"


def parse_aggregate_id(entity_id: str) -> tuple[AggregateLevel, str | None]:
    """(level, key) of an `aggregate_id`; raises MalformedIdError for anything `aggregate_id` does not write."""
    level, separator, key = entity_id.partition("#")
    if not separator or level not in LEVELS or (level == TOTAL) != (key == ""):
        raise MalformedIdError(f"aggregate id {entity_id!r} is not <level>#<key>")
    return level, key or None
