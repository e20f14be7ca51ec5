"""Your own transactions (a CSV of order lines) -> a world folder of kind "orders-csv" (`docs/contracts.md`).

The world has stores, products, customers and order lines, so the churn benchmark can run on your customers; it has
no truth folder, images, clickstream or stockouts.

Columns: a header row with these names, spelt exactly so. Required `order_id, customer_id, ts, sku, quantity,
unit_price`; optional `store_id, channel`. Any other column is ignored: it is not read, not compared by the duplicate
rule and not copied to the quarantine. The file is UTF-8 text; a compressed file (`.gz`, `.zip`, `.bz2`, `.xz`)
is recognised by its suffix.

Mapping:
- Ids (`order_id`, `customer_id`, `sku`, `store_id`) are kept exactly as given, only stripped of surrounding blanks,
  so results join back to your systems: `cust-007` stays `cust-007`, `" 42 "` becomes `42`, `17850.0` stays
  `17850.0` and `abc` and `ABC` are two skus. An empty `customer_id` is a walk-in (null customer).
- `ts` is ISO 8601: a date (`2024-03-01`, read as midnight) or a date-time (`2024-03-01 14:05`,
  `2024-03-01T14:05:09.250`), optionally followed by a UTC offset (`Z`, `+02:00`, `+0200`, `+02`). A time with an
  offset is converted to naive UTC (`2024-03-01T14:05+02:00` -> `2024-03-01 12:05`). A time without one is taken to
  be UTC already, NOT local time: add the offset, or convert to UTC, before loading local times. Rows may mix the
  forms. Digits below the microsecond are dropped.
- `quantity` is an integer (`3`, `-1`; a whole `3.0` is accepted). A negative quantity is a return and is loaded as a
  return line.
- `unit_price` is a number (`2.55`; no currency sign or thousands separator). Zero or negative prices are quarantined.
- `channel` is `store` or `online` in any case. When the column is absent or the value empty: `store` if the line has
  a store id, else `online`.
- `store_id`, when the column is absent or the value empty: store `online` for an online line, store `store` (one
  unnamed physical store) for a store line.
- `line_no` is the line's position within its order in the file (1-based, quarantined lines included), so a loaded
  line can be traced back and a gap marks a quarantined line. `promo` is false: the file does not say.
- Stores: one per store id, region `unknown`, format `online` when all its loaded lines are online, else
  `neighborhood` (the schema's generic physical format: the file does not say), open date = its first loaded sale.
- Products: one per sku, department and category `general`, brand empty, base price = median unit price of its
  loaded lines (all positive), launch date = its first loaded sale, no end date, no image.
- Customers: one per customer id, signup date = the date of the first loaded line, region `unknown`, channel = the
  channel of that line.
- Dates (open, launch, signup) are the UTC date of the naive UTC time stamp.

Cleaning rules (`RULES`) are applied in order; a row is counted under the first rule it meets and written with its
original values (the columns read, as text), its `source_row` (1-based, header and blank lines excluded) and a
`reason` to `quarantine/<rule>.parquet`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shelfwise.loaders.report import CleaningRule, LoadReport, apply_rules
from shelfwise.loaders.world_files import (
    Manifest,
    prepare_out_dir,
    require_columns,
    write_quarantine,
    write_transactions_world,
)

KIND = "orders-csv"
GENERATOR_VERSION = "shelfwise.loaders.orders_csv/1"
REQUIRED = ["order_id", "customer_id", "ts", "sku", "quantity", "unit_price"]
OPTIONAL = ["store_id", "channel"]
STORE, ONLINE = "store", "online"
#: The store of a line without a store id, by its channel.
DEFAULT_STORE = {ONLINE: "online", STORE: "store"}
UNKNOWN_REGION = "unknown"
PHYSICAL_FORMAT = "neighborhood"
GENERAL = "general"

#: An ISO 8601 date, or date-time with an optional UTC offset (pandas alone would also take `2024` or `2024-03`).
TS_PATTERN = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?: ?(?:Z|[+-]\d{2}(?::?\d{2})?))?)?"
#: Past `YYYY-MM-DD HH:MM` only seconds, a fraction or an offset can follow, and only an offset has Z, + or -.
_TIME_END = len("YYYY-MM-DD HH:MM")
#: An integer, or a whole number written with a decimal point; 15 digits keep it exact as a float.
QUANTITY_PATTERN = r"[+-]?\d{1,15}(?:\.0*)?"


@dataclass
class _Parsed:
    """The source rows (original text, `source_row`) and the values parsed from them (NaN/NaT where unparseable)."""

    raw: pd.DataFrame
    columns: list[str]
    order_id: pd.Series
    customer: pd.Series
    sku: pd.Series
    quantity: pd.Series
    price: pd.Series
    ts: pd.Series
    ts_offset: pd.Series
    store_text: pd.Series
    channel_text: pd.Series
    channel: pd.Series
    store: pd.Series


#: A check returns the reason of every row it selects, indexed by those rows only.
_Check = Callable[[_Parsed], pd.Series]

_EXPECTED = {
    "order_id": "an order id",
    "sku": "a sku",
    "quantity": "an integer",
    "ts": "an ISO 8601 date or date-time (YYYY-MM-DD[ HH:MM[:SS]][+HH:MM])",
    "unit_price": "a number",
}


def _quoted(values: pd.Series) -> pd.Series:
    return values.map(repr)


def _check_unparseable(p: _Parsed) -> pd.Series:
    problems = {
        "order_id": p.order_id == "",
        "ts": p.ts.isna(),
        "sku": p.sku == "",
        "quantity": p.quantity.isna(),
        "unit_price": p.price.isna(),
    }
    any_bad = pd.concat(problems, axis=1).any(axis=1)
    reason = pd.Series("", index=p.raw.index[any_bad], dtype=object)
    # Name every malformed field of a row, not just the first, in the order of the columns.
    for name in REQUIRED:
        if name not in problems:
            continue
        rows = p.raw.index[problems[name]]
        if not len(rows):
            continue
        text = p.raw.loc[rows, name]
        empty = text.str.strip() == ""
        piece = (name + " " + _quoted(text) + " is not " + _EXPECTED[name]).where(~empty, name + " is empty")
        before = reason[rows]
        reason[rows] = before.where(before == "", before + "; ") + piece
    return reason


def _check_channel(p: _Parsed) -> pd.Series:
    if "channel" not in p.raw:
        return pd.Series(dtype=object)
    rows = p.raw.index[~p.channel_text.isin(["", STORE, ONLINE])]
    return "channel " + _quoted(p.raw.loc[rows, "channel"]) + f" is not {STORE!r} or {ONLINE!r}"


def _check_duplicate(p: _Parsed) -> pd.Series:
    first = p.raw.groupby(p.columns, sort=False)["source_row"].transform("min")
    first = first[first != p.raw["source_row"]]
    return "exact duplicate of source row " + first.astype(str)


def _check_zero_quantity(p: _Parsed) -> pd.Series:
    rows = p.raw.index[p.quantity == 0]
    return "quantity " + _quoted(p.raw.loc[rows, "quantity"]) + " is zero"


def _check_price(p: _Parsed) -> pd.Series:
    rows = p.raw.index[p.price <= 0]
    return "unit_price " + _quoted(p.raw.loc[rows, "unit_price"]) + " is not positive (free or unpriced line)"


_CHECKS: list[tuple[CleaningRule, _Check]] = [
    (
        CleaningRule(
            "unparseable",
            "order_id or sku empty, ts not an ISO 8601 date-time, quantity not an integer or unit_price not a number "
            "(the reason names every such field)",
        ),
        _check_unparseable,
    ),
    (
        CleaningRule("unknown_channel", "channel neither 'store' nor 'online' (any case; empty = default)"),
        _check_channel,
    ),
    (
        CleaningRule("exact_duplicate", "every column read equal to an earlier line of the file"),
        _check_duplicate,
    ),
    (CleaningRule("zero_quantity", "a line for zero units"), _check_zero_quantity),
    (CleaningRule("non_positive_price", "zero or negative unit price"), _check_price),
]
RULES: tuple[CleaningRule, ...] = tuple(rule for rule, _ in _CHECKS)


def read_source(source: Path) -> pd.DataFrame:
    """The source rows as text (the columns this loader reads), with `source_row`; fails naming missing columns."""
    try:
        header = list(pd.read_csv(source, nrows=0, dtype=str).columns)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{source}: the file is empty (expected a header row: {', '.join(REQUIRED)})") from None
    require_columns(source, header, REQUIRED)
    columns = REQUIRED + [name for name in OPTIONAL if name in header]
    raw = pd.read_csv(source, dtype=str, na_filter=False, usecols=columns)[columns]
    raw["source_row"] = np.arange(1, len(raw) + 1, dtype=np.int64)
    return raw


def parse(raw: pd.DataFrame) -> _Parsed:
    """Parse every field vectorised; unparseable values become NaN/NaT for the `unparseable` rule to catch."""
    columns = [name for name in raw.columns if name != "source_row"]
    quantity_text = raw["quantity"].str.strip()
    quantity = pd.to_numeric(quantity_text.where(quantity_text.str.fullmatch(QUANTITY_PATTERN)), errors="coerce")
    price = pd.to_numeric(raw["unit_price"].str.strip(), errors="coerce")
    price = price.where(np.isfinite(price))
    ts, ts_offset = to_naive_utc(raw["ts"].str.strip())
    customer = raw["customer_id"].str.strip()
    blank = pd.Series("", index=raw.index, dtype=object)
    store_text = raw["store_id"].str.strip() if "store_id" in raw else blank
    channel_text = raw["channel"].str.strip().str.lower() if "channel" in raw else blank
    default_channel = pd.Series(np.where(store_text != "", STORE, ONLINE), index=raw.index, dtype=object)
    channel = channel_text.where(channel_text != "", default_channel)
    store = store_text.where(store_text != "", channel.map(DEFAULT_STORE))
    return _Parsed(
        raw=raw,
        columns=columns,
        order_id=raw["order_id"].str.strip(),
        customer=customer.astype(object).where(customer != "", None),
        sku=raw["sku"].str.strip(),
        quantity=quantity,
        price=price,
        ts=ts,
        ts_offset=ts_offset,
        store_text=store_text,
        channel_text=channel_text,
        channel=channel,
        store=store,
    )


def to_naive_utc(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """ISO 8601 text -> (naive UTC, whether it had an offset); NaT where the text is not a date or date-time.

    A time with an offset is converted to UTC, one without is taken as UTC. The two kinds are parsed apart: given
    both, `pd.to_datetime(..., utc=True)` reads a time without an offset that follows one with it in that offset.
    """
    valid = text.str.fullmatch(TS_PATTERN).fillna(False).astype(bool)
    offset = valid & text.str[_TIME_END:].str.contains("[Z+-]", regex=True).fillna(False).astype(bool)
    naive = valid & ~offset
    utc = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    utc[naive] = pd.to_datetime(text[naive], format="ISO8601", errors="coerce")
    utc[offset] = pd.to_datetime(text[offset], format="ISO8601", utc=True, errors="coerce").dt.tz_localize(None)
    return utc.dt.floor("us"), offset


def load_orders_csv(source: Path, out_dir: Path) -> LoadReport:
    """Map an orders CSV into a world folder at `out_dir`; returns the reconciled accounting."""
    raw = read_source(source)
    parsed = parse(raw)
    rule, reason = apply_rules(raw.index, _CHECKS, parsed)
    loaded = rule == ""
    counts = {spec.name: int((rule == spec.name).sum()) for spec in RULES}
    if not loaded.any():
        found = ", ".join(f"{name}: {count:,}" for name, count in counts.items() if count)
        if not len(raw):
            raise ValueError(f"{source}: no rows after the header")
        raise ValueError(f"{source}: none of its {len(raw):,} rows can be loaded ({found})")
    prepare_out_dir(out_dir)
    for spec in RULES:
        selected = rule == spec.name
        if counts[spec.name]:
            write_quarantine(out_dir, spec.name, raw[selected].assign(reason=reason[selected]))
    lines = _order_lines(parsed, loaded)
    manifest = Manifest(
        kind=KIND,
        start_date=lines["ts"].min().date(),
        end_date=lines["ts"].max().date(),
        generator_version=GENERATOR_VERSION,
        extra={"source": {"name": "orders CSV", "file": source.name, "rows": len(raw)}, "quarantine": counts},
    )
    _write_world(lines, manifest, out_dir)
    ids = {"order_id": parsed.order_id, "customer_id": parsed.customer.fillna(""), "sku": parsed.sku}
    if "store_id" in raw:
        ids["store_id"] = parsed.store_text
    report = LoadReport(
        source=source,
        out_dir=out_dir,
        input_rows=len(raw),
        loaded_rows=int(loaded.sum()),
        rules=counts,
        rule_descriptions={spec.name: spec.description for spec in RULES},
        normalised={
            "id stripped of blanks": int(
                pd.concat([raw.loc[loaded, name] != stripped[loaded] for name, stripped in ids.items()], axis=1)
                .any(axis=1)
                .sum()
            ),
            "ts with UTC offset -> naive UTC": int(parsed.ts_offset[loaded].sum()),
            "channel defaulted (absent or empty)": int((parsed.channel_text[loaded] == "").sum()),
            "store_id defaulted (absent or empty)": int((parsed.store_text[loaded] == "").sum()),
        },
    )
    report.assert_reconciles()
    return report


def _order_lines(p: _Parsed, loaded: pd.Series) -> pd.DataFrame:
    """The loaded rows as order lines plus `source_row` (for the dimensions), sorted by time."""
    line_no = p.order_id.groupby(p.order_id, sort=False).cumcount() + 1
    frame = pd.DataFrame(
        {
            "order_id": p.order_id,
            "line_no": line_no.astype(np.int64),
            "ts": p.ts,
            "store_id": p.store,
            "customer_id": p.customer,
            "sku": p.sku,
            "quantity": p.quantity.fillna(0).astype(np.int64),
            "unit_price": p.price.astype(np.float64),
            "promo": False,
            "channel": p.channel,
            "source_row": p.raw["source_row"],
        }
    )[loaded]
    return frame.sort_values(["ts", "order_id", "line_no"], kind="stable").reset_index(drop=True)


def _write_world(lines: pd.DataFrame, manifest: Manifest, out_dir: Path) -> None:
    stores = build_stores(lines)
    products = build_products(lines)
    customers = build_customers(lines)
    write_transactions_world(out_dir, manifest, stores=stores, products=products, customers=customers, lines=lines)


def build_stores(lines: pd.DataFrame) -> pd.DataFrame:
    """One store per store id, opened on its first loaded sale; `online` unless it has a store-channel line."""
    per_store = (
        lines.assign(physical=lines["channel"] == STORE)
        .groupby("store_id")
        .agg(first=("ts", "min"), physical=("physical", "any"))
    )
    return pd.DataFrame(
        {
            "store_id": per_store.index.to_numpy(),
            "region": UNKNOWN_REGION,
            "format": np.where(per_store["physical"].to_numpy(dtype=bool), PHYSICAL_FORMAT, ONLINE),
            "open_date": per_store["first"].dt.date.to_numpy(),
        }
    )


def build_customers(lines: pd.DataFrame) -> pd.DataFrame:
    """Known customers, signed up on their first loaded line, on the channel of that line."""
    known = lines[lines["customer_id"].notna()].sort_values(["ts", "source_row"], kind="stable")
    first = known.drop_duplicates("customer_id").sort_values("customer_id", kind="stable")
    return pd.DataFrame(
        {
            "customer_id": first["customer_id"].to_numpy(),
            "signup_date": first["ts"].dt.date.to_numpy(),
            "region": UNKNOWN_REGION,
            "channel": first["channel"].to_numpy(),
        }
    )


def build_products(lines: pd.DataFrame) -> pd.DataFrame:
    """One product per sku from its loaded lines (which all have a positive price)."""
    per_sku = lines.groupby("sku").agg(price=("unit_price", "median"), first=("ts", "min"))
    return pd.DataFrame(
        {
            "sku": per_sku.index.to_numpy(),
            "department": GENERAL,
            "category": GENERAL,
            "brand": "",
            "base_price": per_sku["price"].to_numpy(dtype=np.float64),
            "launch_date": per_sku["first"].dt.date.to_numpy(),
            "end_date": None,
            "image_key": None,
            "attributes": [{} for _ in range(len(per_sku))],
        }
    )
