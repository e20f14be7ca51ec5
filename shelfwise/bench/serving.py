"""`shelfwise bench serving ...`: latency of the API handlers against the raw model, and their cold start.

Also home of the serving fixture (a trained churn model registered in the local registry, customers in the online
store) that the benchmark and the API tests share.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
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
    import xgboost as xgb

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


# ---- the benchmark ---------------------------------------------------------------------------------------------


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


_COLD_START_SCRIPT = """
import json, sys, time
MODE, BLOCKED, TARGET = sys.argv[1], set(sys.argv[2].split(",")) - {""}, sys.argv[3]

class HideFromBundle:
    # Packages that the Lambda bundle does not contain; xgboost imports them only if they are present.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(name)
        return None

sys.meta_path.insert(0, HideFromBundle())
start = time.perf_counter()
if MODE == "handler":
    sys.path.insert(0, TARGET)
    import app
    imported = time.perf_counter()
    app.service().model()
else:  # the floor: xgboost alone, loading the same model from a local file
    import xgboost
    imported = time.perf_counter()
    xgboost.Booster().load_model(TARGET)
loaded = time.perf_counter()
print(json.dumps({"imports_s": imported - start, "model_s": loaded - imported, "total_s": loaded - start}))
"""

#: What the full development environment has and the Lambda bundle (lambdas/churn/requirements.txt) has not.
NOT_IN_BUNDLE = ("sklearn", "pandas", "pyarrow", "matplotlib", "pyspark", "sagemaker", "torch")


def cold_start(repetitions: int, mode: str, target: Path, hidden: tuple[str, ...]) -> dict[str, float]:
    """Median seconds of imports and model load, each measured inside a fresh interpreter.

    `mode` "handler" imports the churn handler from `target` (its folder) and loads the registered model;
    "baseline" imports xgboost alone and loads `target` (a model.json).
    """
    runs = []
    for _ in range(repetitions):
        result = subprocess.run(
            [sys.executable, "-c", _COLD_START_SCRIPT, mode, ",".join(hidden), str(target)],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"POWERTOOLS_METRICS_DISABLED": "true"},
        )
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


@app.command("churn")
def churn(
    requests: int = typer.Option(2000, min=10, help="Timed requests per measurement."),
    customers: int = typer.Option(5000, min=10, help="Customers in the online store."),
    trees: int = typer.Option(600, min=1, help="Boosting rounds (the churn pipeline's upper bound by default)."),
    depth: int = typer.Option(4, min=1, help="Tree depth (the churn pipeline's default)."),
    cold_runs: int = typer.Option(5, min=1, help="Fresh interpreters for the cold start (median)."),
) -> None:
    """Churn API: warm latency with and without the DynamoDB round trip, the raw model, and cold initialisation."""
    import contextlib
    import io

    import numpy as np
    import xgboost as xgb
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from shelfwise.config import settings
    from shelfwise.local_api import LAMBDAS_DIR, LocalLambdaContext, load_lambda, proxy_event
    from shelfwise.local_aws import local_aws

    console = Console()
    with local_aws() as aws, Progress(console=console, transient=True) as progress:
        os.environ["SHELFWISE_LOG_LEVEL"] = "WARNING"
        settings.cache_clear()
        task = progress.add_task("training and registering the benchmark model", total=None)
        world = prepare_serving_world(aws.settings, customers, cold=10, trees=trees, depth=depth)
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
        results = []
        with contextlib.redirect_stdout(io.StringIO()):  # the metrics' EMF lines, which CloudWatch reads in AWS
            for name, calls in suites:
                for call in calls[:50]:
                    call()  # warm-up: model load, connection pool, caches
                progress.update(task, description=name, total=len(calls), completed=0)
                results.append(time_calls(name, calls, lambda: progress.advance(task)))
        load = os.getloadavg()
        progress.update(task, description="cold starts (fresh interpreters)", total=None)
        handler_dir = LAMBDAS_DIR / "churn"
        cold_bundle = cold_start(cold_runs, "handler", handler_dir, NOT_IN_BUNDLE)
        cold_venv = cold_start(cold_runs, "handler", handler_dir, ())
        with tempfile.TemporaryDirectory() as tmp:
            model_json = Path(tmp) / "model.json"
            world.booster.save_model(str(model_json))
            cold_floor = cold_start(cold_runs, "baseline", model_json, NOT_IN_BUNDLE)

    get_lat, stub_lat, post_lat, raw, raw_contribs = results
    table = Table(title=f"churn API, {requests} requests each, model {trees} trees depth {depth}")
    for column in ("measurement", "p50 ms", "p99 ms", "p50 / raw"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    for lat in results:
        ratio = lat.percentile(50) / raw.percentile(50)
        table.add_row(lat.name, f"{lat.percentile(50):.3f}", f"{lat.percentile(99):.3f}", f"{ratio:.1f}x")
    console.print(table)
    # Latency tails on a shared machine follow its load; print it so that runs can be compared fairly.
    console.print(
        f"load average (1, 5, 15 min) at the end of the warm runs: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}"
    )
    cold = Table(title=f"cold initialisation, median of {cold_runs} fresh interpreters")
    for column in ("what", "imports s", "model load s", "total s", "total / floor"):
        cold.add_column(column, justify="left" if column == "what" else "right")
    for name, run in (
        ("handler, Lambda bundle (packages not in requirements hidden)", cold_bundle),
        ("handler, full venv", cold_venv),
        ("floor: import xgboost + load model.json from disk (bundle)", cold_floor),
    ):
        ratio = run["total_s"] / cold_floor["total_s"]
        cold.add_row(name, f"{run['imports_s']:.3f}", f"{run['model_s']:.3f}", f"{run['total_s']:.3f}", f"{ratio:.1f}x")
    console.print(cold)
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
