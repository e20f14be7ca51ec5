"""The local end-to-end run: world -> lake -> Glue jobs -> churn pipeline -> online store -> API -> requests.

Each stage is a function of the previous stages' results; `run_demo` chains them inside a local AWS and returns
what the CLI prints. Nothing here needs an AWS account or Docker.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shelfwise.config import settings
from shelfwise.lake import Lake
from shelfwise.local_aws import local_aws

Progress = Callable[[str, float], None]


@dataclass
class StageTime:
    name: str
    seconds: float
    detail: str = ""


@dataclass
class ApiExchange:
    method: str
    path: str
    status: int
    body: dict[str, Any]


@dataclass
class DemoResult:
    stages: list[StageTime] = field(default_factory=list)
    zones: dict[str, tuple[int, int]] = field(default_factory=dict)  # objects, bytes
    zone_rows: dict[str, int] = field(default_factory=dict)  # rows the stages wrote, by zone
    world_rows: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    truth_auc: float | None = None
    pipeline_status: str = ""
    failure_reason: str | None = None
    model_version: str | None = None
    exchanges: list[ApiExchange] = field(default_factory=list)
    api_url: str | None = None
    report_path: Path | None = None


@dataclass(frozen=True)
class DemoOptions:
    scale: str = "default"
    seed: int = 7
    world_dir: Path | None = None
    stop_after: str | None = None  # a stage name, to run part of the chain


STAGES = ("world", "ingest", "curate_orders", "customer_features", "pipeline", "online_store", "api")


class _Timer:
    def __init__(self, result: DemoResult) -> None:
        self.result = result

    @contextmanager
    def stage(self, name: str) -> Iterator[StageTime]:
        record = StageTime(name, 0.0)
        start = time.perf_counter()
        yield record
        record.seconds = time.perf_counter() - start
        self.result.stages.append(record)


def run_demo(
    options: DemoOptions, progress: Progress | None = None, serve: Callable[[str], None] | None = None
) -> DemoResult:
    """Run the chain; `serve(url)` is called while the API is up (e.g. to keep it running for a user)."""
    from shelfwise.churn_report import held_out_scores, plot_churn_report, truth_auc
    from shelfwise.glue_local import run_job
    from shelfwise.ingest import ingest_world
    from shelfwise.local_api import LocalLambdaContext, load_lambda, start_local_api
    from shelfwise.pipelines.local import run_churn_pipeline
    from shelfwise.world import generate_world

    result = DemoResult()
    timer = _Timer(result)
    say = progress or (lambda _stage, _fraction: None)
    world_dir = options.world_dir or settings().work_dir / "worlds" / f"{options.scale}-{options.seed}"

    with local_aws() as aws:
        lake = Lake(aws.settings)
        with timer.stage("world") as st:
            summary = generate_world(options.scale, options.seed, world_dir, progress=say)
            result.world_rows = dict(summary.rows)
            st.detail = f"{sum(summary.rows.values()):,} rows, {summary.start_date} .. {summary.end_date}"
        if options.stop_after == "world":
            return _finish(result, lake)

        with timer.stage("ingest") as st:
            report = ingest_world(world_dir, lake, progress=say)
            result.zone_rows["raw"] = sum(report.rows.values())
            st.detail = f"{result.zone_rows['raw']:,} rows into raw/"
        if options.stop_after == "ingest":
            return _finish(result, lake)

        for job in ("curate_orders", "customer_features"):
            with timer.stage(job) as st:
                say(f"Glue {job} on local Spark", 0.0)  # a Spark job reports no fraction: the bar shows the time
                job_result = run_job(job, lake)
                say(f"Glue {job} on local Spark", 1.0)
                st.detail = ", ".join(f"{k} {v:,}" for k, v in job_result.counts.items())
                _count_rows(result.zone_rows, job_result.counts)
            if options.stop_after == job:
                return _finish(result, lake)

        with timer.stage("pipeline") as st:
            run = run_churn_pipeline(lake, progress=say)
            result.pipeline_status = run.status
            result.failure_reason = run.failure_reason
            result.metrics = run.metrics
            result.model_version = run.model_version
            st.detail = f"{run.status}" + (f", model {run.model_version}" if run.model_version else "")
        if run.status != "Succeeded" or run.predictions_prefix is None or options.stop_after == "pipeline":
            return _finish(result, lake)
        predictions_prefix = run.predictions_prefix
        result.zone_rows["models"] = 1
        predictions = lake.read_table(predictions_prefix).to_pylist()
        result.zone_rows["predictions"] = len(predictions)

        if run.artifact_key is not None:
            held = held_out_scores(lake, run.artifact_key, world_dir / "truth" / "customers.parquet")
            result.truth_auc = truth_auc(held)
            result.report_path = plot_churn_report(held, settings().work_dir / "reports" / "churn.png")

        with timer.stage("online_store") as st:
            # The publish Lambda's own handler, with the event Step Functions sends it in AWS.
            publish = load_lambda("churn_publish", fresh=True).handler
            event = {"predictions_prefix": predictions_prefix}
            published = publish(event, LocalLambdaContext("churn-publish"))
            st.detail = f"{published['written']:,} items"
            if published["rejected"]:
                st.detail += f", {published['rejected']:,} rejected (see {published['quarantine_key']})"

        with timer.stage("api") as st:
            api = start_local_api(port=0)
            try:
                result.api_url = api.url
                result.exchanges = _sample_requests(api.url, lake, predictions)
                st.detail = f"{len(result.exchanges)} requests at {api.url}"
                if serve is not None:
                    serve(api.url)
            finally:
                api.stop()
        return _finish(result, lake)


def _count_rows(zone_rows: dict[str, int], counts: dict[str, int]) -> None:
    """Add a Glue job's written rows to their zones (its counts name them)."""
    zone_rows["curated"] = zone_rows.get("curated", 0) + counts.get("curated", 0)
    zone_rows["quarantine"] = zone_rows.get("quarantine", 0) + counts.get("quarantined", 0)
    written = counts.get("training_rows", 0) + counts.get("serving_rows", 0)
    zone_rows["features"] = zone_rows.get("features", 0) + written


def _finish(result: DemoResult, lake: Lake) -> DemoResult:
    result.zones = lake.summary()
    return result


def _call(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> ApiExchange:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return ApiExchange(method, path, response.status, json.loads(response.read()))
    except urllib.error.HTTPError as error:
        return ApiExchange(method, path, error.code, json.loads(error.read() or b"{}"))


def _sample_requests(url: str, lake: Lake, predictions: list[dict[str, Any]]) -> list[ApiExchange]:
    """A few real requests: the riskiest and safest scored customers, a cold start, an unknown id, a what-if."""
    from shelfwise.churn_features import FEATURE_NAMES

    scores = sorted(predictions, key=lambda r: r["probability"])
    features = {r["customer_id"]: r for r in lake.read_table("features/churn/serving/").to_pylist()}
    customers = lake.read_table("raw/customers/").column("customer_id").to_pylist()
    cold = next((c for c in customers if c not in features), None)
    exchanges = [
        _call(url, "GET", f"/customers/{scores[-1]['customer_id']}/churn"),
        _call(url, "GET", f"/customers/{scores[len(scores) // 2]['customer_id']}/churn"),
        _call(url, "GET", f"/customers/{scores[0]['customer_id']}/churn"),
    ]
    if cold is not None:
        exchanges.append(_call(url, "GET", f"/customers/{cold}/churn"))
    exchanges.append(_call(url, "GET", "/customers/C-does-not-exist/churn"))
    risky = features[scores[-1]["customer_id"]]
    what_if = {name: risky[name] for name in FEATURE_NAMES}
    # What if the riskiest customer had just come back twice this month?
    what_if["recency_days"] = 3
    what_if["orders_30d"] = max(int(what_if["orders_30d"]), 2)
    what_if["orders_90d"] = max(int(what_if["orders_90d"]), what_if["orders_30d"])
    what_if["trend_30_90"] = min(3.0, 3 * what_if["orders_30d"] / what_if["orders_90d"])
    exchanges.append(_call(url, "POST", "/churn/score", {"features": what_if}))
    exchanges.append(_call(url, "POST", "/churn/score", {"features": {"recency_days": "soon"}}))
    return exchanges


__all__ = ["STAGES", "DemoOptions", "DemoResult", "run_demo"]
