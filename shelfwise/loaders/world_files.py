"""Writing the pieces of a world folder (`docs/contracts.md`): Parquet tables, quarantine files, the manifest."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shelfwise.schemas import CUSTOMER_SCHEMA, ORDER_LINE_SCHEMA, PRODUCT_SCHEMA, SCHEMA_VERSION, STORE_SCHEMA

QUARANTINE_DIR = "quarantine"
#: The folders of a world (docs/contracts.md), emptied before a load writes a new world in their place.
WORLD_DIRS = ("order_lines", "clickstream", "images", "truth", QUARANTINE_DIR)


class MissingColumnsError(ValueError):
    """A source file lacks required columns; the message names them."""

    def __init__(self, source: Path, missing: list[str]) -> None:
        names = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        super().__init__(f"{source}: missing required column(s): {names}")
        self.missing = missing


def require_columns(source: Path, present: list[str], required: list[str]) -> None:
    """Fail naming every required column that `present` lacks."""
    missing = [name for name in required if name not in present]
    if missing:
        raise MissingColumnsError(source, missing)


def write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """The frame's schema columns as a table with exactly `schema` (metadata included)."""
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    return table.replace_schema_metadata(schema.metadata)


def write_quarantine(out_dir: Path, rule: str, rows: pd.DataFrame) -> Path:
    """Write the rows a rule rejected (original values as text, plus `reason`) to `quarantine/<rule>.parquet`."""
    path = out_dir / QUARANTINE_DIR / f"{rule}.parquet"
    write_parquet(pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False), path)
    return path


@dataclass
class Manifest:
    """`manifest.json` of a world folder."""

    kind: str
    start_date: dt.date
    end_date: dt.date
    generator_version: str
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    scale: str | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def add_table(self, name: str, rows: int, files: list[str]) -> None:
        self.tables[name] = {"rows": rows, "files": files}

    def write(self, out_dir: Path) -> Path:
        doc = {
            "kind": self.kind,
            "scale": self.scale,
            "seed": self.seed,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "generator_version": self.generator_version,
            "schema_version": SCHEMA_VERSION,
            "tables": self.tables,
            **self.extra,
        }
        path = out_dir / "manifest.json"
        path.write_text(json.dumps(doc, indent=2) + "\n")
        return path


def prepare_out_dir(out_dir: Path) -> None:
    """Create `out_dir` or empty the world in it; refuse a non-empty folder that holds no world."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "manifest.json").is_file():
        raise ValueError(f"{out_dir} is not empty and holds no world (no manifest.json); refusing to write into it")
    out_dir.mkdir(parents=True, exist_ok=True)
    for entry in list(out_dir.iterdir()):
        if entry.is_dir() and entry.name in WORLD_DIRS:
            shutil.rmtree(entry)
        elif entry.is_file() and (entry.suffix == ".parquet" or entry.name == "manifest.json"):
            entry.unlink()


def write_transactions_world(
    out_dir: Path,
    manifest: Manifest,
    *,
    stores: pd.DataFrame,
    products: pd.DataFrame,
    customers: pd.DataFrame,
    lines: pd.DataFrame,
) -> None:
    """A transactions-only world: one file per dimension, order lines by month of `ts`, then the manifest."""
    for name, frame, schema in (
        ("stores", stores, STORE_SCHEMA),
        ("products", products, PRODUCT_SCHEMA),
        ("customers", customers, CUSTOMER_SCHEMA),
    ):
        write_parquet(to_arrow(frame, schema), out_dir / f"{name}.parquet")
        manifest.add_table(name, len(frame), [f"{name}.parquet"])
    files = []
    for index, (_, chunk) in enumerate(lines.groupby(lines["ts"].dt.to_period("M"), sort=True)):
        files.append(f"order_lines/part-{index:05d}.parquet")
        write_parquet(to_arrow(chunk, ORDER_LINE_SCHEMA), out_dir / files[-1])
    manifest.add_table("order_lines", len(lines), files)
    manifest.write(out_dir)
