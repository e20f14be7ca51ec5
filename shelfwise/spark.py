"""Spark sessions for Glue jobs: Glue's own session in AWS, a small local one everywhere else.

Both get the settings the jobs rely on: UTC session time zone (timestamps in the lake are naive UTC), dynamic
partition overwrite (a rerun replaces only the partitions it writes) and Parquet timestamps as microseconds.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

#: Settings every job session gets, in Glue and locally.
JOB_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Naive timestamps written by pyarrow are read as TIMESTAMP_NTZ, as in Glue 5.
    "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
}


def local_session(
    app_name: str = "shelfwise", shuffle_partitions: int = 4, driver_memory: str = "4g", cores: int = 2
) -> SparkSession:
    """A local SparkSession sized for one small machine: `local[cores]`, few shuffle partitions, no UI."""
    from pyspark.sql import SparkSession

    # Spark otherwise resolves the hostname to a non-loopback address and warns on every start.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.appName(app_name)
        .master(f"local[{cores}]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(cores))
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.adaptive.enabled", "true")
        # Listing a folder of many dt= partitions on the driver beats launching a Spark job to do it.
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "100000")
        # Jobs write one file per dt= partition (hundreds): commit each task's files once, and skip the .crc
        # side files of Hadoop's checksummed local file system (S3 has neither cost in Glue).
        .config("spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version", "2")
        .config("spark.hadoop.fs.file.impl", "org.apache.hadoop.fs.RawLocalFileSystem")
        .config("spark.hadoop.fs.file.impl.disable.cache", "true")
    )
    for key, value in JOB_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def job_session(app_name: str) -> SparkSession:
    """The session a Glue entry script uses: Glue's when `awsglue` is importable, else a local one."""
    try:
        from awsglue.context import GlueContext
        from pyspark.context import SparkContext
    except ImportError:
        return local_session(app_name)
    session: SparkSession = GlueContext(SparkContext.getOrCreate()).spark_session
    for key, value in JOB_CONF.items():
        session.conf.set(key, value)
    return session


def spark_type(arrow_type: pa.DataType) -> DataType:
    """The Spark type of an Arrow column type used in `shelfwise.schemas`."""
    from pyspark.sql.types import BooleanType, DateType, DoubleType, LongType, MapType, StringType, TimestampNTZType

    if pa.types.is_timestamp(arrow_type):
        return TimestampNTZType()
    simple: dict[pa.DataType, DataType] = {
        pa.string(): StringType(),
        pa.int64(): LongType(),
        pa.float64(): DoubleType(),
        pa.bool_(): BooleanType(),
        pa.date32(): DateType(),
    }
    if arrow_type in simple:
        return simple[arrow_type]
    if pa.types.is_map(arrow_type):
        return MapType(StringType(), StringType())
    raise TypeError(f"no Spark type for Arrow type {arrow_type}")


def spark_schema(schema: pa.Schema) -> StructType:
    """The Spark schema of an Arrow table schema, keeping names and nullability."""
    from pyspark.sql.types import StructField, StructType

    return StructType([StructField(f.name, spark_type(f.type), f.nullable) for f in schema])


class MissingInputError(FileNotFoundError):
    """A job's required input has no data; the message names the path."""


def read_parquet(session: SparkSession, path: str, empty_schema: StructType | None = None) -> DataFrame:
    """Read a Parquet folder (with `name=value` partitions); an empty or absent folder is an error naming the
    path, unless `empty_schema` is given, in which case it reads as an empty table of that schema."""
    from pyspark.errors import AnalysisException

    try:
        return session.read.parquet(path)
    except AnalysisException as exc:
        absent = exc.getErrorClass() in ("PATH_NOT_FOUND", "UNABLE_TO_INFER_SCHEMA")
        if not absent:
            raise
        if empty_schema is None:
            raise MissingInputError(f"no Parquet data at {path}") from None
        return session.createDataFrame([], empty_schema)
