"""Your own daily sales (a CSV of units per day, store and SKU) -> a world folder of kind "sales-csv".

The world has stores, products, listings and order lines, so the demand forecasting domain can run on your history;
it has no customers (an empty table: the file has none, so churn has nothing to score), truth folder, images,
clickstream or stockouts.

Columns: a header row with these names, spelt exactly so. Required `date, store_id, sku, units`; optional
`unit_price, promo, category, department, region`. Any other column is ignored. The file is UTF-8 text; a
compressed file (`.gz`, `.zip`, `.bz2`, `.xz`) is recognised by its suffix.

Mapping:
- `store_id` and `sku` are kept exactly as given, surrounding blanks and case included (`007` stays `007`, `A-1 `
  stays `A-1 `, `abc` and `ABC` are two skus), so forecasts join back to the file byte for byte. An id that is
  empty or only blanks is missing.
- `date` is an ISO date `YYYY-MM-DD` (surrounding blanks ignored).
- `units` is an integer (`3`, `-1`; a whole `3.0` is accepted): the day's net units of the SKU at the store.
  - above zero: one order line of that quantity;
  - below zero (returns exceeding sales that day): one return line, as the world writes returns;
  - zero: on sale, none sold. No order line (curation quarantines zero-quantity lines); the day still counts
    towards the listing.
- An order line: `order_id` = `<date>:<length of store_id>:<store_id>:<sku>` (the length keeps it unique whatever
  characters the ids hold), `line_no` 1, `ts` the date at 12:00, customer null (a walk-in), channel `store` for
  every line (the file does not say where a sale happened; a store id of an online shop is still a `store` line),
  `promo` from the column, `unit_price` from the column, or the SKU's base price when absent or empty.
- `unit_price` is a number at least 0 (no currency sign or thousands separator); empty = not given.
- `promo` is one of `true, false, yes, no, 1, 0` in any case; empty or absent = false.
- `category`, `department` (per SKU) and `region` (per store) are labels, stripped of blanks: the value on the
  latest row that has one, else `unknown`.
- Listings: one per store and sku, from its first row to its last (zero-unit rows included), end date null when
  that is the file's last date.
- Products: one per sku, brand empty, base price = median positive `unit_price` of its rows (1.0 when it has none,
  e.g. without the column: price ratios are then all 1), launch date = its first row, end date = its last row when
  that is before the file's last date, else null.
- Stores: one per store id, format `neighborhood` (the schema needs a format and the file does not say), open date
  = its first row.
- Regional holidays (optional, a second file: `shelfwise.loaders.regional_holidays`): the raw `regional_holidays`
  table, its unreadable rows in `quarantine/regional_holidays.parquet`.

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

from shelfwise.loaders.orders_csv import QUANTITY_PATTERN
from shelfwise.loaders.regional_holidays import holidays_report, read_holidays_csv
from shelfwise.loaders.report import CleaningRule, LoadReport, apply_rules
from shelfwise.loaders.world_files import (
    Manifest,
    prepare_out_dir,
    require_columns,
    to_arrow,
    write_parquet,
    write_quarantine,
    write_transactions_world,
)
from shelfwise.schemas import CUSTOMER_SCHEMA, LISTING_SCHEMA, REGIONAL_HOLIDAY_SCHEMA

KIND = "sales-csv"
GENERATOR_VERSION = "shelfwise.loaders.sales_csv/1"
REQUIRED = ["date", "store_id", "sku", "units"]
OPTIONAL = ["unit_price", "promo", "category", "department", "region"]
LABELS = ["category", "department", "region"]
UNKNOWN = "unknown"
STORE_FORMAT = "neighborhood"
CHANNEL = "store"
#: The base price of a SKU without a positive price: every price ratio is then 1.
DEFAULT_BASE_PRICE = 1.0
#: A daily total has no time of day; noon stays on its date under any UTC offset of up to 12 hours.
SALE_HOUR = pd.Timedelta(hours=12)
DATE_PATTERN = r"\d{4}-\d{2}-\d{2}"
PROMO_TRUE = ("true", "yes", "1")
PROMO_FALSE = ("false", "no", "0", "")


@dataclass
class _Parsed:
    """The source rows (original text, `source_row`) and the values parsed from them."""

    raw: pd.DataFrame
    date: pd.Series  # NaT where not a date
    units: pd.Series  # NaN where not an integer
    price: pd.Series  # NaN where not given or not a number
    promo: pd.Series  # False where not given or not a promo value
    labels: pd.DataFrame  # LABELS stripped, "" where not given
    no_store: pd.Series
    no_sku: pd.Series
    bad_price: pd.Series
    bad_promo: pd.Series

    @property
    def readable(self) -> pd.Series:
        """Rows that break no field rule (the candidates of the duplicate rule)."""
        bad_field = self.date.isna() | self.units.isna() | self.bad_price | self.bad_promo
        return ~(self.no_store | self.no_sku | bad_field)


#: A check returns the reason of every row it selects, indexed by those rows only.
_Check = Callable[[_Parsed], pd.Series]


def _malformed(p: _Parsed, mask: pd.Series, column: str, expected: str) -> pd.Series:
    """`<column> '<text>' is not <expected>`, or `<column> is empty`, for the rows of `mask`."""
    if column not in p.raw:  # an optional column the file lacks
        return pd.Series(dtype=object)
    text = p.raw.loc[mask, column]
    reason: pd.Series = column + " " + text.map(repr) + " is not " + expected
    return reason.where(text.str.strip() != "", column + " is empty")


def _check_missing_id(p: _Parsed) -> pd.Series:
    store, sku = "store_id is empty or blank", "sku is empty or blank"
    reason = np.select([p.no_store & p.no_sku, p.no_store, p.no_sku], [f"{store}; {sku}", store, sku], "")
    return pd.Series(reason, index=p.raw.index, dtype=object)[p.no_store | p.no_sku]


def _check_date(p: _Parsed) -> pd.Series:
    return _malformed(p, p.date.isna(), "date", "a date YYYY-MM-DD")


def _check_units(p: _Parsed) -> pd.Series:
    return _malformed(p, p.units.isna(), "units", "an integer")


def _check_price(p: _Parsed) -> pd.Series:
    return _malformed(p, p.bad_price, "unit_price", "a number at least 0")


def _check_promo(p: _Parsed) -> pd.Series:
    return _malformed(p, p.bad_promo, "promo", "true, false, yes, no, 1 or 0")


def _check_duplicate(p: _Parsed) -> pd.Series:
    # Among readable rows only, so that a malformed row does not displace a good one for the same day.
    readable = p.raw[p.readable]
    rows = readable["source_row"]
    first = rows.groupby([p.date[p.readable], readable["store_id"], readable["sku"]]).transform("min")
    first = first[first != rows]
    return "duplicate of source row " + first.astype(str) + " (same date, store_id and sku)"


_CHECKS: list[tuple[CleaningRule, _Check]] = [
    (CleaningRule("missing_id", "store_id or sku empty or only blanks"), _check_missing_id),
    (CleaningRule("bad_date", "date not an ISO date YYYY-MM-DD"), _check_date),
    (CleaningRule("bad_units", "units not an integer"), _check_units),
    (CleaningRule("bad_price", "unit_price given but not a number at least 0"), _check_price),
    (CleaningRule("bad_promo", "promo not one of true/false/yes/no/1/0 (any case; empty = false)"), _check_promo),
    (
        CleaningRule("duplicate", "the same date, store_id and sku as an earlier row (the first is kept)"),
        _check_duplicate,
    ),
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
    # No NA parsing and no blank skipping: ids must reach the world exactly as written.
    raw = pd.read_csv(source, dtype=str, na_filter=False, usecols=columns)[columns]
    raw["source_row"] = np.arange(1, len(raw) + 1, dtype=np.int64)
    return raw


def _text(raw: pd.DataFrame, column: str) -> pd.Series:
    """A column's values stripped of blanks; all empty when the file lacks the (optional) column."""
    return raw[column].str.strip() if column in raw else pd.Series("", index=raw.index, dtype=object)


def parse(raw: pd.DataFrame) -> _Parsed:
    """Parse every field vectorised; unreadable values are flagged for the cleaning rules to catch."""
    date_text = raw["date"].str.strip()
    date = pd.to_datetime(date_text.where(date_text.str.fullmatch(DATE_PATTERN)), format="%Y-%m-%d", errors="coerce")
    units_text = raw["units"].str.strip()
    units = pd.to_numeric(units_text.where(units_text.str.fullmatch(QUANTITY_PATTERN)), errors="coerce")
    price_text = _text(raw, "unit_price")
    price = pd.to_numeric(price_text, errors="coerce")
    price = price.where(np.isfinite(price))
    promo_text = _text(raw, "promo").str.lower()
    return _Parsed(
        raw=raw,
        date=date,
        units=units,
        price=price,
        promo=promo_text.isin(PROMO_TRUE),
        labels=pd.DataFrame({name: _text(raw, name) for name in LABELS}),
        no_store=raw["store_id"].str.strip() == "",
        no_sku=raw["sku"].str.strip() == "",
        bad_price=(price_text != "") & ~(price >= 0),
        bad_promo=~promo_text.isin(PROMO_TRUE + PROMO_FALSE),
    )


def load_sales_csv(source: Path, out_dir: Path, holidays: Path | None = None) -> LoadReport:
    """Map a daily sales CSV (and a regional holiday calendar, when given) into a world folder at `out_dir`; returns
    the reconciled accounting of the sales rows."""
    raw = read_source(source)
    calendar = read_holidays_csv(holidays) if holidays is not None else None
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
    days = loaded_days(parsed, loaded)
    manifest = Manifest(
        kind=KIND,
        start_date=days["date"].min().date(),
        end_date=days["date"].max().date(),
        generator_version=GENERATOR_VERSION,
        extra={"source": {"name": "sales CSV", "file": source.name, "rows": len(raw)}, "quarantine": counts},
    )
    if calendar is not None and holidays is not None:
        write_parquet(to_arrow(calendar.holidays, REGIONAL_HOLIDAY_SCHEMA), out_dir / "regional_holidays.parquet")
        manifest.add_table("regional_holidays", len(calendar.holidays), ["regional_holidays.parquet"])
        if len(calendar.quarantined):
            write_quarantine(out_dir, "regional_holidays", calendar.quarantined)
    _write_world(days, manifest, out_dir)
    sold = loaded & (parsed.units != 0)
    report = LoadReport(
        source=source,
        out_dir=out_dir,
        input_rows=len(raw),
        loaded_rows=int(loaded.sum()),
        rules=counts,
        rule_descriptions={spec.name: spec.description for spec in RULES},
        normalised={
            "unit_price absent or empty -> the SKU's base price": int((sold & parsed.price.isna()).sum()),
            "promo absent or empty -> false": int((sold & (_text(raw, "promo") == "")).sum()),
        },
    )
    report.assert_reconciles()
    if calendar is not None and holidays is not None:
        report.companions.append(holidays_report(holidays, out_dir, calendar))
    return report


def loaded_days(p: _Parsed, loaded: pd.Series) -> pd.DataFrame:
    """One row per loaded store x SKU x day (zero units included), in file order."""
    frame = pd.DataFrame(
        {
            "source_row": p.raw["source_row"],
            "date": p.date,
            "store_id": p.raw["store_id"],
            "sku": p.raw["sku"],
            "units": p.units.fillna(0).astype(np.int64),
            "price": p.price.astype(np.float64),
            "promo": p.promo,
        }
    ).join(p.labels)
    return frame[loaded].reset_index(drop=True)


def _write_world(days: pd.DataFrame, manifest: Manifest, out_dir: Path) -> None:
    last_day = days["date"].max()
    products = build_products(days, last_day)
    listings = build_listings(days, last_day)
    # `write_transactions_world` writes the manifest last, so the listings go in first.
    write_parquet(to_arrow(listings, LISTING_SCHEMA), out_dir / "listings.parquet")
    manifest.add_table("listings", len(listings), ["listings.parquet"])
    write_transactions_world(
        out_dir,
        manifest,
        stores=build_stores(days),
        products=products,
        # Daily totals name no customer: every line is a walk-in and the table stays empty.
        customers=pd.DataFrame({name: pd.Series(dtype=object) for name in CUSTOMER_SCHEMA.names}),
        lines=build_order_lines(days, products),
    )


def order_ids(date: pd.Series, store_id: pd.Series, sku: pd.Series) -> pd.Series:
    """`<date>:<length of store_id>:<store_id>:<sku>`: one id per (date, store_id, sku), whatever the ids hold."""
    ids: pd.Series = date.dt.strftime("%Y-%m-%d") + ":" + store_id.str.len().astype(str) + ":" + store_id + ":" + sku
    return ids


def build_order_lines(days: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """One line per day with net units other than zero (negative = a return), sorted by time."""
    sold = days[days["units"] != 0]
    base_price = sold["sku"].map(products.set_index("sku")["base_price"])
    lines = pd.DataFrame(
        {
            "order_id": order_ids(sold["date"], sold["store_id"], sold["sku"]),
            "line_no": np.int64(1),
            "ts": sold["date"] + SALE_HOUR,
            "store_id": sold["store_id"],
            "customer_id": None,
            "sku": sold["sku"],
            "quantity": sold["units"],
            "unit_price": sold["price"].fillna(base_price),
            "promo": sold["promo"],
            "channel": CHANNEL,
        }
    )
    return lines.sort_values(["ts", "order_id"], kind="stable").reset_index(drop=True)


def latest_label(days: pd.DataFrame, key: str, column: str, keys: pd.Index) -> np.ndarray:
    """For each of `keys`, the `column` value of its latest row that has one, else `unknown`."""
    given = days[days[column] != ""].sort_values(["date", "source_row"], kind="stable")
    labels: pd.Series = given.groupby(key)[column].last()
    return labels.reindex(keys, fill_value=UNKNOWN).to_numpy()


def _date_or_none(day: pd.Series, last_day: pd.Timestamp) -> np.ndarray:
    """The dates, null where a date is the file's last (the period is still running)."""
    dates: pd.Series = day.dt.date.where(day < last_day, None)
    return dates.to_numpy()


def build_products(days: pd.DataFrame, last_day: pd.Timestamp) -> pd.DataFrame:
    """One product per sku, priced at the median of its positive prices, on sale from its first to its last row."""
    per_sku = days.groupby("sku").agg(first=("date", "min"), last=("date", "max"))
    priced = days[days["price"] > 0]
    base_price = priced.groupby("sku")["price"].median().reindex(per_sku.index, fill_value=DEFAULT_BASE_PRICE)
    return pd.DataFrame(
        {
            "sku": per_sku.index.to_numpy(),
            "department": latest_label(days, "sku", "department", per_sku.index),
            "category": latest_label(days, "sku", "category", per_sku.index),
            "brand": "",
            "base_price": base_price.to_numpy(dtype=np.float64),
            "launch_date": per_sku["first"].dt.date.to_numpy(),
            "end_date": _date_or_none(per_sku["last"], last_day),
            "image_key": None,
            "attributes": [{} for _ in range(len(per_sku))],
        }
    )


def build_stores(days: pd.DataFrame) -> pd.DataFrame:
    """One store per store id, opened on its first row."""
    per_store = days.groupby("store_id").agg(first=("date", "min"))
    return pd.DataFrame(
        {
            "store_id": per_store.index.to_numpy(),
            "region": latest_label(days, "store_id", "region", per_store.index),
            "format": STORE_FORMAT,
            "open_date": per_store["first"].dt.date.to_numpy(),
        }
    )


def build_listings(days: pd.DataFrame, last_day: pd.Timestamp) -> pd.DataFrame:
    """One listing per store x sku from its first row to its last, zero-unit rows included."""
    per_pair = days.groupby(["store_id", "sku"]).agg(first=("date", "min"), last=("date", "max")).reset_index()
    return pd.DataFrame(
        {
            "store_id": per_pair["store_id"],
            "sku": per_pair["sku"],
            "start_date": per_pair["first"].dt.date,
            "end_date": _date_or_none(per_pair["last"], last_day),
        }
    )
