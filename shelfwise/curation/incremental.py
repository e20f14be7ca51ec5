"""Which raw partitions a run must curate: those new or changed since the last run.

A partition's fingerprint is a digest of its files' names, sizes and modification times, listed through Hadoop's
file system API (the same call lists `s3://` in Glue and a folder locally). The fingerprints of the last run are
the job's state, kept as one JSON line under the job's state prefix; a run curates the partitions whose
fingerprint differs and then writes the new state. A full refresh ignores the state.

Limits, on purpose: a raw partition maps to the curated partition of the same order date (both are keyed by the
day of `ts`), so duplicates are removed within the partitions of a run, and a changed partition whose every row
is now quarantined leaves its former curated rows in place (run a full refresh to rebuild).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

STATE_FILE_FORMAT = "text"


@dataclass(frozen=True)
class Plan:
    """What a run does: the partitions to curate, and the counts that explain it."""

    changed: tuple[str, ...]
    unchanged: int
    removed: int
    fingerprints: Mapping[str, str]


def changed_partitions(current: Mapping[str, str], previous: Mapping[str, str]) -> Plan:
    """Partitions (values of the partition column) new or changed since `previous`, oldest first."""
    changed = tuple(sorted(value for value, print_ in current.items() if previous.get(value) != print_))
    return Plan(
        changed=changed,
        unchanged=len(current) - len(changed),
        removed=len(set(previous) - set(current)),
        fingerprints=dict(current),
    )


def fingerprint(files: Sequence[tuple[str, int, int]]) -> str:
    """Digest of (name, size, modification time in ms) of a partition's files."""
    digest = hashlib.sha256()
    for name, size, modified in sorted(files):
        digest.update(f"{name}\0{size}\0{modified}\n".encode())
    return digest.hexdigest()[:32]


def partition_fingerprints(spark: SparkSession, root: str, column: str) -> dict[str, str]:
    """`{value: fingerprint}` for each `column=value` folder under `root` (empty when `root` does not exist)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(root)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(path):
        return {}
    prints = {}
    for folder in fs.listStatus(path):
        name = folder.getPath().getName()
        if not folder.isDirectory() or not name.startswith(f"{column}="):
            continue
        files = [
            (f.getPath().getName(), int(f.getLen()), int(f.getModificationTime()))
            for f in fs.listStatus(folder.getPath())
            if f.isFile() and not f.getPath().getName().startswith(("_", "."))
        ]
        if files:
            prints[name.split("=", 1)[1]] = fingerprint(files)
    return prints


def read_state(spark: SparkSession, state_path: str) -> dict[str, str]:
    """The fingerprints the last run recorded (empty on a first run)."""
    from pyspark.errors import AnalysisException

    try:
        lines = [row[0] for row in spark.read.format(STATE_FILE_FORMAT).load(state_path).collect()]
    except AnalysisException:
        return {}
    state: dict[str, str] = {}
    for line in lines:
        if line.strip():
            state.update(json.loads(line)["partitions"])
    return state


def write_state(spark: SparkSession, state_path: str, plan: Plan, run_date: str) -> None:
    document = json.dumps({"run_date": run_date, "partitions": dict(sorted(plan.fingerprints.items()))})
    frame = spark.createDataFrame([(document,)], "value string").coalesce(1)
    frame.write.mode("overwrite").format(STATE_FILE_FORMAT).save(state_path)


def read_partitions(spark: SparkSession, root: str, column: str, values: Sequence[str]) -> DataFrame:
    """The rows of the given `column=value` partitions, with `column` as Spark reads it from the folder names.

    One read of the root filtered on the partition column: Spark prunes the other partitions, and lists the root once
    instead of once per partition path (hundreds of paths cost minutes).
    """
    from pyspark.sql import functions as sf

    return spark.read.parquet(root).where(sf.col(column).cast("string").isin(*values))
