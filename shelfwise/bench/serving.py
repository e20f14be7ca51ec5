"""`shelfwise bench serving ...`: latency of the API handlers against the raw model, and their cold start.

Also home of the serving fixture (a trained churn model registered in the local registry, customers in the online
store) that the benchmark and the API tests share.
"""

from __future__ import annotations

import functools
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import typer

from shelfwise.churn.features import DERIVED_NAMES, FEATURE_NAMES, FEATURE_SET, FEATURES
from shelfwise.config import Settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import xgboost as xgb
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from shelfwise.demand.forecast_records import ForecastRecord
    from shelfwise.demand.keys import AggregateLevel
    from shelfwise.demand.publish import AggregateRecord

app = typer.Typer(no_args_is_help=True)

#: The SageMaker XGBoost container that would serve the artifact; the registry requires an image.
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
RISK_BANDS = {"low": 0.3, "high": 0.6}
#: BG/NBD parameters of the benchmark model (days), of the order the pipeline fits on the synthetic worlds.
BGNBD = {"r": 0.8, "alpha": 40.0, "a": 0.5, "b": 3.0}
#: The model's inputs: the stored features and the BG/NBD ones it derives.
MODEL_FEATURES = (*FEATURE_NAMES, *DERIVED_NAMES)


@dataclass(frozen=True)
class ServingWorld:
    """A registered churn model and the customers the online store knows."""

    model_version: str
    package_arn: str
    booster: xgb.Booster
    rows: dict[str, dict[str, float]]
    cold_customers: list[str]
    base_rate: float
    cold_start_rate: float


def synthetic_feature_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` plausible feature rows (model input order, within every feature's range) and churn labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tenure = rng.integers(30, 1500, n)
    recency = np.minimum(tenure, rng.exponential(60, n).astype(int))
    frequency = rng.poisson(1 + tenure / 60) + 1
    aov = rng.lognormal(3.5, 0.5, n)
    orders_90d = np.minimum(frequency, rng.poisson(frequency * 90 / tenure))
    orders_30d = np.minimum(orders_90d, rng.poisson(orders_90d / 3))
    returns = rng.beta(1, 10, n)
    stockouts = rng.poisson(0.5, n)
    trend = np.clip(np.where(orders_90d > 0, orders_30d / np.maximum(orders_90d / 3, 1e-9), 0), 0, 3)
    ipt_mean = np.where(frequency >= 2, tenure / frequency, -1.0)
    columns = {
        "recency_days": recency,
        "tenure_days": tenure,
        "first_purchase_days": tenure,
        "frequency": frequency,
        "monetary": frequency * aov * (1 - returns),
        "avg_order_value": aov,
        "orders_30d": orders_30d,
        "orders_90d": orders_90d,
        "spend_30d": orders_30d * aov,
        "spend_90d": orders_90d * aov,
        "trend_30_90": trend,
        "ipt_mean_days": ipt_mean,
        "ipt_std_days": np.where(frequency >= 3, ipt_mean * rng.uniform(0.2, 0.8, n), -1.0),
        "ipt_max_days": np.where(frequency >= 2, ipt_mean * rng.uniform(1, 3, n), -1.0),
        "basket_size": rng.lognormal(1, 0.4, n),
        "category_diversity": rng.poisson(3, n) + 1,
        "discount_share": rng.beta(2, 5, n),
        "returns_rate": returns,
        "stockouts_met_90d": stockouts,
        "online_share": rng.beta(2, 3, n),
    }
    logit = -1.0 + 0.02 * recency - 0.15 * orders_90d + 0.6 * stockouts - 0.5 * trend + rng.normal(0, 0.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    rows = np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in FEATURE_NAMES])
    return rows.astype(np.float32), labels


def model_inputs(rows: np.ndarray) -> np.ndarray:
    """Stored feature rows with the benchmark model's BG/NBD features appended."""
    import numpy as np

    from shelfwise.churn import bgnbd
    from shelfwise.churn.scoring import derived_features

    columns = {name: rows[:, i].astype(np.float64) for i, name in enumerate(FEATURE_NAMES)}
    derived = derived_features(bgnbd.BgNbdParams(**BGNBD), columns)
    return np.column_stack([rows, *(derived[name] for name in DERIVED_NAMES)]).astype(np.float32)


def train_churn_booster(rows: np.ndarray, labels: np.ndarray, trees: int, depth: int, seed: int) -> xgb.Booster:
    import xgboost as xgb

    params = {"objective": "binary:logistic", "max_depth": depth, "eta": 0.1, "nthread": 2, "seed": seed}
    matrix = xgb.DMatrix(model_inputs(rows), labels, feature_names=list(MODEL_FEATURES))
    return xgb.train(params, matrix, num_boost_round=trees)


def write_churn_artifact(
    booster: xgb.Booster,
    archive: Path,
    model_version: str,
    base_rate: float,
    feature_set_version: str = FEATURE_SET.qualified_version,
) -> Path:
    """`model.tar.gz` following the churn artifact contract (docs/contracts.md)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        booster.save_model(str(folder / "model.json"))
        (folder / "features.json").write_text(json.dumps({"features": list(MODEL_FEATURES)}))
        metadata = {
            "model_version": model_version,
            "feature_set_version": feature_set_version,
            "trained_at": date.today().isoformat(),
            "cutoff": date.today().isoformat(),
            "label_horizon_days": FEATURE_SET.label_horizon_days,
            "base_rate": base_rate,
            "cold_start_rate": cold_start_rate(base_rate),
            "bgnbd": BGNBD,
            "metrics": {},
            "risk_bands": RISK_BANDS,
        }
        (folder / "metadata.json").write_text(json.dumps(metadata))
        with tarfile.open(archive, "w:gz") as tar:
            for name in ("model.json", "features.json", "metadata.json"):
                tar.add(folder / name, arcname=name)
    return archive


def cold_start_rate(base_rate: float) -> float:
    """The benchmark model's prior for customers without history: higher than the buyers' rate, as in the worlds."""
    return min(1.0, base_rate * 1.5)


def register_churn_artifact(
    cfg: Settings, archive: Path, model_version: str, approval: str = "Approved", sha256: str | None = None
) -> str:
    """Upload the artifact to the lake and register it in the churn model package group, its sha256 recorded as the
    pipeline records it; returns the package ARN."""
    from shelfwise.lake import Lake
    from shelfwise.model_cache import sha256_of
    from shelfwise.pipelines.registry import register_model_package, sagemaker_client

    lake = Lake(cfg)
    key = f"models/churn/{model_version}/model.tar.gz"
    lake.upload_file(archive, key)
    return register_model_package(
        sagemaker_client(cfg),
        group=cfg.model_group("churn"),
        model_data_url=lake.uri(key),
        image_uri=XGBOOST_IMAGE,
        metrics_uri=lake.uri(f"models/churn/{model_version}/evaluation.json"),
        approval_status=approval,
        properties={
            "model_version": model_version,
            "artifact_sha256": sha256 or sha256_of(archive),
            "feature_set_version": FEATURE_SET.qualified_version,
        },
    )


def prepare_serving_world(
    cfg: Settings, customers: int, cold: int, trees: int, depth: int, seed: int = 7, model_version: str = "v-bench"
) -> ServingWorld:
    """Train, package and register a churn model, and put its customers (and some cold starts) in the store."""
    from shelfwise.churn.publish import ChurnRecord
    from shelfwise.online_store import write_items

    rows, labels = synthetic_feature_rows(customers, seed)
    booster = train_churn_booster(rows, labels, trees, depth, seed)
    base_rate = float(labels.mean())
    with tempfile.TemporaryDirectory() as tmp:
        archive = write_churn_artifact(booster, Path(tmp) / "model.tar.gz", model_version, base_rate)
        arn = register_churn_artifact(cfg, archive, model_version)
    by_customer = {f"C{i:06d}": dict(zip(FEATURE_NAMES, map(float, row), strict=True)) for i, row in enumerate(rows)}
    cold_ids = [f"C{customers + i:06d}" for i in range(cold)]
    probabilities = booster.inplace_predict(model_inputs(rows))
    today = date.today().isoformat()
    records = [
        ChurnRecord(customer_id, features, today, probability=float(p), model_version=model_version)
        for (customer_id, features), p in zip(by_customer.items(), probabilities, strict=True)
    ]
    records += [ChurnRecord(customer_id, None, today) for customer_id in cold_ids]
    write_items((r.to_item() for r in records), table=cfg.online_table)
    return ServingWorld(model_version, arn, booster, by_customer, cold_ids, base_rate, cold_start_rate(base_rate))


# ---- what the benchmarks share ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    name: str
    samples_ms: list[float]

    def percentile(self, q: float) -> float:
        import numpy as np

        return float(np.percentile(self.samples_ms, q))


def time_calls(name: str, calls: list[Callable[[], object]], advance: Callable[[], None]) -> Latency:
    samples = []
    for call in calls:
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
        advance()
    return Latency(name, samples)


def warm_latencies(
    suites: list[tuple[str, list[Callable[[], object]]]], progress: Progress, task: TaskID
) -> list[Latency]:
    """Each suite's calls timed one by one, after 50 of them as a warm-up (model load, connection pool, caches)."""
    import contextlib
    import io

    results = []
    with contextlib.redirect_stdout(io.StringIO()):  # the metrics' EMF lines, which CloudWatch reads in AWS
        for name, calls in suites:
            for call in calls[:50]:
                call()
            progress.update(task, description=name, total=len(calls), completed=0)
            results.append(time_calls(name, calls, lambda: progress.advance(task)))
    return results


def latency_table(title: str, rows: list[tuple[Latency, list[Latency | None]]], ratio_columns: list[str]) -> Table:
    """p50 and p99 of each measurement, and its p50 over each of its baselines' (a blank where it has none)."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("measurement", "p50 ms", "p99 ms", *ratio_columns):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    for lat, baselines in rows:
        ratios = ["" if base is None else _ratio(lat.percentile(50) / base.percentile(50)) for base in baselines]
        table.add_row(lat.name, f"{lat.percentile(50):.3f}", f"{lat.percentile(99):.3f}", *ratios)
    return table


def _ratio(value: float) -> str:
    # Two decimals below 1, where one would print a measurement a twentieth of its baseline's as 0.0x.
    return f"{value:.1f}x" if value >= 1 else f"{value:.2f}x"


def load_average_line(load: tuple[float, float, float]) -> str:
    # Latency tails on a shared machine follow its load; print it so that runs can be compared fairly.
    return f"load average (1, 5, 15 min) at the end of the warm runs: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}"


_COLD_START_SCRIPT = """
import json, sys, time
MODE, BLOCKED, TARGET, PAYLOAD = sys.argv[1], set(sys.argv[2].split(",")) - {""}, sys.argv[3], sys.argv[4]

class HideFromBundle:
    # Packages that the Lambda bundle does not contain; libraries import them only if they are present.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(name)
        return None

sys.meta_path.insert(0, HideFromBundle())
start = time.perf_counter()
if MODE == "churn":  # ready once the registered model is loaded
    sys.path.insert(0, TARGET)
    import app
    imported = time.perf_counter()
    app.service().model()
elif MODE == "demand":  # ready once a first request is answered (the client and the resolver warm up lazily)
    sys.path.insert(0, TARGET)
    import app
    imported = time.perf_counter()
    from types import SimpleNamespace
    context = SimpleNamespace(
        function_name="cold", memory_limit_in_mb=1024, aws_request_id="cold",
        invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:cold",
    )
    answer = app.handler(json.loads(PAYLOAD), context)
    if answer["statusCode"] != 200:
        sys.exit(f"the first request was answered {answer['statusCode']}: {answer['body']}")
elif MODE == "onnx":  # the visual floor: the model and index libraries, the same files from disk, one query
    import faiss, numpy, onnxruntime
    imported = time.perf_counter()
    session = onnxruntime.InferenceSession(TARGET + "/model.onnx", providers=["CPUExecutionProvider"])
    index = faiss.read_index(TARGET + "/index.faiss")
    (image,) = session.get_inputs()
    index.search(session.run(None, {image.name: numpy.zeros([1, *image.shape[1:]], numpy.float32)})[0], 10)
elif MODE == "dynamodb":  # the demand floor: the bundle's libraries and one GetItem of the same item, no handler
    import boto3, numpy, pydantic
    imported = time.perf_counter()
    boto3.client("dynamodb").get_item(**json.loads(PAYLOAD))
else:  # "xgboost", the churn floor: xgboost alone, loading the same model from a local file
    import xgboost
    imported = time.perf_counter()
    xgboost.Booster().load_model(TARGET)
ready = time.perf_counter()
print(json.dumps({"imports_s": imported - start, "ready_s": ready - imported, "total_s": ready - start}))
"""

#: What the full development environment has and the Lambda bundle (lambdas/churn/requirements.txt) has not.
NOT_IN_BUNDLE = ("sklearn", "pandas", "pyarrow", "matplotlib", "pyspark", "sagemaker", "torch")
#: The demand bundle (lambdas/demand/requirements.txt) has no model library either.
DEMAND_NOT_IN_BUNDLE = (*NOT_IN_BUNDLE, "xgboost", "scipy", "gluonts")


def cold_start(
    repetitions: int, mode: str, target: Path, hidden: tuple[str, ...], payload: str = ""
) -> dict[str, float]:
    """Median seconds of imports and of getting ready to answer, each measured inside a fresh interpreter.

    `mode` "churn" imports the churn handler from `target` (its folder) and loads the registered model; "xgboost"
    imports xgboost alone and loads `target` (a model.json); "demand" imports the demand handler from `target` and
    answers the API Gateway event `payload` (JSON), which serves any handler's first request (the visual one's too);
    "dynamodb" imports boto3, numpy and pydantic and makes the GetItem request `payload`; "onnx" imports
    onnxruntime and faiss, loads `target`/model.onnx and `target`/index.faiss and embeds and searches once.
    """
    runs = []
    for _ in range(repetitions):
        result = subprocess.run(
            [sys.executable, "-c", _COLD_START_SCRIPT, mode, ",".join(hidden), str(target), payload],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"POWERTOOLS_METRICS_DISABLED": "true"},
        )
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def cold_table(
    runs: int, ready_column: str, rows: list[tuple[str, dict[str, float]]], floor: dict[str, float]
) -> Table:
    from rich.table import Table

    table = Table(title=f"cold initialisation, median of {runs} fresh interpreters")
    for column in ("what", "imports s", ready_column, "total s", "total / floor"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for name, run in rows:
        ratio = run["total_s"] / floor["total_s"]
        table.add_row(
            name, f"{run['imports_s']:.3f}", f"{run['ready_s']:.3f}", f"{run['total_s']:.3f}", f"{ratio:.1f}x"
        )
    return table


@contextmanager
def bench_aws(console: Console) -> Iterator[tuple[Settings, Progress, TaskID]]:
    """A local AWS whose handlers log warnings only, and a progress display with one task to describe the steps."""
    from rich.progress import Progress

    from shelfwise.config import settings
    from shelfwise.local_aws import local_aws

    with local_aws() as aws, Progress(console=console, transient=True) as progress:
        os.environ["SHELFWISE_LOG_LEVEL"] = "WARNING"
        settings.cache_clear()
        yield aws.settings, progress, progress.add_task("preparing", total=None)


# ---- bench serving churn ---------------------------------------------------------------------------------------


@app.command("churn")
def churn(
    requests: int = typer.Option(2000, min=10, help="Timed requests per measurement."),
    customers: int = typer.Option(5000, min=10, help="Customers in the online store."),
    trees: int = typer.Option(600, min=1, help="Boosting rounds (the churn pipeline's upper bound by default)."),
    depth: int = typer.Option(4, min=1, help="Tree depth (the churn pipeline's default)."),
    cold_runs: int = typer.Option(5, min=1, help="Fresh interpreters for the cold start (median)."),
) -> None:
    """Churn API: warm latency with and without the DynamoDB round trip, the raw model, and cold initialisation."""
    import numpy as np
    import xgboost as xgb
    from rich.console import Console

    from shelfwise.local_api import LAMBDAS_DIR, LocalLambdaContext, load_lambda, proxy_event

    console = Console()
    with bench_aws(console) as (cfg, progress, task):
        progress.update(task, description="training and registering the benchmark model")
        world = prepare_serving_world(cfg, customers, cold=10, trees=trees, depth=depth)
        lam = load_lambda("churn", fresh=True)
        context = LocalLambdaContext(function_name="churn-bench")
        rng = random.Random(1)
        ids = rng.choices(sorted(world.rows), k=requests)
        row = model_inputs(np.asarray([list(world.rows[ids[0]].values())], dtype=np.float32))

        # A second container whose online store is a dict filled by real reads: the GET without the round trip.
        stub = load_lambda("churn", fresh=True)
        stub_service = stub.service()
        store = {c: stub_service.customer(c) for c in set(ids)}
        stub_service.customer = store.get

        def get(customer_id: str, container: ModuleType = lam) -> Callable[[], object]:
            event = proxy_event(
                "GET",
                f"/customers/{customer_id}/churn",
                resource="/customers/{customer_id}/churn",
                path_parameters={"customer_id": customer_id},
                headers={"Accept": "application/json"},
            )
            return lambda: container.handler(event, context)

        def post(customer_id: str) -> Callable[[], object]:
            body = json.dumps({"features": _typed(world.rows[customer_id])})
            event = proxy_event("POST", "/churn/score", headers={"Content-Type": "application/json"}, body=body)
            return lambda: lam.handler(event, context)

        world.booster.set_param({"nthread": 1})  # as the handler's model (shelfwise.churn.scoring.load_model)

        def contribs() -> object:
            matrix = xgb.DMatrix(row, feature_names=list(MODEL_FEATURES), nthread=1)
            return world.booster.predict(matrix, pred_contribs=True)

        suites: list[tuple[str, list[Callable[[], object]]]] = [
            ("GET /customers/{id}/churn (DynamoDB on loopback)", [get(c) for c in ids]),
            ("GET /customers/{id}/churn (in-memory store)", [get(c, stub) for c in ids]),
            ("POST /churn/score (no lookup)", [post(c) for c in ids]),
            ("raw xgboost inplace_predict, 1 row", [lambda: world.booster.inplace_predict(row)] * requests),
            ("raw xgboost DMatrix + pred_contribs, 1 row", [contribs] * requests),
        ]
        results = warm_latencies(suites, progress, task)
        load = os.getloadavg()
        progress.update(task, description="cold starts (fresh interpreters)", total=None)
        handler_dir = LAMBDAS_DIR / "churn"
        cold_bundle = cold_start(cold_runs, "churn", handler_dir, NOT_IN_BUNDLE)
        cold_venv = cold_start(cold_runs, "churn", handler_dir, ())
        with tempfile.TemporaryDirectory() as tmp:
            model_json = Path(tmp) / "model.json"
            world.booster.save_model(str(model_json))
            cold_floor = cold_start(cold_runs, "xgboost", model_json, NOT_IN_BUNDLE)

    get_lat, stub_lat, post_lat, raw, raw_contribs = results
    title = f"churn API, {requests} requests each, model {trees} trees depth {depth}"
    console.print(latency_table(title, [(lat, [raw]) for lat in results], ["p50 / raw"]))
    console.print(load_average_line(load))
    cold_rows = [
        ("handler, Lambda bundle (packages not in requirements hidden)", cold_bundle),
        ("handler, full venv", cold_venv),
        ("floor: import xgboost + load model.json from disk (bundle)", cold_floor),
    ]
    console.print(cold_table(cold_runs, "model load s", cold_rows, cold_floor))
    get_p50, get_p99 = get_lat.percentile(50), get_lat.percentile(99)
    post_p50, post_p99 = post_lat.percentile(50), post_lat.percentile(99)
    raw_us, contribs_us = raw.percentile(50) * 1000, raw_contribs.percentile(50) * 1000
    console.print(
        f"churn serving: GET p50 {get_p50:.2f} ms p99 {get_p99:.2f} ms (DynamoDB loopback), "
        f"p50 {stub_lat.percentile(50):.2f} ms p99 {stub_lat.percentile(99):.2f} ms (in-memory store); "
        f"what-if p50 {post_p50:.2f} ms p99 {post_p99:.2f} ms; target p99 <= 5 ms without DynamoDB; "
        f"raw predict p50 {raw_us:.0f} us, contribs p50 {contribs_us:.0f} us; "
        f"what-if/raw {post_p50 * 1000 / raw_us:.0f}x; "
        f"cold init {cold_bundle['total_s']:.2f} s bundle ({cold_bundle['total_s'] / cold_floor['total_s']:.1f}x the "
        f"xgboost floor {cold_floor['total_s']:.2f} s), {cold_venv['total_s']:.2f} s venv (target <= 1.5 s)"
    )


def _typed(features: dict[str, float]) -> dict[str, Any]:
    """A feature row as a client would send it: integer features as JSON integers."""
    return {f.name: int(features[f.name]) if f.dtype == "int" else features[f.name] for f in FEATURES}


# ---- bench serving forecast ------------------------------------------------------------------------------------

#: Stores by region, named as in the M5 data; SKUs are spread over these departments (category: the prefix).
STORES_BY_REGION = {"west": ("CA_1", "CA_2", "CA_3", "CA_4"), "south": ("TX_1", "TX_2", "TX_3"),
                    "midwest": ("WI_1", "WI_2", "WI_3")}  # fmt: skip
DEPARTMENTS = ("FOODS_1", "FOODS_2", "FOODS_3", "HOBBIES_1", "HOBBIES_2", "HOUSEHOLD_1", "HOUSEHOLD_2")
#: Weekday multipliers of demand (Monday first): weekends sell more, as in the worlds.
WEEKLY_PROFILE = (0.95, 0.9, 0.9, 0.95, 1.1, 1.3, 1.25)
#: Negative binomial shape: variance mu + mu^2 / shape, overdispersed as store x SKU sales are.
NB_SHAPE = 2.0
HISTORY_DAYS = 112
#: Share of series that are cold starts (launched less than four weeks ago).
COLD_SHARE = 0.01


@dataclass(frozen=True)
class ForecastWorld:
    """What the online store holds after a batch forecast was published."""

    series: list[tuple[str, str]]
    aggregates: list[tuple[AggregateLevel, str | None]]
    written: int
    publish_seconds: float


def demand_keys(n_series: int) -> pd.DataFrame:
    """`n_series` store x SKU pairs with the static columns the sums are grouped by."""
    import pandas as pd

    stores = [(store, region) for region, names in STORES_BY_REGION.items() for store in names]
    n_skus = -(-n_series // len(stores))
    skus = [f"{DEPARTMENTS[i % len(DEPARTMENTS)]}_{i // len(DEPARTMENTS) + 1:03d}" for i in range(n_skus)]
    rows = [
        {"store_id": store, "sku": sku, "region": region, "department": sku.rsplit("_", 1)[0],
         "category": sku.split("_", 1)[0]}
        for sku in skus
        for store, region in stores
    ]  # fmt: skip
    return pd.DataFrame(rows[:n_series])


def demand_paths(n_series: int, n_paths: int, horizon: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Negative binomial sample paths `(series, paths, horizon)` and a history `(series, HISTORY_DAYS)` of the same
    series: a lognormal level per series (most sell a unit or two a day, a few dozens) times a weekly profile."""
    import numpy as np

    rng = np.random.default_rng(seed)
    level = rng.lognormal(0.3, 1.0, size=n_series)
    profile = np.asarray(WEEKLY_PROFILE)

    def draws(days: int, size: tuple[int, ...]) -> np.ndarray:
        mean = level[:, None] * np.resize(profile, days)[None, :]
        mean = mean.reshape(n_series, *([1] * (len(size) - 2)), days)
        return rng.negative_binomial(NB_SHAPE, NB_SHAPE / (NB_SHAPE + mean), size=size).astype(np.float32)

    return draws(horizon, (n_series, n_paths, horizon)), draws(HISTORY_DAYS, (n_series, HISTORY_DAYS))


def prepare_forecast_world(cfg: Settings, n_series: int, n_paths: int, seed: int = 7) -> ForecastWorld:
    """Turn sample paths into records as the batch forecast does (`shelfwise.demand.batch_forecast`), write them as
    its `online_records.jsonl` lines and publish those with the demand publisher into the online store."""
    import itertools

    import numpy as np

    from shelfwise.demand.batch_forecast import aggregate_records, series_records
    from shelfwise.demand.models import HORIZON
    from shelfwise.demand.publish import AggregateRecord, online_line, publish_lines

    keys = demand_keys(n_series)
    paths, history = demand_paths(len(keys), n_paths, HORIZON, seed)
    cold = np.random.default_rng(seed + 1).random(len(keys)) < COLD_SHARE
    as_of, version = date.today(), "v-bench-demand"
    records: list[ForecastRecord | AggregateRecord] = list(
        itertools.chain(
            series_records(keys, paths, as_of, version, cold),
            aggregate_records(keys, paths, history, as_of, version, cold, seed),
        )
    )
    lines = [json.dumps(online_line(record), separators=(",", ":")) for record in records]
    started = time.perf_counter()
    report = publish_lines(lines, table=cfg.online_table)
    publish_seconds = time.perf_counter() - started
    if report.written != len(lines):
        raise RuntimeError(f"published {report.written} of {len(lines)} records: {report.summary()}")
    series = list(zip(keys["store_id"], keys["sku"], strict=True))
    aggregates = [(r.level, r.key) for r in records if isinstance(r, AggregateRecord)]
    return ForecastWorld(series, aggregates, report.written, publish_seconds)


class ReplayedDynamoDB:
    """A DynamoDB client answering GetItem with the real client's answer to the same request, recorded on first use:
    the handler's whole work (deserialising, checking, answering) without the network round trip."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._answers: dict[tuple[str, ...], dict[str, Any]] = {}

    def get_item(self, **request: Any) -> dict[str, Any]:
        key = (request["TableName"], *(value["S"] for _, value in sorted(request["Key"].items())))
        answer = self._answers.get(key)
        if answer is None:
            answer = self._answers[key] = self._client.get_item(**request)
        return answer


def series_event(store_id: str, sku: str) -> dict[str, Any]:
    """As API Gateway sends it: the path percent-encoded, the path parameters decoded."""
    from urllib.parse import quote

    from shelfwise.local_api import proxy_event

    return proxy_event(
        "GET",
        f"/forecast/stores/{quote(store_id, safe='')}/skus/{quote(sku, safe='')}",
        resource="/forecast/stores/{store_id}/skus/{sku}",
        path_parameters={"store_id": store_id, "sku": sku},
        headers={"Accept": "application/json"},
    )


def aggregate_event(level: str, key: str | None) -> dict[str, Any]:
    from shelfwise.local_api import proxy_event

    query = [("level", level)] if key is None else [("level", level), ("key", key)]
    return proxy_event("GET", "/forecast/aggregates", query=query, headers={"Accept": "application/json"})


def decision_bodies(series: list[tuple[str, str]], rng: random.Random) -> list[dict[str, Any]]:
    """Decisions as a replenishment system would ask for them: both policies, the usual service levels, lead times
    of a day to a week and a weekly review."""
    bodies = []
    for store_id, sku in series:
        common = {"store_id": store_id, "sku": sku, "on_hand": rng.randint(0, 40), "on_order": rng.randint(0, 10),
                  "lead_time_days": rng.randint(1, 7), "review_period_days": 7}  # fmt: skip
        if rng.random() < 0.5:
            bodies.append({**common, "policy": "order_up_to", "service_level": rng.choice((0.9, 0.95, 0.98))})
        else:
            cost = round(rng.uniform(1, 20), 2)
            bodies.append({**common, "policy": "newsvendor", "unit_cost": cost, "price": round(cost * 1.6, 2),
                           "salvage_value": round(cost * 0.3, 2), "holding_cost": round(cost * 0.05, 2)})  # fmt: skip
    return bodies


def decision_event(body: dict[str, Any]) -> dict[str, Any]:
    from shelfwise.local_api import proxy_event

    return proxy_event(
        "POST", "/inventory/decision", headers={"Content-Type": "application/json"}, body=json.dumps(body)
    )


def answered(response: dict[str, Any]) -> dict[str, Any]:
    """The response if it is a 200: a benchmark of error answers would measure the wrong thing."""
    if response["statusCode"] != 200:
        raise RuntimeError(f"the handler answered {response['statusCode']}: {response['body']}")
    return response


@app.command("forecast")
def forecast(
    requests: int = typer.Option(2000, min=10, help="Timed requests per measurement."),
    series: int = typer.Option(3000, min=10, help="Store x SKU series in the online store."),
    paths: int = typer.Option(200, min=10, help="Sample paths per series (the batch forecast's default)."),
    cold_runs: int = typer.Option(5, min=1, help="Fresh interpreters for the cold start (median)."),
) -> None:
    """Demand API: warm latency of each route with and without the DynamoDB round trip, the routes' work without
    the handler, the round trip alone, and cold initialisation."""
    from rich.console import Console

    from shelfwise import online_store
    from shelfwise.demand.api import DecisionRequest, decide, stored_demand
    from shelfwise.demand.keys import ENTITY, SORT_KEY, series_id
    from shelfwise.local_api import LAMBDAS_DIR, LocalLambdaContext, load_lambda

    console = Console()
    with bench_aws(console) as (cfg, progress, task):
        progress.update(task, description=f"forecasting and publishing {series:,} series")
        world = prepare_forecast_world(cfg, series, paths)
        lam = load_lambda("demand", fresh=True)
        context = LocalLambdaContext(function_name="demand-bench")
        rng = random.Random(1)
        picked = rng.choices(world.series, k=requests)
        sums = rng.choices(world.aggregates, k=requests)
        bodies = decision_bodies(picked, rng)

        # A second container whose DynamoDB client replays the real answers: the handler without the round trip.
        stub = load_lambda("demand", fresh=True)
        service = stub.service()
        replay = ReplayedDynamoDB(stub.dynamodb())
        service.dynamodb = lambda: replay
        for store_id, sku in set(picked):
            service.forecast(store_id, sku)
        for level, key in set(sums):
            service.aggregate(level, key)

        def handled(event: dict[str, Any], container: ModuleType) -> Callable[[], object]:
            return lambda: answered(container.handler(event, context))

        def decided(body: dict[str, Any]) -> Callable[[], object]:
            request = DecisionRequest(**body)
            return lambda: decide(stored_demand(service.forecast(request.store_id, request.sku)), request)

        client = lam.dynamodb()

        def get_item(store_id: str, sku: str) -> Callable[[], object]:
            item_key = online_store.item_key(ENTITY, series_id(store_id, sku), SORT_KEY)
            return lambda: client.get_item(TableName=cfg.online_table, Key=item_key)

        series_events = [series_event(s, k) for s, k in picked]
        sum_events = [aggregate_event(level, key) for level, key in sums]
        decision_events = [decision_event(body) for body in bodies]
        suites: list[tuple[str, list[Callable[[], object]]]] = [
            ("GET /forecast/stores/{id}/skus/{sku} (DynamoDB on loopback)", [handled(e, lam) for e in series_events]),
            ("GET /forecast/stores/{id}/skus/{sku} (GetItem replayed)", [handled(e, stub) for e in series_events]),
            ("GET /forecast/aggregates (DynamoDB on loopback)", [handled(e, lam) for e in sum_events]),
            ("GET /forecast/aggregates (GetItem replayed)", [handled(e, stub) for e in sum_events]),
            ("POST /inventory/decision (DynamoDB on loopback)", [handled(e, lam) for e in decision_events]),
            ("POST /inventory/decision (GetItem replayed)", [handled(e, stub) for e in decision_events]),
            (
                "no handler: GetItem replayed -> series record",
                [functools.partial(service.forecast, *p) for p in picked],
            ),
            ("no handler: GetItem replayed -> sum record", [functools.partial(service.aggregate, *a) for a in sums]),
            ("no handler: GetItem replayed -> record -> decision", [decided(body) for body in bodies]),
            ("DynamoDB GetItem alone (boto3, moto on loopback)", [get_item(s, k) for s, k in picked]),
        ]
        results = warm_latencies(suites, progress, task)
        load = os.getloadavg()
        progress.update(task, description="cold starts (fresh interpreters)", total=None)
        handler_dir, first = LAMBDAS_DIR / "demand", json.dumps(series_event(*picked[0]))
        cold_bundle = cold_start(cold_runs, "demand", handler_dir, DEMAND_NOT_IN_BUNDLE, first)
        cold_venv = cold_start(cold_runs, "demand", handler_dir, (), first)
        request = {"TableName": cfg.online_table, "Key": online_store.item_key(ENTITY, series_id(*picked[0]), SORT_KEY)}
        cold_floor = cold_start(cold_runs, "dynamodb", handler_dir, DEMAND_NOT_IN_BUNDLE, json.dumps(request))

    print_forecast_results(
        console, world, results, load, paths, ColdStarts(cold_runs, cold_bundle, cold_venv, cold_floor)
    )


@dataclass(frozen=True)
class ColdStarts:
    """Medians of `runs` fresh interpreters (`cold_start`): the handler with the bundle's packages, with the whole
    venv, and the floor."""

    runs: int
    bundle: dict[str, float]
    venv: dict[str, float]
    floor: dict[str, float]


def print_forecast_results(
    console: Console,
    world: ForecastWorld,
    results: list[Latency],
    load: tuple[float, float, float],
    n_paths: int,
    cold: ColdStarts,
) -> None:
    """The latency table (each route against its work without the handler and against GetItem alone), the cold
    start table and the key figures."""
    series_db, series_mem, sum_db, sum_mem, decision_db, decision_mem, series_core, sum_core, decision_core, item = (
        results
    )
    title = (
        f"demand API, {len(item.samples_ms)} requests each; online store: {len(world.series):,} store x SKU "
        f"and {len(world.aggregates)} sum forecasts from {n_paths} paths x 28 days, published in "
        f"{world.publish_seconds:.0f} s"
    )
    # Each route against its own work without the handler, and everything against the round trip alone.
    cores = [series_core, series_core, sum_core, sum_core, decision_core, decision_core, None, None, None, None]
    rows = [(lat, [core, item]) for lat, core in zip(results, cores, strict=True)]
    console.print(latency_table(title, rows, ["p50 / no handler", "p50 / GetItem"]))
    console.print(load_average_line(load))
    bundle, venv, floor = cold.bundle, cold.venv, cold.floor
    cold_rows = [
        ("handler, Lambda bundle (packages not in requirements hidden)", bundle),
        ("handler, full venv", venv),
        ("floor: import boto3, numpy, pydantic + one GetItem (bundle)", floor),
    ]
    console.print(cold_table(cold.runs, "first request s", cold_rows, floor))
    figures = ", ".join(
        f"{name} p50 {mem.percentile(50):.2f} ms p99 {mem.percentile(99):.2f} ms "
        f"({db.percentile(99):.2f} ms with DynamoDB)"
        for name, mem, db in (
            ("series GET", series_mem, series_db),
            ("sums GET", sum_mem, sum_db),
            ("decision POST", decision_mem, decision_db),
        )
    )
    worst = max(series_mem.percentile(99), sum_mem.percentile(99), decision_mem.percentile(99))
    overhead = series_mem.percentile(50) / series_core.percentile(50)
    console.print(
        f"forecast serving: {figures}; worst p99 without DynamoDB {worst:.2f} ms (target <= 5 ms); "
        f"GetItem alone p50 {item.percentile(50):.2f} ms; the series GET is {overhead:.1f}x its work without the "
        f"handler; cold init {bundle['total_s']:.2f} s bundle "
        f"({bundle['total_s'] / floor['total_s']:.1f}x the floor {floor['total_s']:.2f} s), {venv['total_s']:.2f} s "
        f"venv (target <= 1 s)"
    )
