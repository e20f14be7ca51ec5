"""The local end-to-end run: world -> lake -> Glue jobs -> each domain's pipelines -> online store -> API -> requests.

The chain is read from the domains' declarations (`shelfwise.domains`), in the order the daily chain in AWS runs
it: every domain's Glue jobs, then per domain with a pipeline its training pipeline (gate and registration,
approved locally), its scoring pipeline with the newest approved model on today's serving partition, and its
publisher; then the API with the requests each domain asks for. Each stage is a function of the previous stages'
results; `run_demo` returns what the CLI prints. Nothing here needs an AWS account or Docker.
"""

from __future__ import annotations

import datetime as dt
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
from shelfwise.domain import DemoReport, DemoRequest
from shelfwise.domains import DOMAINS, glue_jobs
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
    note: str = ""


@dataclass
class DemoResult:
    stages: list[StageTime] = field(default_factory=list)
    zones: dict[str, tuple[int, int]] = field(default_factory=dict)  # objects, bytes
    zone_rows: dict[str, int] = field(default_factory=dict)  # rows the stages wrote, by zone
    world_rows: dict[str, int] = field(default_factory=dict)
    run_date: str | None = None
    reports: list[DemoReport] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    exchanges: list[ApiExchange] = field(default_factory=list)
    api_url: str | None = None


@dataclass(frozen=True)
class DemoOptions:
    scale: str = "demo"
    seed: int = 7
    world_dir: Path | None = None
    stop_after: str | None = None  # a stage name, to run part of the chain
    # Training pipeline parameter overrides by domain, e.g. a looser gate for a world too small to pass the real one.
    training_params: dict[str, dict[str, float | str]] = field(default_factory=dict)


def stages() -> tuple[str, ...]:
    """The stage names in run order, as `--stop-after` takes them."""
    names = ["world", "ingest", *glue_jobs()]
    for domain in DOMAINS:
        if domain.pipeline is not None:
            names += [f"{domain.name}_training", f"{domain.name}_scoring"]
        if domain.publisher is not None:
            names.append(f"{domain.name}_publish")
    return (*names, "api")


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


class _StopRequestedError(Exception):
    """The stage `--stop-after` names has run."""


def run_demo(
    options: DemoOptions, progress: Progress | None = None, serve: Callable[[str], None] | None = None
) -> DemoResult:
    """Run the chain; `serve(url)` is called while the API is up (e.g. to keep it running for a user)."""
    from shelfwise.world import generate_world

    result = DemoResult()
    timer = _Timer(result)
    say = progress or (lambda _stage, _fraction: None)
    world_dir = options.world_dir or settings().work_dir / "worlds" / f"{options.scale}-{options.seed}"

    def done(name: str) -> None:
        if options.stop_after == name:
            raise _StopRequestedError

    with local_aws() as aws:
        lake = Lake(aws.settings)
        try:
            with timer.stage("world") as st:
                summary = generate_world(options.scale, options.seed, world_dir, progress=say)
                result.world_rows = dict(summary.rows)
                st.detail = f"{sum(summary.rows.values()):,} rows, {summary.start_date} .. {summary.end_date}"
            # The day after the last order: what "today" is for the daily chain on this world.
            result.run_date = (summary.end_date + dt.timedelta(days=1)).isoformat()
            done("world")
            _ingest(lake, world_dir, timer, result, say)
            done("ingest")
            for job in glue_jobs().values():
                _glue(lake, job.name, job.run_date_option, timer, result, say)
                done(job.name)
            predictions = _domains(lake, world_dir, options, timer, result, say, done)
            _api(lake, predictions, timer, result, serve)
        except _StopRequestedError:
            pass
        result.zones = lake.summary()
    return result


def _ingest(lake: Lake, world_dir: Path, timer: _Timer, result: DemoResult, say: Progress) -> None:
    from shelfwise.ingest import ingest_world

    with timer.stage("ingest") as st:
        report = ingest_world(world_dir, lake, progress=say)
        result.zone_rows["raw"] = sum(report.rows.values())
        st.detail = f"{result.zone_rows['raw']:,} rows into raw/"


def _glue(lake: Lake, job: str, run_date_option: str | None, timer: _Timer, result: DemoResult, say: Progress) -> None:
    from shelfwise.glue_local import run_job

    with timer.stage(job) as st:
        say(f"Glue {job} on local Spark", 0.0)  # a Spark job reports no fraction: the bar shows the time
        args = {run_date_option: str(result.run_date)} if run_date_option else {}
        job_result = run_job(job, lake, args)
        say(f"Glue {job} on local Spark", 1.0)
        st.detail = ", ".join(f"{k} {v:,}" for k, v in job_result.counts.items() if not k.startswith("quarantined."))
        for zone in ("curated", "quarantine", "features"):
            written = sum(v for k, v in job_result.counts.items() if _zone_of(k) == zone)
            if written:
                result.zone_rows[zone] = result.zone_rows.get(zone, 0) + written


def _zone_of(count: str) -> str | None:
    """The lake zone a Glue job's count names rows of."""
    if count == "curated":
        return "curated"
    if count == "quarantined":
        return "quarantine"
    if count.endswith("_rows") and count != "input_order_lines":
        return "features"
    return None


def _domains(
    lake: Lake,
    world_dir: Path,
    options: DemoOptions,
    timer: _Timer,
    result: DemoResult,
    say: Progress,
    done: Callable[[str], None],
) -> dict[str, str]:
    """Each domain's training, scoring and publishing; returns the predictions prefix of each domain scored."""
    from shelfwise.local_api import LocalLambdaContext, load_lambda
    from shelfwise.pipelines.local import score_with_newest_approved, train_on_run_date
    from shelfwise.pipelines.registry import NoApprovedModelError

    predictions: dict[str, str] = {}
    for domain in DOMAINS:
        if domain.pipeline is None:
            continue
        name = domain.name
        with timer.stage(f"{name}_training") as st:
            quick = dict(domain.demo.training_params) if domain.demo is not None else {}
            params = {**quick, **options.training_params.get(name, {})}
            run = train_on_run_date(lake, domain.pipeline, str(result.run_date), params, progress=say)
            st.detail = run.status + (f", model {run.model_version} registered" if run.model_version else "")
            if run.failure_reason:
                result.failures.append(f"{name} candidate: {run.failure_reason}")
        if run.status == "Succeeded":
            result.zone_rows["models"] = result.zone_rows.get("models", 0) + 1
        done(f"{name}_training")
        with timer.stage(f"{name}_scoring") as st:
            try:
                scoring, package = score_with_newest_approved(lake, domain.pipeline, str(result.run_date), say)
            except NoApprovedModelError as exc:
                result.failures.append(f"{name} scoring: {exc}")
                st.detail = "no approved model"
                continue
            if scoring.status != "Succeeded" or scoring.predictions_prefix is None:
                result.failures.append(f"{name} scoring: {scoring.failure_reason}")
                st.detail = "failed"
                continue
            partitions = ", ".join(domain.pipeline.run_partition_keys(str(result.run_date)).values())
            st.detail = f"with package version {package.version} on {partitions}"
            predictions[name] = scoring.predictions_prefix
        if domain.demo is not None:
            result.reports.append(domain.demo.report(lake, world_dir, run.metrics))
        done(f"{name}_scoring")
        if domain.publisher is not None:
            with timer.stage(f"{name}_publish") as st:
                # The publish Lambda's own handler, with the event Step Functions sends it in AWS.
                publish = load_lambda(domain.publisher.name, fresh=True).handler
                published = publish(
                    {"predictions_prefix": predictions[name]}, LocalLambdaContext(domain.publisher.name)
                )
                st.detail = f"{published['written']:,} items"
                if published.get("skipped_older"):
                    st.detail += f", {published['skipped_older']:,} older than stored (skipped)"
                if published["rejected"]:
                    st.detail += f", {published['rejected']:,} rejected (see {published['quarantine_key']})"
            done(f"{name}_publish")
    return predictions


def _api(
    lake: Lake, predictions: dict[str, str], timer: _Timer, result: DemoResult, serve: Callable[[str], None] | None
) -> None:
    from shelfwise.local_api import start_local_api

    with timer.stage("api") as st:
        api = start_local_api(port=0)
        try:
            result.api_url = api.url
            for domain in DOMAINS:
                if domain.demo is not None and domain.name in predictions:
                    for request in domain.demo.requests(lake, predictions[domain.name]):
                        result.exchanges.append(_call(api.url, request))
            st.detail = f"{len(result.exchanges)} requests at {api.url}"
            if serve is not None:
                serve(api.url)
        finally:
            api.stop()


def _call(url: str, request: DemoRequest) -> ApiExchange:
    data = None if request.body is None else json.dumps(request.body).encode()
    http = urllib.request.Request(
        url + request.path, data=data, method=request.method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(http, timeout=30) as response:
            return ApiExchange(request.method, request.path, response.status, json.loads(response.read()), request.note)
    except urllib.error.HTTPError as error:
        return ApiExchange(request.method, request.path, error.code, json.loads(error.read() or b"{}"), request.note)


__all__ = ["DemoOptions", "DemoResult", "run_demo", "stages"]
