"""`shelfwise bench churn --data online-retail`: the churn model against its baselines on real transactions.

The UCI Online Retail invoices are loaded into a world folder, the churn features are computed with the Glue job's
Spark functions at cutoffs every `--step-days` up to `--test-cutoff` (label: no purchase in the next 90 days), and
the pipeline's own scripts run on them as subprocesses: prepare (time split: the test cutoff is held out, the one
before it validates, earlier ones train), train and evaluate. The baselines are measured in the same run on the
same held-out rows: the recency rule and logistic regression on recency, frequency and monetary value.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shelfwise.loaders.sources import ONLINE_RETAIL_CSV


class DataSet(StrEnum):
    online_retail = "online-retail"


@dataclass(frozen=True)
class ChurnBench:
    evaluation: dict[str, Any]
    validation: dict[str, Any]
    seconds: dict[str, float]
    training_rows: int
    cutoffs: list[str]


def bench_cutoffs(test_cutoff: dt.date, step_days: int, count: int) -> list[dt.date]:
    """`count` cutoffs `step_days` apart, the last one `test_cutoff`."""
    if count < 3:
        raise ValueError(f"--cutoffs must be at least 3 (train, validation, test), got {count}")
    return [test_cutoff - dt.timedelta(days=step_days * k) for k in reversed(range(count))]


def load_world(source: Path, world: Path, reload: bool) -> None:
    """Load the CSV into `world` unless a previous run left a complete world there."""
    from shelfwise.loaders.online_retail import load_online_retail

    if reload or not (world / "manifest.json").exists():
        load_online_retail(source, world)


def training_features(world: Path, cutoffs: list[dt.date], out: Path) -> int:
    """Compute the labelled churn features with Spark and write them as `cutoff=` folders; returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shelfwise.churn_features import CUTOFF
    from shelfwise.customer_features import training_set
    from shelfwise.schemas import STOCKOUT_SCHEMA
    from shelfwise.spark import local_session, read_parquet, spark_schema

    spark = local_session("bench-churn")
    orders = read_parquet(spark, str(world / "order_lines"))
    products = read_parquet(spark, str(world / "products.parquet"))
    customers = read_parquet(spark, str(world / "customers.parquet"))
    stockouts = read_parquet(spark, str(world / "stockouts.parquet"), empty_schema=spark_schema(STOCKOUT_SCHEMA))
    frame = training_set(orders, products, customers, stockouts, cutoffs).toPandas()
    for cutoff, rows in frame.groupby(CUTOFF):
        folder = out / f"{CUTOFF}={cutoff}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), folder / "part-00000.parquet")
    return len(frame)


def run_scripts(features: Path, scratch: Path, timings: dict[str, float]) -> tuple[dict[str, Any], dict[str, Any]]:
    """prepare -> train -> evaluate with the pipeline's scripts and hyperparameters; (evaluation, model metadata)."""
    from shelfwise.pipelines.churn import SCRIPTS_DIR, TRAINING_HYPERPARAMETERS
    from shelfwise.pipelines.local import run_script

    splits = {name: scratch / name for name in ("train", "validation", "test", "quarantine")}
    started = time.perf_counter()
    run_script(
        SCRIPTS_DIR / "prepare.py",
        [f"--features-dir={features}", *(f"--{name}-dir={path}" for name, path in splits.items())],
        {},
        scratch / "prepare",
    )
    timings["prepare"] = time.perf_counter() - started
    model_dir, config = scratch / "model", scratch / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(dict(TRAINING_HYPERPARAMETERS)), encoding="utf-8")
    env = {
        "SM_CHANNEL_TRAIN": str(splits["train"]),
        "SM_CHANNEL_VALIDATION": str(splits["validation"]),
        "SM_MODEL_DIR": str(model_dir),
        "SM_INPUT_CONFIG_DIR": str(config),
    }
    started = time.perf_counter()
    run_script(SCRIPTS_DIR / "train.py", [], env, scratch / "train")
    timings["train"] = time.perf_counter() - started
    started = time.perf_counter()
    args = [f"--model-dir={model_dir}", f"--train-dir={splits['train']}", f"--test-dir={splits['test']}"]
    run_script(SCRIPTS_DIR / "evaluate.py", [*args, f"--evaluation-dir={scratch / 'evaluation'}"], {}, scratch / "ev")
    timings["evaluate"] = time.perf_counter() - started
    evaluation = json.loads((scratch / "evaluation" / "evaluation.json").read_text(encoding="utf-8"))
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    return evaluation, metadata


def results_table(result: ChurnBench) -> Table:
    evaluation = result.evaluation
    table = Table(
        title=f"churn on Online Retail, held-out cutoff {evaluation['cutoff']}: n={evaluation['n']:,}, "
        f"churn rate {evaluation['base_rate']:.3f}",
        title_justify="left",
    )
    for column in ("model", "AUC", "PR-AUC", "Brier", "top-decile lift", "AUC vs XGBoost"):
        table.add_column(column, justify="left" if column == "model" else "right")
    model_auc = evaluation["churn"]["auc"]
    rows = {
        "XGBoost (pipeline)": evaluation["churn"],
        **{_BASELINE_NAMES[k]: v for k, v in evaluation["baselines"].items()},
    }
    for name, metrics in rows.items():
        table.add_row(
            name,
            f"{metrics['auc']:.4f}",
            f"{metrics['pr_auc']:.4f}",
            f"{metrics['brier']:.4f}",
            f"{metrics['top_decile_lift']:.2f}",
            f"{metrics['auc'] - model_auc:+.4f}",
        )
    return table


_BASELINE_NAMES = {"recency": "recency rule", "logistic_rfm": "logistic RFM"}


def key_line(result: ChurnBench) -> str:
    ev = result.evaluation
    churn, recency, rfm = ev["churn"], ev["baselines"]["recency"], ev["baselines"]["logistic_rfm"]
    verdict = "beats" if ev["margin_over_best_baseline"] > 0 else "does NOT beat"
    return (
        f"churn online-retail: XGBoost AUC {churn['auc']:.4f} {verdict} both baselines "
        f"(recency {recency['auc']:.4f}, logistic RFM {rfm['auc']:.4f}; "
        f"margin {ev['margin_over_best_baseline']:+.4f}); "
        f"PR-AUC {churn['pr_auc']:.4f} vs {recency['pr_auc']:.4f} / {rfm['pr_auc']:.4f}; "
        f"top-decile lift {churn['top_decile_lift']:.2f} vs {recency['top_decile_lift']:.2f} / "
        f"{rfm['top_decile_lift']:.2f}; validation ECE {result.validation['ece']:.4f}; "
        f"{result.training_rows:,} feature rows at {len(result.cutoffs)} cutoffs; "
        f"train {result.seconds['train']:.1f} s"
    )


def command(
    data: Annotated[DataSet, typer.Option("--data", help="The data set.")] = DataSet.online_retail,
    source: Annotated[Path, typer.Option(help="The Online Retail CSV.")] = ONLINE_RETAIL_CSV,
    test_cutoff: Annotated[str, typer.Option(help="Held-out cutoff; its 90-day label must fit in the data.")] = (
        "2011-09-10"
    ),
    step_days: Annotated[int, typer.Option(help="Days between cutoffs.")] = 28,
    cutoffs: Annotated[int, typer.Option(help="Number of cutoffs, the test cutoff included.")] = 8,
    reload: Annotated[bool, typer.Option(help="Reload the CSV even if a loaded world exists.")] = False,
) -> None:
    """AUC, PR-AUC, Brier and top-decile lift of the churn model and its baselines on the same held-out cutoff."""
    from shelfwise.config import settings

    console = Console()
    try:
        dates = bench_cutoffs(dt.date.fromisoformat(test_cutoff), step_days, cutoffs)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not source.exists():
        raise typer.BadParameter(f"{source} does not exist", param_hint="--source")
    work = settings().work_dir / "bench"
    world = settings().work_dir / "worlds" / data.value
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(dir=work) as scratch,
        Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as bar,
    ):
        task = bar.add_task("load Online Retail", total=4)
        started = time.perf_counter()
        load_world(source, world, reload)
        seconds["load"] = time.perf_counter() - started
        bar.update(task, advance=1, description=f"features at {len(dates)} cutoffs (Spark)")
        started = time.perf_counter()
        rows = training_features(world, dates, Path(scratch) / "features")
        seconds["features"] = time.perf_counter() - started
        bar.update(task, advance=1, description="prepare, train, evaluate")
        evaluation, metadata = run_scripts(Path(scratch) / "features", Path(scratch) / "run", seconds)
        bar.update(task, advance=2, description="done")
    result = ChurnBench(evaluation, metadata["metrics"]["validation"], seconds, rows, [str(d) for d in dates])
    console.print(results_table(result))
    console.print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    console.print(key_line(result), soft_wrap=True)
