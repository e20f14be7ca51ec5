"""The entry scripts end to end: through the local runner against a real moto server, and from the command line."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from shelfwise.churn.features import FEATURE_NAMES, FEATURE_SET, LABEL, VERSION_COLUMN
from shelfwise.cli import app
from shelfwise.cli.glue import parse_extra_args
from shelfwise.config import settings
from shelfwise.domains import glue_jobs
from shelfwise.glue_local import JobArgumentsError, JobResult, UnknownJobError, run_job
from shelfwise.lake import Lake, partition_prefix
from shelfwise.local_aws import local_aws

SNAPSHOT = dt.date(2024, 12, 31)


@dataclass(frozen=True)
class Runs:
    curate: JobResult
    features: JobResult
    curate_again: JobResult
    curate_changed: JobResult
    curate_full: JobResult
    lake_after_first: dict[str, pa.Table]
    lake_after_rerun: dict[str, pa.Table]
    lake_after_change: dict[str, pa.Table]
    changed_day: str
    training: pa.Table
    cold_start: pa.Table
    serving: pa.Table
    last_order_day: dt.date


def _upload_raw_zone(lake: Lake, tables: dict[str, pa.Table]) -> None:
    lake.write_partitioned(tables["order_lines"], "raw", "order_lines", "ts")
    lake.write_partitioned(tables["stockouts"], "raw", "stockouts", "date")
    for name in ("products", "customers"):
        lake.write_table(tables[name], partition_prefix("raw", name, SNAPSHOT))


def _read_partitions(lake: Lake, prefix: str) -> dict[str, pa.Table]:
    """Every Parquet file under `prefix` by partition folder, rows sorted, so two runs can be compared."""
    tables: dict[str, list[pa.Table]] = {}
    for obj in lake.list(prefix):
        if obj.key.endswith(".parquet"):
            folder = obj.key.rsplit("/", 1)[0]
            tables.setdefault(folder, []).append(pq.read_table(io.BytesIO(lake.get_bytes(obj.key))))
    merged = {}
    for folder, parts in tables.items():
        table = pa.concat_tables(parts)
        merged[folder] = table.sort_by([(name, "ascending") for name in table.column_names if name != "reason"])
    return merged


def _with_cutoffs(partitions: dict[str, pa.Table]) -> pa.Table:
    tables = []
    for folder, table in sorted(partitions.items()):
        cutoff = dt.date.fromisoformat(folder.rsplit("cutoff=", 1)[1])
        tables.append(table.append_column("cutoff", pa.array([cutoff] * table.num_rows, pa.date32())))
    return pa.concat_tables(tables)


@pytest.fixture(scope="module")
def runs(raw_tables: dict[str, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """A raw zone in a moto lake; curate_orders, customer_features, then curate_orders again."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHELFWISE_WORK_DIR", str(tmp_path_factory.mktemp("work")))
        settings.cache_clear()
        with local_aws():
            lake = Lake()
            _upload_raw_zone(lake, raw_tables)
            curate = run_job("curate_orders", lake, {"run_date": "2025-01-01"})
            features = run_job("customer_features", lake, {"step_days": "56"})
            first = _read_partitions(lake, "curated/") | _read_partitions(lake, "quarantine/")
            curate_again = run_job("curate_orders", lake, {"run_date": "2025-01-01"})
            rerun = _read_partitions(lake, "curated/") | _read_partitions(lake, "quarantine/")
            # A late correction lands in one raw partition: its first line disappears.
            day = sorted({o.key.split("/")[2] for o in lake.list("raw/order_lines/")})[1]
            (key,) = [o.key for o in lake.list(f"raw/order_lines/{day}/")]
            corrected = pq.read_table(io.BytesIO(lake.get_bytes(key))).slice(1)
            lake.write_table(corrected, f"raw/order_lines/{day}")
            curate_changed = run_job("curate_orders", lake, {"run_date": "2025-01-01"})
            changed = _read_partitions(lake, "curated/")
            curate_full = run_job("curate_orders", lake, {"run_date": "2025-01-01", "full_refresh": "true"})
            yield Runs(
                curate=curate,
                features=features,
                curate_again=curate_again,
                curate_changed=curate_changed,
                curate_full=curate_full,
                lake_after_first=first,
                lake_after_rerun=rerun,
                lake_after_change=changed,
                changed_day=day,
                training=_with_cutoffs(_read_partitions(lake, "features/churn/training/")),
                cold_start=_with_cutoffs(_read_partitions(lake, "features/churn/cold_start/")),
                serving=_with_cutoffs(_read_partitions(lake, "features/churn/serving/")),
                last_order_day=max(raw_tables["order_lines"].column("ts").to_pylist()).date(),
            )
        settings.cache_clear()


@pytest.mark.slow
def test_curate_orders_reconciles_and_publishes_by_order_date(runs: Runs, raw_tables: dict[str, pa.Table]) -> None:
    counts = runs.curate.counts
    assert counts["input"] == raw_tables["order_lines"].num_rows == counts["curated"] + counts["quarantined"]
    assert counts["quarantined"] == 4
    assert counts["quarantined.duplicate_key"] == 1
    curated_days = {folder for folder in runs.lake_after_first if folder.startswith("curated/order_lines/dt=")}
    assert len(curated_days) == len({ts.date() for ts in raw_tables["order_lines"].column("ts").to_pylist()})
    quarantine = runs.lake_after_first["quarantine/curate_orders/dt=2025-01-01"]
    assert sorted(quarantine.column("reason").to_pylist()) == [
        "duplicate_key",
        "negative_unit_price",
        "unknown_channel",
        "zero_quantity",
    ]
    curated_rows = sum(t.num_rows for f, t in runs.lake_after_first.items() if f.startswith("curated/"))
    assert curated_rows == counts["curated"]


@pytest.mark.slow
def test_a_rerun_without_new_raw_data_curates_nothing_and_keeps_the_lake(runs: Runs) -> None:
    assert runs.curate.counts["partitions_unchanged"] == 0
    assert runs.curate_again.counts["partitions_curated"] == 0
    assert runs.curate_again.counts["partitions_unchanged"] == runs.curate.counts["partitions_curated"]
    assert runs.curate_again.counts["input"] == 0
    assert runs.lake_after_rerun.keys() == runs.lake_after_first.keys()
    for folder, table in runs.lake_after_first.items():
        assert runs.lake_after_rerun[folder].equals(table), folder


@pytest.mark.slow
def test_a_changed_raw_partition_is_the_only_one_curated_again(runs: Runs) -> None:
    counts = runs.curate_changed.counts
    assert counts["partitions_curated"] == 1
    assert counts["partitions_unchanged"] == runs.curate.counts["partitions_curated"] - 1
    folder = f"curated/order_lines/{runs.changed_day}"
    before, after = runs.lake_after_first[folder], runs.lake_after_change[folder]
    assert after.num_rows == before.num_rows - 1  # the corrected partition was replaced
    for other, table in runs.lake_after_first.items():
        if other.startswith("curated/") and other != folder:
            assert runs.lake_after_change[other].equals(table), other
    full = runs.curate_full.counts
    assert full["partitions_curated"] == runs.curate.counts["partitions_curated"]
    assert full["input"] == runs.curate.counts["input"] - 1


@pytest.mark.slow
def test_customer_features_publishes_training_and_serving_sets(runs: Runs) -> None:
    training, serving = runs.training, runs.serving
    assert training.column_names == ["customer_id", *FEATURE_NAMES, LABEL, VERSION_COLUMN, "cutoff"]
    assert set(training.column(VERSION_COLUMN).to_pylist()) == {FEATURE_SET.qualified_version}
    cutoffs = sorted(set(training.column("cutoff").to_pylist()))
    assert len(cutoffs) == runs.features.counts["training_cutoffs"] >= 2
    assert all((b - a).days == 56 for a, b in itertools.pairwise(cutoffs))
    # Every training cutoff has its whole 90-day horizon inside the data.
    assert cutoffs[-1] + dt.timedelta(days=89) <= runs.last_order_day
    assert training.num_rows == runs.features.counts["training_rows"]
    assert 0 < sum(training.column(LABEL).to_pylist()) < training.num_rows
    assert set(serving.column("cutoff").to_pylist()) == {runs.last_order_day + dt.timedelta(days=1)}
    assert serving.num_rows == runs.features.counts["serving_rows"] > 0
    assert LABEL not in serving.column_names
    assert set(serving.column(VERSION_COLUMN).to_pylist()) == {FEATURE_SET.qualified_version}


@pytest.mark.slow
def test_customer_features_labels_registered_customers_without_a_purchase(runs: Runs) -> None:
    cold = runs.cold_start
    assert cold.column_names == ["customer_id", LABEL, VERSION_COLUMN, "cutoff"]
    assert cold.num_rows == runs.features.counts["cold_start_rows"]
    training = {
        (c, d)
        for c, d in zip(runs.training["customer_id"].to_pylist(), runs.training["cutoff"].to_pylist(), strict=True)
    }
    never = {
        c: label
        for c, label in zip(cold["customer_id"].to_pylist(), cold[LABEL].to_pylist(), strict=True)
        if c.startswith("N")
    }
    assert set(never) == {"N000000", "N000001", "N000002"}
    assert set(never.values()) == {1}  # they never buy: churned at every cutoff
    # a customer without a purchase before a cutoff has no training row at that cutoff
    for customer, cutoff in zip(cold["customer_id"].to_pylist(), cold["cutoff"].to_pylist(), strict=True):
        assert (customer, cutoff) not in training


def test_an_unknown_job_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownJobError, match="valid jobs: curate_orders, customer_features"):
        run_job("curate_everything", Lake(client=object()))
    result = CliRunner().invoke(app, ["glue", "run", "curate_everything"])
    assert result.exit_code == 2
    assert "valid jobs: curate_orders, customer_features" in " ".join(result.output.split())


def test_runner_rejects_arguments_the_job_does_not_take() -> None:
    with pytest.raises(JobArgumentsError, match="--input_path is set by the local runner"):
        run_job("curate_orders", Lake(client=object()), {"input_path": "/tmp"})
    with pytest.raises(JobArgumentsError, match="takes no argument --cutoffs"):
        run_job("curate_orders", Lake(client=object()), {"cutoffs": "2024-01-01"})


def test_cli_explains_that_it_needs_a_lake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["glue", "run", "curate_orders"])
    finally:
        settings.cache_clear()
    output = " ".join(result.output.split())
    assert result.exit_code == 2
    assert "AWS_ENDPOINT_URL is not set" in output
    assert "shelfwise lake serve" in output


def test_extra_cli_arguments_pair_up() -> None:
    assert parse_extra_args(["--run_date", "2024-01-01", "--step_days=7"]) == {
        "run_date": "2024-01-01",
        "step_days": "7",
    }
    with pytest.raises(ValueError, match="--step_days has no value"):
        parse_extra_args(["--step_days"])


@pytest.mark.parametrize("job", sorted(glue_jobs()))
def test_a_script_missing_a_required_argument_names_it(job: str, tmp_path: Path) -> None:
    spec = glue_jobs()[job]
    given = list(spec.inputs)[:1]
    argv = [arg for name in given for arg in (f"--{name}", str(tmp_path))]
    completed = subprocess.run([sys.executable, str(spec.script), *argv], capture_output=True, text=True, check=False)
    assert completed.returncode != 0
    missing = [name for name in spec.prefixes if name not in given]
    assert f"{job}: the following arguments are required: --{missing[0]}" in completed.stderr
