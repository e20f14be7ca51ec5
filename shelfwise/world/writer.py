"""Deterministic files: Parquet with fixed writer options (no wall-clock anywhere), PNGs, the manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3, "write_statistics": True}
_ROW_GROUP_ROWS = 1 << 20
#: Columns whose values are (nearly) all distinct: a dictionary page is wasted work for them.
_NO_DICTIONARY = frozenset({"order_id", "event_id", "ts"})


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    return [name for name in schema.names if name not in _NO_DICTIONARY]


def write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table, path, row_group_size=_ROW_GROUP_ROWS, use_dictionary=_dictionary_columns(table.schema), **_OPTIONS
    )


class PartWriter:
    """A folder of `part-NNNNN.parquet` files, one per call (one per month)."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        self.files: list[str] = []
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        relative = f"{self.name}/part-{len(self.files):05d}.parquet"
        write_parquet(table, self.root / relative)
        self.files.append(relative)
        self.rows += table.num_rows


class StreamWriter:
    """One Parquet file written a chunk at a time (one row group per chunk), so it never sits in memory whole."""

    def __init__(self, root: Path, relative: str, schema: pa.Schema) -> None:
        self.relative = relative
        self.path = root / relative
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self.path, schema, use_dictionary=_dictionary_columns(schema), **_OPTIONS)
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
