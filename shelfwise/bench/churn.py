"""`shelfwise bench churn --data online-retail|world:DIR`: the churn model against the classic baselines.

The data (UCI Online Retail, or any world folder: a synthetic world, or your own transactions loaded with
`shelfwise world load orders-csv`) is turned into churn features with the Glue job's Spark functions at cutoffs
every `--step-days` up to the test cutoff (label: no purchase in the feature set's horizon), and the pipeline's own
steps run on them from the pipeline's own source tarball: prepare (the honest time split: every label window closes
before the next split starts), train (tuned and early-stopped on the validation cutoff) and evaluate. The baselines
are measured in the same run on the same held-out rows: the recency rule, logistic regression on recency, frequency
and monetary value, and BG/NBD (probability of no purchase within the horizon).
"""

from __future__ import annotations

import datetime as dt
import json
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shelfwise.loaders.sources import ONLINE_RETAIL_CSV

ONLINE_RETAIL = "online-retail"
WORLD_PREFIX = "world:"
#: Online Retail: the last cutoff whose 90-day label fits in the data, and where features start to have history.
ONLINE_RETAIL_TEST_CUTOFF = dt.date(2011, 9, 10)
ONLINE_RETAIL_FIRST_CUTOFF = dt.date(2011, 1, 1)
_NAMES = {
    "churn": "XGBoost (pipeline)",
    "recency": "recency rule",
    "logistic_rfm": "logistic RFM",
    "bgnbd": "BG/NBD P(no purchase)",
}


@dataclass(frozen=True)
class ChurnBench:
    data: str
    evaluation: dict[str, Any]
    metadata: dict[str, Any]
    split: dict[str, Any]
    seconds: dict[str, float]
    training_rows: int
    cutoffs: list[str]


def bench_cutoffs(first: dt.date, test_cutoff: dt.date, step_days: int) -> list[dt.date]:
    """Cutoffs `step_days` apart ending at `test_cutoff`, none before `first`."""
    if step_days < 1:
        raise ValueError(f"--step-days must be at least 1, got {step_days}")
    if first >= test_cutoff:
        raise ValueError(f"the first cutoff {first} is not before the test cutoff {test_cutoff}")
    count = (test_cutoff - first).days // step_days + 1
    return [test_cutoff - dt.timedelta(days=step_days * k) for k in reversed(range(count))]


def world_range(world: Path) -> tuple[dt.date, dt.date]:
    """(first, last) day of a world folder's orders, from its manifest."""
    manifest = json.loads((world / "manifest.json").read_text(encoding="utf-8"))
    return dt.date.fromisoformat(manifest["start_date"]), dt.date.fromisoformat(manifest["end_date"])


def default_cutoffs(world: Path, horizon: int) -> tuple[dt.date, dt.date]:
    """(first, test) cutoff of a world: a horizon of history before the first, the test's label window inside."""
    start, end = world_range(world)
    return start + dt.timedelta(days=horizon), end - dt.timedelta(days=horizon - 1)


def training_features(world: Path, cutoffs: list[dt.date], out: Path) -> int:
    """Labelled churn features and cold-start labels with Spark, as `cutoff=` folders; returns the feature rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shelfwise.churn.customer_features import cold_start_labels, latest_snapshot, training_set
    from shelfwise.churn.features import CUTOFF, FEATURE_SET, VERSION_COLUMN
    from shelfwise.schemas import STOCKOUT_SCHEMA
    from shelfwise.spark import local_session, read_parquet, spark_schema

    spark = local_session("bench-churn")
    orders = read_parquet(spark, str(world / "order_lines"))
    products = latest_snapshot(read_parquet(spark, str(world / "products.parquet")))
    customers = latest_snapshot(read_parquet(spark, str(world / "customers.parquet")))
    stockouts = read_parquet(spark, str(world / "stockouts.parquet"), empty_schema=spark_schema(STOCKOUT_SCHEMA))
    outputs = {
        "features": training_set(orders, products, customers, stockouts, cutoffs).toPandas(),
        "cold_start": cold_start_labels(orders, customers, cutoffs, FEATURE_SET.label_horizon_days).toPandas(),
    }
    for name, frame in outputs.items():
        frame[VERSION_COLUMN] = FEATURE_SET.qualified_version
        for cutoff, rows in frame.groupby(CUTOFF):
            folder = out / name / f"{CUTOFF}={cutoff}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), folder / "part-00000.parquet")
        (out / name).mkdir(parents=True, exist_ok=True)
    return len(outputs["features"])


def run_scripts(
    features: Path, scratch: Path, timings: dict[str, float]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """prepare -> train -> evaluate from the pipeline's source tarball; (evaluation, model metadata, split counts)."""
    from shelfwise.domains import pipeline
    from shelfwise.pipelines.code import build_source_tarball
    from shelfwise.pipelines.local import run_script

    code = scratch / "code"
    with tarfile.open(build_source_tarball(pipeline("churn"), scratch / "sourcedir.tar.gz"), "r:gz") as tar:
        tar.extractall(code, filter="data")
    splits = {name: scratch / name for name in ("train", "validation", "test", "refit", "quarantine")}
    started = time.perf_counter()
    run_script(
        code / "prepare.py",
        [
            f"--features-dir={features / 'features'}",
            f"--cold-start-dir={features / 'cold_start'}",
            *(f"--{name}-dir={path}" for name, path in splits.items()),
        ],
        {},
        scratch / "prepare",
    )
    timings["prepare"] = time.perf_counter() - started
    model_dir = scratch / "model"
    env = {
        "SM_CHANNEL_TRAIN": str(splits["train"]),
        "SM_CHANNEL_VALIDATION": str(splits["validation"]),
        "SM_CHANNEL_REFIT": str(splits["refit"]),
        "SM_MODEL_DIR": str(model_dir),
        "SM_INPUT_CONFIG_DIR": str(scratch / "config"),
    }
    started = time.perf_counter()
    run_script(code / "train.py", [], env, scratch / "train")
    timings["train"] = time.perf_counter() - started
    archive = scratch / "packed" / "model.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    started = time.perf_counter()
    # the baselines learn from the same history as the model's final fit, as in the pipeline
    args = [f"--model-dir={archive.parent}", f"--train-dir={splits['refit']}", f"--test-dir={splits['test']}"]
    run_script(code / "evaluate.py", [*args, f"--evaluation-dir={scratch / 'evaluation'}"], {}, scratch / "evaluate")
    timings["evaluate"] = time.perf_counter() - started
    evaluation = json.loads((scratch / "evaluation" / "evaluation.json").read_text(encoding="utf-8"))
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    split = json.loads((splits["quarantine"] / "counts.json").read_text(encoding="utf-8"))
    return evaluation, metadata, split


def results_table(result: ChurnBench) -> Table:
    evaluation = result.evaluation
    table = Table(
        title=f"churn on {result.data}, held-out cutoff {evaluation['cutoff']}: n={evaluation['n']:,}, "
        f"churn rate {evaluation['base_rate']:.3f}",
        title_justify="left",
    )
    for column in ("model", "AUC", "PR-AUC", "Brier", "top-decile lift", "AUC vs XGBoost"):
        table.add_column(column, justify="left" if column == "model" else "right")
    model_auc = evaluation["churn"]["auc"]
    rows = {"churn": evaluation["churn"], **evaluation["baselines"]}
    for name, metrics in rows.items():
        table.add_row(
            _NAMES.get(name, name),
            f"{metrics['auc']:.4f}",
            f"{metrics['pr_auc']:.4f}",
            f"{metrics['brier']:.4f}",
            f"{metrics['top_decile_lift']:.2f}",
            f"{metrics['auc'] - model_auc:+.4f}",
        )
    return table


def split_line(result: ChurnBench) -> str:
    split = result.split
    train, validation, test, refit = split["train"], split["validation"], split["test"], split["refit"]
    return (
        f"split (label horizon {split['label_horizon_days']} days): train {len(train['cutoffs'])} cutoffs "
        f"{train['cutoffs'][0]}..{train['cutoffs'][-1]} ({train['rows']:,} rows), "
        f"validation {validation['cutoffs'][0]} ({validation['rows']:,}), test {test['cutoffs'][0]} "
        f"({test['rows']:,}); the final fit on {len(refit['cutoffs'])} cutoffs up to {refit['cutoffs'][-1]} "
        f"({refit['rows']:,} rows): every label window closes by the next split's cutoff"
    )


def key_line(result: ChurnBench) -> str:
    ev = result.evaluation
    churn = ev["churn"]
    baselines = ", ".join(f"{_NAMES[k]} {v['auc']:.4f}" for k, v in ev["baselines"].items())
    low, high = ev["margin_interval_95"]
    verdict = (
        "beats"
        if low > 0
        else "is worse than"
        if high < 0
        else "does not beat (within noise)"
        if ev["margin_over_best_baseline"] <= 0
        else "edges (within noise)"
    )
    chosen = result.metadata["metrics"]["chosen"]
    return (
        f"churn {result.data}: XGBoost AUC {churn['auc']:.4f} {verdict} the best baseline "
        f"({_NAMES[ev['best_baseline']]}, margin {ev['margin_over_best_baseline']:+.4f}, 95% interval "
        f"{low:+.4f}..{high:+.4f}); baselines: {baselines}; "
        f"PR-AUC {churn['pr_auc']:.4f}, Brier {churn['brier']:.4f}, top-decile lift {churn['top_decile_lift']:.2f}; "
        f"validation AUC {result.metadata['metrics']['validation']['auc']:.4f}, ECE "
        f"{result.metadata['metrics']['validation']['ece']:.4f}; trees depth {chosen['max_depth']}, refit for "
        f"{result.metadata['metrics']['refit']['rounds']} rounds; {result.training_rows:,} feature rows at "
        f"{len(result.cutoffs)} cutoffs; train {result.seconds['train']:.1f} s"
    )


def resolve_data(data: str, source: Path, reload: bool) -> tuple[str, Path]:
    """(label, world folder) for `--data`; loads Online Retail into a world folder unless one is there."""
    from shelfwise.config import settings

    if data == ONLINE_RETAIL:
        world = settings().work_dir / "worlds" / ONLINE_RETAIL
        if reload or not (world / "manifest.json").exists():
            from shelfwise.loaders.online_retail import load_online_retail

            if not source.exists():
                raise typer.BadParameter(f"{source} does not exist", param_hint="--source")
            load_online_retail(source, world)
        return "Online Retail", world
    if data.startswith(WORLD_PREFIX):
        world = Path(data[len(WORLD_PREFIX) :]).expanduser()
        if not (world / "manifest.json").is_file():
            raise typer.BadParameter(f"{world} is not a world folder (no manifest.json)", param_hint="--data")
        return str(world), world
    raise typer.BadParameter(f"expected {ONLINE_RETAIL} or {WORLD_PREFIX}DIR, got {data!r}", param_hint="--data")


def command(
    data: Annotated[str, typer.Option("--data", help=f"{ONLINE_RETAIL}, or {WORLD_PREFIX}DIR for a world folder.")] = (
        ONLINE_RETAIL
    ),
    source: Annotated[Path, typer.Option(help="The Online Retail CSV.")] = ONLINE_RETAIL_CSV,
    test_cutoff: Annotated[
        str | None, typer.Option(help="Held-out cutoff (its label window must fit in the data); default: the last.")
    ] = None,
    first_cutoff: Annotated[str | None, typer.Option(help="Earliest cutoff; default: a label horizon in.")] = None,
    step_days: Annotated[int, typer.Option(help="Days between cutoffs.")] = 14,
    reload: Annotated[bool, typer.Option(help="Reload the Online Retail CSV even if a loaded world exists.")] = False,
) -> None:
    """AUC, PR-AUC, Brier and top-decile lift of the churn model and its baselines on the same held-out cutoff."""
    from shelfwise.churn.features import FEATURE_SET
    from shelfwise.config import settings

    console = Console()
    label, world = resolve_data(data, source, reload)
    horizon = FEATURE_SET.label_horizon_days
    first_default, test_default = default_cutoffs(world, horizon)
    if data == ONLINE_RETAIL:
        first_default, test_default = ONLINE_RETAIL_FIRST_CUTOFF, ONLINE_RETAIL_TEST_CUTOFF
    try:
        test = dt.date.fromisoformat(test_cutoff) if test_cutoff else test_default
        first = dt.date.fromisoformat(first_cutoff) if first_cutoff else first_default
        dates = bench_cutoffs(first, test, step_days)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    work = settings().work_dir / "bench"
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(dir=work) as scratch,
        Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as bar,
    ):
        task = bar.add_task(f"features at {len(dates)} cutoffs (Spark)", total=3)
        started = time.perf_counter()
        rows = training_features(world, dates, Path(scratch) / "features")
        seconds["features"] = time.perf_counter() - started
        bar.update(task, advance=1, description="prepare, train (tuning), evaluate")
        evaluation, metadata, split = run_scripts(Path(scratch) / "features", Path(scratch) / "run", seconds)
        bar.update(task, advance=2, description="done")
    result = ChurnBench(label, evaluation, metadata, split, seconds, rows, [str(d) for d in dates])
    console.print(results_table(result))
    console.print(split_line(result), soft_wrap=True)
    cold = evaluation.get("cold_start", {})
    if cold.get("customers"):
        console.print(
            f"cold start: prior {cold['prior']:.3f} vs {cold['observed_rate']:.3f} observed among "
            f"{cold['customers']:,} registered customers without a purchase at the test cutoff"
        )
    console.print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    console.print(key_line(result), soft_wrap=True)
