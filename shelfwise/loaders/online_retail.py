"""UCI Online Retail -> a world folder of kind "online-retail" (`docs/contracts.md`; no truth folder, no images).

Mapping:
- `InvoiceNo` -> `order_id` (cancellations keep their `C` prefix); `line_no` is the line's position within its
  invoice in the source file, so a loaded line can be traced back and a gap marks a quarantined line.
- `InvoiceDate` is UK wall-clock time at minute resolution. It is localised to Europe/London and converted to naive
  UTC (GMT in winter, BST = UTC+1 in summer). A wall time that occurs twice (the autumn change) is read as the first
  occurrence (BST); one that does not exist (the spring change) is shifted forward. The shop trades by day, so the
  data has no line in either hour.
- `StockCode` (upper-cased: `15056bl` and `15056BL` are one product) -> `sku`; products are built from the loaded
  lines: description = the most frequent one, department/category from description keywords (else
  "general"), base price = median unit price, launch date = first sale, end date = last sale when that is more than
  `DISCONTINUED_AFTER_DAYS` before the end of the data.
- `Country` -> `region`, one online store per country (`S001` = the country with most lines).
- `CustomerID` `17850.0` -> `17850`; missing -> walk-in (null); customers from their first loaded purchase.
- Cancellations (`C...`) -> returns: negative quantities at the original price.

Cleaning rules (`RULES`) are applied in order; a row is counted under the first rule it meets and written with its
original values, its `source_row` (1-based, header excluded) and a `reason` to `quarantine/<rule>.parquet`.
"""

from __future__ import annotations

import re
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

KIND = "online-retail"
GENERATOR_VERSION = "shelfwise.loaders.online_retail/1"
COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
SOURCE_TZ = "Europe/London"
DISCONTINUED_AFTER_DAYS = 90

#: Stock codes that are charges, fees or adjustments rather than products (matched upper-cased).
NON_PRODUCT_CODES: dict[str, str] = {
    "POST": "postage",
    "DOT": "dotcom postage",
    "C2": "carriage",
    "M": "manual entry",
    "D": "discount",
    "S": "samples",
    "B": "bad debt adjustment",
    "BANK CHARGES": "bank charges",
    "AMAZONFEE": "Amazon fee",
    "CRUK": "Cancer Research UK commission",
    "PADS": "cushion pads at a nominal 0.001",
}
#: `gift_0001_20` etc.: gift vouchers are a means of payment, not merchandise.
GIFT_VOUCHER_PREFIX = "GIFT_"

#: (department, category, comma-separated description keywords), first match wins; whole words, upper case.
TAXONOMY: list[tuple[str, str, str]] = [
    ("seasonal", "christmas", "CHRISTMAS, XMAS, ADVENT, SANTA, REINDEER, SNOWFLAKE, NATIVITY"),
    ("seasonal", "easter", "EASTER, EGG, EGGS, CHICK, CHICKS"),
    ("accessories", "jewellery", "NECKLACE, BRACELET, EARRINGS, RING, CHARM, BEAD, BEADS, DIAMANTE"),
    ("accessories", "bags", "BAG, BAGS, PURSE, SHOPPER, TOTE, UMBRELLA, BACKPACK, RUCKSACK"),
    ("home", "textiles", "CUSHION, BLANKET, THROW, TOWEL, TOWELS, QUILT, HOT WATER BOTTLE"),
    ("home", "lighting", "CANDLE, CANDLES, T-LIGHT, T-LIGHTS, LANTERN, LIGHT, LIGHTS, LAMP"),
    (
        "home",
        "kitchen",
        "MUG, MUGS, CUP, CUPS, PLATE, PLATES, BOWL, BOWLS, CAKE, TEA, COFFEE, CUTLERY, JAR, JUG, TRAY, LUNCH, "
        "BAKING, KITCHEN, PANTRY, DISH, TEAPOT, APRON, NAPKINS",
    ),
    ("home", "storage", "BOX, BOXES, TIN, TINS, BASKET, DRAWER, CABINET, STORAGE, HOOK, RACK"),
    ("home", "garden", "GARDEN, PLANT, PLANTER, WATERING, BIRD, PARASOL"),
    (
        "home",
        "decor",
        "SIGN, FRAME, CLOCK, MIRROR, DECORATION, ORNAMENT, GARLAND, WREATH, TILE, DOORMAT, WALL, PICTURE, ART, "
        "KNOB, VASE, HANGING, MAGNETS",
    ),
    ("gifts", "party", "PARTY, BIRTHDAY, BALLOON, BALLOONS, BUNTING, CANDY, SWEETS"),
    (
        "gifts",
        "stationery",
        "CARD, CARDS, PAPER, WRAP, NOTEBOOK, PEN, PENS, PENCIL, PENCILS, STICKERS, STICKER, TAPE, BOOK, "
        "ENVELOPES, CALENDAR",
    ),
    ("gifts", "toys", "TOY, TOYS, GAME, JIGSAW, DOLL, DOLLY, PLAYING, CHILDRENS, KIT, SOLDIER"),
]
GENERAL = ("general", "general")


@dataclass
class _Parsed:
    """The source rows (original text, `source_row`) and the values parsed from them (NaN/NaT where unparseable)."""

    raw: pd.DataFrame
    invoice: pd.Series
    invoice_prefix: pd.Series
    stock_code: pd.Series
    quantity: pd.Series
    price: pd.Series
    ts: pd.Series
    customer: pd.Series
    customer_ok: pd.Series
    country: pd.Series


#: A check returns the reason of every row it selects, indexed by those rows only (reasons are built for few rows).
_Check = Callable[[_Parsed], pd.Series]


def _quoted(values: pd.Series) -> pd.Series:
    return "'" + values + "'"


def _check_unparseable(p: _Parsed) -> pd.Series:
    raw = p.raw
    problems = {
        "InvoiceNo": ~p.invoice.str.fullmatch(r"[AC]?\d+"),
        "StockCode": p.stock_code == "",
        "Quantity": p.quantity.isna(),
        "InvoiceDate": p.ts.isna(),
        "UnitPrice": p.price.isna(),
        "CustomerID": ~p.customer_ok,
        "Country": p.country == "",
    }
    bad = pd.concat(problems, axis=1)
    bad = bad[bad.any(axis=1)]
    # Name every malformed field of a row, not just the first.
    return pd.Series(
        [
            "; ".join(_field_problem(name, str(raw.at[i, name])) for name in bad.columns if row[name])
            for i, row in bad.iterrows()
        ],
        index=bad.index,
        dtype=object,
    )


def _field_problem(name: str, value: str) -> str:
    expected = {
        "InvoiceNo": "an invoice number",
        "StockCode": "a stock code",
        "Quantity": "an integer",
        "InvoiceDate": "a date and time (YYYY-MM-DD HH:MM)",
        "UnitPrice": "a number",
        "CustomerID": "a whole number or empty",
        "Country": "a country",
    }[name]
    return f"{name} {value!r} is not {expected}"


def _check_bad_debt(p: _Parsed) -> pd.Series:
    invoice = p.invoice[p.invoice_prefix == "A"]
    return "invoice " + invoice + " adjusts bad debt (accounting entry, not a sale)"


def _check_non_product(p: _Parsed) -> pd.Series:
    meaning = p.stock_code.map(NON_PRODUCT_CODES)
    meaning = meaning.where(~p.stock_code.str.startswith(GIFT_VOUCHER_PREFIX), "gift voucher").dropna()
    return "non-product stock code " + _quoted(p.raw["StockCode"][meaning.index]) + " (" + meaning + ")"


def _check_duplicate(p: _Parsed) -> pd.Series:
    first = p.raw.groupby(COLUMNS, sort=False)["source_row"].transform("min")
    first = first[first != p.raw["source_row"]]
    return "exact duplicate of source row " + first.astype(str)


def _check_stock_adjustment(p: _Parsed) -> pd.Series:
    rows = p.raw[(p.invoice_prefix != "C") & (p.quantity < 0)]
    note = rows["Description"].where(rows["Description"] != "", "no description")
    return "negative quantity on sales invoice " + rows["InvoiceNo"] + " (stock adjustment: " + note + ")"


def _check_cancellation_sign(p: _Parsed) -> pd.Series:
    rows = p.raw[(p.invoice_prefix == "C") & (p.quantity > 0)]
    return "cancellation " + rows["InvoiceNo"] + " has a positive quantity " + rows["Quantity"]


def _check_zero_quantity(p: _Parsed) -> pd.Series:
    rows = p.raw[p.quantity == 0]
    return pd.Series("quantity is zero", index=rows.index, dtype=object)


def _check_price(p: _Parsed) -> pd.Series:
    rows = p.raw[p.price <= 0]
    return "unit price " + rows["UnitPrice"] + " is not positive (free or unpriced line)"


_CHECKS: list[tuple[CleaningRule, _Check]] = [
    (
        CleaningRule("unparseable", "a required field is empty or malformed (the reason names every such field)"),
        _check_unparseable,
    ),
    (CleaningRule("bad_debt_adjustment", "invoice number starting with A: an accounting entry"), _check_bad_debt),
    (
        CleaningRule("non_product_code", "postage, carriage, fees, discounts, manual entries, samples, vouchers"),
        _check_non_product,
    ),
    (CleaningRule("exact_duplicate", "every field equal to an earlier line of the file"), _check_duplicate),
    (
        CleaningRule("stock_adjustment", "negative quantity on a sales invoice: damaged, lost or found stock"),
        _check_stock_adjustment,
    ),
    (
        CleaningRule("cancellation_positive_quantity", "a cancellation must return goods (negative quantity)"),
        _check_cancellation_sign,
    ),
    (CleaningRule("zero_quantity", "a line for zero units"), _check_zero_quantity),
    (CleaningRule("non_positive_price", "zero or negative unit price on a product line"), _check_price),
]
RULES: tuple[CleaningRule, ...] = tuple(rule for rule, _ in _CHECKS)


def read_source(source: Path) -> pd.DataFrame:
    """The source rows as text, with `source_row`; fails naming any missing column."""
    header = list(pd.read_csv(source, nrows=0).columns)
    require_columns(source, header, COLUMNS)
    raw = pd.read_csv(source, dtype=str, keep_default_na=False, usecols=COLUMNS)[COLUMNS]
    raw["source_row"] = np.arange(1, len(raw) + 1, dtype=np.int64)
    return raw


def parse(raw: pd.DataFrame) -> _Parsed:
    """Parse every field vectorised; unparseable values become NaN/NaT for the `unparseable` rule to catch."""
    # to_numeric and to_datetime ignore surrounding blanks, so only the id columns are stripped.
    quantity = pd.to_numeric(raw["Quantity"], errors="coerce")
    quantity = quantity.where(np.isfinite(quantity) & (quantity == quantity.round()))
    price = pd.to_numeric(raw["UnitPrice"], errors="coerce")
    price = price.where(np.isfinite(price))
    # The CSV stores ids as floats ("17850.0"); any whole number maps to its digits.
    customer_text = raw["CustomerID"]
    customer_number = pd.to_numeric(customer_text, errors="coerce")
    whole = (customer_number >= 0) & (customer_number == customer_number.round())
    customer_ok = (customer_text.str.strip() == "") | whole
    customer = customer_number[whole].astype(np.int64).astype(str).reindex(raw.index)
    customer = customer.astype(object).where(customer.notna(), None)
    invoice = raw["InvoiceNo"].str.strip()
    return _Parsed(
        raw=raw,
        invoice=invoice,
        invoice_prefix=invoice.str[:1],
        stock_code=raw["StockCode"].str.strip().str.upper(),
        quantity=quantity,
        price=price,
        ts=to_naive_utc(raw["InvoiceDate"]),
        customer=customer,
        customer_ok=customer_ok,
        country=raw["Country"].str.strip(),
    )


def to_naive_utc(local_text: pd.Series) -> pd.Series:
    """UK wall-clock text -> naive UTC; NaT where the text is not a date and time."""
    local = pd.to_datetime(local_text, format="ISO8601", errors="coerce")
    first_occurrence = np.ones(len(local), dtype=bool)
    utc = local.dt.tz_localize(SOURCE_TZ, ambiguous=first_occurrence, nonexistent="shift_forward").dt.tz_convert("UTC")
    return utc.dt.tz_localize(None)


def load_online_retail(source: Path, out_dir: Path) -> LoadReport:
    """Map the Online Retail CSV into a world folder at `out_dir`; returns the reconciled accounting."""
    raw = read_source(source)
    parsed = parse(raw)
    rule, reason = apply_rules(raw.index, _CHECKS, parsed)
    loaded = rule == ""
    if not loaded.any():
        raise ValueError(f"{source}: none of its {len(raw):,} rows can be loaded")
    prepare_out_dir(out_dir)
    counts: dict[str, int] = {}
    for spec in RULES:
        selected = rule == spec.name
        counts[spec.name] = int(selected.sum())
        if counts[spec.name]:
            write_quarantine(out_dir, spec.name, raw[selected].assign(reason=reason[selected]))
    lines = _order_lines(parsed, loaded)
    manifest = Manifest(
        kind=KIND,
        start_date=lines["ts"].min().date(),
        end_date=lines["ts"].max().date(),
        generator_version=GENERATOR_VERSION,
        extra={"source": {"name": "UCI Online Retail", "file": source.name, "rows": len(raw)}, "quarantine": counts},
    )
    _write_world(lines, manifest, out_dir)
    report = LoadReport(
        source=source,
        out_dir=out_dir,
        input_rows=len(raw),
        loaded_rows=int(loaded.sum()),
        rules=counts,
        rule_descriptions={spec.name: spec.description for spec in RULES},
        normalised={
            "stock code upper-cased": int(
                (raw.loc[loaded, "StockCode"].str.strip() != parsed.stock_code[loaded]).sum()
            ),
            "CustomerID float -> id": int(raw.loc[loaded, "CustomerID"].str.contains(".", regex=False).sum()),
        },
    )
    report.assert_reconciles()
    return report


def _order_lines(p: _Parsed, loaded: pd.Series) -> pd.DataFrame:
    """The loaded rows as order lines plus `country`, `description` and `source_row` (for the dimensions)."""
    line_no = p.invoice.groupby(p.invoice, sort=False).cumcount() + 1
    frame = pd.DataFrame(
        {
            "order_id": p.invoice,
            "line_no": line_no.astype(np.int64),
            "ts": p.ts,
            "customer_id": p.customer,
            "sku": p.stock_code,
            "quantity": p.quantity.fillna(0).astype(np.int64),
            "unit_price": p.price.astype(np.float64),
            "promo": False,
            "channel": "online",
            "country": p.country,
            "description": p.raw["Description"].str.strip(),
            "source_row": p.raw["source_row"],
        }
    )[loaded]
    return frame.sort_values(["ts", "order_id", "line_no"], kind="stable").reset_index(drop=True)


def _write_world(lines: pd.DataFrame, manifest: Manifest, out_dir: Path) -> None:
    stores = build_stores(lines)
    lines = lines.assign(store_id=lines["country"].map(dict(zip(stores["region"], stores["store_id"], strict=True))))
    products = build_products(lines)
    customers = build_customers(lines)
    write_transactions_world(out_dir, manifest, stores=stores, products=products, customers=customers, lines=lines)


def build_stores(lines: pd.DataFrame) -> pd.DataFrame:
    """One online store per country, numbered by line count (most first), opened on the country's first sale."""
    per_country = lines.groupby("country").agg(lines=("order_id", "size"), first=("ts", "min")).reset_index()
    per_country = per_country.sort_values(["lines", "country"], ascending=[False, True], kind="stable")
    return pd.DataFrame(
        {
            "store_id": [f"S{i:03d}" for i in range(1, len(per_country) + 1)],
            "region": per_country["country"].to_numpy(),
            "format": "online",
            "open_date": per_country["first"].dt.date.to_numpy(),
        }
    )


def build_customers(lines: pd.DataFrame) -> pd.DataFrame:
    """Known customers, signed up on their first loaded purchase, in the country of that purchase."""
    known = lines[lines["customer_id"].notna()].sort_values(["ts", "source_row"], kind="stable")
    first = known.drop_duplicates("customer_id").sort_values("customer_id", kind="stable")
    return pd.DataFrame(
        {
            "customer_id": first["customer_id"].to_numpy(),
            "signup_date": first["ts"].dt.date.to_numpy(),
            "region": first["country"].to_numpy(),
            "channel": "online",
        }
    )


def build_products(lines: pd.DataFrame) -> pd.DataFrame:
    """One product per sku from its loaded lines (which all have a positive price)."""
    described = lines[lines["description"] != ""]
    counts = described.groupby(["sku", "description"]).size().rename("n").reset_index()
    counts = counts.sort_values(["sku", "n", "description"], ascending=[True, False, True], kind="stable")
    description = counts.drop_duplicates("sku").set_index("sku")["description"]
    per_sku = lines.groupby("sku").agg(price=("unit_price", "median"), first=("ts", "min"), last=("ts", "max"))
    per_sku["description"] = description.reindex(per_sku.index).fillna("")
    data_end = lines["ts"].max().normalize()
    discontinued = per_sku["last"].dt.normalize() < data_end - pd.Timedelta(days=DISCONTINUED_AFTER_DAYS)
    taxonomy = [categorise(text) for text in per_sku["description"]]
    return pd.DataFrame(
        {
            "sku": per_sku.index.to_numpy(),
            "department": [department for department, _ in taxonomy],
            "category": [category for _, category in taxonomy],
            "brand": "",
            "base_price": per_sku["price"].round(4).to_numpy(),
            "launch_date": per_sku["first"].dt.date.to_numpy(),
            "end_date": [
                last.date() if gone else None for last, gone in zip(per_sku["last"], discontinued, strict=True)
            ],
            "image_key": None,
            "attributes": [{"description": text} if text else {} for text in per_sku["description"]],
        }
    )


_TAXONOMY_PATTERNS = [
    (department, category, re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, words.split(", "))) + r")(?![\w-])"))
    for department, category, words in TAXONOMY
]


def categorise(description: str) -> tuple[str, str]:
    """(department, category) of a product description by the first `TAXONOMY` entry whose keyword it contains."""
    text = description.upper()
    for department, category, pattern in _TAXONOMY_PATTERNS:
        if pattern.search(text):
            return department, category
    return GENERAL
