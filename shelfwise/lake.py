"""The S3 data lake: its zones, key layout, and Parquet reads and writes through boto3.

Layout (ARCHITECTURE.md): `raw/<source>/dt=YYYY-MM-DD/`, `curated/<table>/dt=.../`, `features/<set>/...`,
`models/<model>/<version>/model.tar.gz`, `predictions/<model>/<run>/`, `quarantine/<job>/dt=.../`.
The same code runs against AWS and against the local moto server; only the endpoint differs. Every call names the
bucket's expected owner when the configuration has one (it does in AWS), so a bucket name taken over by another
account is never read or written.
"""

from __future__ import annotations

import builtins
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

from shelfwise.config import Settings, settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Zone = Literal["raw", "curated", "features", "models", "predictions", "quarantine"]
ZONES: tuple[Zone, ...] = ("raw", "curated", "features", "models", "predictions", "quarantine")


def partition_prefix(zone: Zone, name: str, day: dt.date | None = None) -> str:
    """`zone/name/` or `zone/name/dt=YYYY-MM-DD/`."""
    if zone not in ZONES:
        raise ValueError(f"unknown lake zone {zone!r}; valid zones: {', '.join(ZONES)}")
    if not name or ("/" in name.strip("/") and zone not in ("models", "predictions", "features")):
        raise ValueError(f"bad dataset name {name!r} for zone {zone}")
    prefix = f"{zone}/{name.strip('/')}/"
    return prefix if day is None else f"{prefix}dt={day.isoformat()}/"


def model_artifact_key(model: str, version: str) -> str:
    return f"models/{model}/{version}/model.tar.gz"


def s3_client(cfg: Settings | None = None) -> S3Client:
    """A boto3 S3 client at the configured endpoint (moto locally, AWS otherwise)."""
    cfg = cfg or settings()
    return boto3.client("s3", region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)


class LakeDeleteError(RuntimeError):
    """S3 refused to delete some objects; the message names the first ones and why."""


@dataclass(frozen=True)
class LakeObject:
    key: str
    size: int
    last_modified: float = 0.0  # epoch seconds


class Lake:
    """Reads and writes the lake's zones in one bucket."""

    def __init__(self, cfg: Settings | None = None, client: Any = None) -> None:
        self.cfg = cfg or settings()
        self.bucket = self.cfg.lake_bucket
        self.s3 = client or s3_client(self.cfg)
        self.owner = self.cfg.expected_owner()

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # -- objects ---------------------------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, **self.owner)

    def get_bytes(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key, **self.owner)["Body"].read()
        return body

    def upload_file(self, path: Path, key: str) -> None:
        self.s3.upload_file(str(path), self.bucket, key, ExtraArgs=dict(self.owner) or None)

    def download_file(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.s3.download_file(self.bucket, key, str(path), ExtraArgs=dict(self.owner) or None)

    def copy(self, source_key: str, key: str) -> None:
        owners = {"ExpectedSourceBucketOwner": self.owner["ExpectedBucketOwner"]} | self.owner if self.owner else {}
        self.s3.copy_object(
            Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source_key}, **owners
        )

    def list(self, prefix: str = "") -> Iterator[LakeObject]:
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **self.owner):
            for obj in page.get("Contents", []):
                yield LakeObject(obj["Key"], obj["Size"], obj["LastModified"].timestamp())

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; raises `LakeDeleteError` if S3 refuses any of them."""
        keys = [o.key for o in self.list(prefix)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            response = self.s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}, **self.owner
            )
            errors = response.get("Errors", [])
            if errors:
                sample = "; ".join(
                    f"{e.get('Key')}: {e.get('Code')} {e.get('Message', '')}".strip() for e in errors[:3]
                )
                raise LakeDeleteError(
                    f"{len(errors)} of {len(batch)} objects under {prefix} were not deleted: {sample}"
                )
        return len(keys)

    # -- directories (Spark jobs read and write local folders; these move them in and out of the lake) ----------
    def upload_dir(self, local: Path, prefix: str) -> int:
        count = 0
        for path in sorted(local.rglob("*")):
            if path.is_file() and not path.name.startswith((".", "_")):
                self.upload_file(path, prefix.rstrip("/") + "/" + path.relative_to(local).as_posix())
                count += 1
        return count

    def download_prefix(self, prefix: str, local: Path) -> int:
        """Every object under `prefix` into `local`, keeping the rest of its key; a prefix that is one object's whole
        key lands as `local/<its name>`, as SageMaker lays out an S3Prefix input."""
        count = 0
        for obj in self.list(prefix):
            relative = obj.key[len(prefix) :].lstrip("/") or obj.key.rsplit("/", 1)[-1]
            self.download_file(obj.key, local / relative)
            count += 1
        return count

    # -- tables ----------------------------------------------------------------------------------------------
    def write_table(self, table: pa.Table, prefix: str, part: str = "part-00000") -> str:
        """Write one Parquet file under `prefix` (a partition folder) and return its key."""
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        key = f"{prefix.rstrip('/')}/{part}.parquet"
        self.put_bytes(key, buf.getvalue())
        return key

    def write_partitioned(
        self, table: pa.Table, zone: Zone, name: str, date_column: str, part: str = "part-00000"
    ) -> builtins.list[str]:
        """Write `table` as `dt=` partitions by the date of `date_column`; returns the keys written."""
        column = table.column(date_column)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.date32())
        days = column.to_numpy(zero_copy_only=False).astype("datetime64[D]")
        keys = []
        order = days.argsort(kind="stable")
        sorted_days = days[order]
        boundaries = (sorted_days[1:] != sorted_days[:-1]).nonzero()[0] + 1
        starts = [0, *boundaries.tolist()]
        ends = [*boundaries.tolist(), len(sorted_days)]
        for start, end in zip(starts, ends, strict=True):
            if start == end:
                continue
            day = sorted_days[start].astype(dt.date)
            rows = table.take(pa.array(order[start:end]))
            keys.append(self.write_table(rows, partition_prefix(zone, name, day), part))
        return keys

    def read_table(self, prefix: str) -> pa.Table:
        """Read every Parquet file under `prefix`, adding a column per `name=value` folder (`dt=`, `cutoff=`, ...)."""
        tables = []
        for obj in sorted(self.list(prefix), key=lambda o: o.key):
            if not obj.key.endswith(".parquet"):
                continue
            table = pq.read_table(io.BytesIO(self.get_bytes(obj.key)))
            for name, value in partition_values(obj.key[len(prefix) :]).items():
                if name not in table.column_names:
                    table = table.append_column(name, pa.array([value] * table.num_rows))
            tables.append(table)
        if not tables:
            raise FileNotFoundError(f"no Parquet files under s3://{self.bucket}/{prefix}")
        return pa.concat_tables(tables, promote_options="default")

    def summary(self) -> dict[str, tuple[int, int]]:
        """(objects, bytes) per zone."""
        totals: dict[str, tuple[int, int]] = dict.fromkeys(ZONES, (0, 0))
        for obj in self.list():
            zone = obj.key.split("/", 1)[0]
            if zone in totals:
                n, size = totals[zone]
                totals[zone] = (n + 1, size + obj.size)
        return totals


def partition_values(key: str) -> dict[str, dt.date | str]:
    """Hive-style partition values in a key's folders; ISO dates become dates."""
    values: dict[str, dt.date | str] = {}
    for part in key.split("/")[:-1]:
        name, sep, value = part.partition("=")
        if not sep or not name:
            continue
        try:
            values[name] = dt.date.fromisoformat(value)
        except ValueError:
            values[name] = value
    return values
