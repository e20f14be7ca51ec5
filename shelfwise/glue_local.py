"""Run a Glue job's entry script on local Spark against the lake, as Glue would run it in AWS.

The pyspark wheel cannot read S3 (no s3a), so the runner copies the job's input prefixes to a scratch folder,
runs `glue_jobs/<job>.py` in a subprocess with local paths in place of S3 URIs, and uploads what it wrote back to
the output prefixes, replacing each partition it wrote (as Glue's dynamic partition overwrite does).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shelfwise.config import settings
from shelfwise.job_log import parse_counts
from shelfwise.lake import Lake, partition_prefix

if TYPE_CHECKING:
    from rich.progress import Progress

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "glue_jobs"
_LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class JobSpec:
    """A Glue job: its path arguments and the lake prefixes they stand for."""

    name: str
    description: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    options: tuple[str, ...] = field(default_factory=tuple)

    @property
    def script(self) -> Path:
        return SCRIPTS_DIR / f"{self.name}.py"


JOBS: dict[str, JobSpec] = {
    "curate_orders": JobSpec(
        name="curate_orders",
        description="raw order lines -> curated order lines by order date, rejected rows -> quarantine",
        inputs={"input_path": partition_prefix("raw", "order_lines")},
        outputs={
            "output_path": partition_prefix("curated", "order_lines"),
            "quarantine_path": partition_prefix("quarantine", "curate_orders"),
        },
        options=("run_date",),
    ),
    "customer_features": JobSpec(
        name="customer_features",
        description="curated orders + products, customers, stockouts -> churn training set and serving features",
        inputs={
            "orders_path": partition_prefix("curated", "order_lines"),
            "products_path": partition_prefix("raw", "products"),
            "customers_path": partition_prefix("raw", "customers"),
            "stockouts_path": partition_prefix("raw", "stockouts"),
        },
        outputs={
            "training_path": partition_prefix("features", "churn/training"),
            "serving_path": partition_prefix("features", "churn/serving"),
        },
        options=(
            "cutoffs",
            "first_cutoff",
            "last_cutoff",
            "step_days",
            "label_horizon_days",
            "serving_cutoff",
        ),
    ),
}


class UnknownJobError(ValueError):
    """No Glue job of that name; the message lists the valid ones."""


class JobArgumentsError(ValueError):
    """An argument the job does not take, or one the runner sets itself; the message names it."""


class GlueJobError(RuntimeError):
    """The job script failed; the message carries the end of its log."""


@dataclass(frozen=True)
class JobResult:
    job: str
    seconds: float
    counts: dict[str, int]
    outputs: list[str]


def job_spec(job: str) -> JobSpec:
    """The spec of a job by name; `UnknownJobError` listing the valid names otherwise."""
    if job not in JOBS:
        raise UnknownJobError(f"unknown Glue job {job!r}; valid jobs: {', '.join(sorted(JOBS))}")
    return JOBS[job]


def check_args(spec: JobSpec, args: dict[str, str]) -> None:
    """Reject arguments the job does not take and the path arguments the runner fills in itself."""
    for name in args:
        if name in spec.inputs or name in spec.outputs:
            raise JobArgumentsError(f"--{name} is set by the local runner (from lake prefix {_prefix(spec, name)})")
        if name not in spec.options:
            valid = ", ".join(f"--{o}" for o in spec.options)
            raise JobArgumentsError(f"{spec.name} takes no argument --{name}; its options: {valid}")


def run_job(job: str, lake: Lake, args: dict[str, str] | None = None, progress: Progress | None = None) -> JobResult:
    """Run `job` on local Spark with the lake's inputs and publish its outputs to the lake."""
    spec = job_spec(job)
    args = dict(args or {})
    check_args(spec, args)
    started = time.monotonic()
    scratch = settings().work_dir / "glue" / job
    shutil.rmtree(scratch, ignore_errors=True)
    local_inputs = {name: scratch / "in" / name for name in spec.inputs}
    local_outputs = {name: scratch / "out" / name for name in spec.outputs}
    for name, prefix in spec.inputs.items():
        _download(lake, prefix, local_inputs[name], progress)
    command = [sys.executable, str(spec.script)]
    for name, path in [*local_inputs.items(), *local_outputs.items()]:
        command += [f"--{name}", str(path)]
    for name, value in args.items():
        command += [f"--{name}", value]
    stdout = _run_script(job, command, scratch / "job.log", progress)
    counts = parse_counts(stdout, job)
    if counts is None:
        raise GlueJobError(f"{job} finished without printing its counts; see {scratch / 'job.log'}")
    outputs = []
    for name, prefix in spec.outputs.items():
        _publish(lake, local_outputs[name], prefix, progress)
        outputs.append(prefix)
    shutil.rmtree(scratch / "in", ignore_errors=True)
    shutil.rmtree(scratch / "out", ignore_errors=True)
    return JobResult(job=job, seconds=time.monotonic() - started, counts=counts, outputs=outputs)


def _prefix(spec: JobSpec, name: str) -> str:
    return spec.inputs.get(name) or spec.outputs[name]


def _download(lake: Lake, prefix: str, local: Path, progress: Progress | None) -> None:
    local.mkdir(parents=True, exist_ok=True)
    objects = list(lake.list(prefix))
    task = progress.add_task(f"download {prefix}", total=len(objects)) if progress else None
    for obj in objects:
        lake.download_file(obj.key, local / obj.key[len(prefix) :])
        if progress and task is not None:
            progress.advance(task)


def _run_script(job: str, command: list[str], log_path: Path, progress: Progress | None) -> list[str]:
    """Run the entry script; its stderr (Spark's log) goes to `log_path`; return its stdout lines."""
    task = progress.add_task(f"run {job} on local Spark", total=None) if progress else None
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True, check=False)
    if progress and task is not None:
        progress.update(task, total=1, completed=1)
    if completed.returncode != 0:
        tail = [line for line in log_path.read_text().splitlines() if line.strip()][-_LOG_TAIL_LINES:]
        raise GlueJobError(f"{job} failed (exit {completed.returncode}); end of {log_path}:\n" + "\n".join(tail))
    return completed.stdout.splitlines()


def _publish(lake: Lake, local: Path, prefix: str, progress: Progress | None) -> None:
    """Replace each partition folder (`name=value/`) the job wrote under `local` at `prefix` in the lake."""
    partitions = sorted(p for p in local.iterdir() if p.is_dir() and "=" in p.name) if local.exists() else []
    task = progress.add_task(f"upload {prefix}", total=len(partitions)) if progress else None
    for partition in partitions:
        target = f"{prefix}{partition.name}/"
        lake.delete_prefix(target)
        lake.upload_dir(partition, target)
        if progress and task is not None:
            progress.advance(task)
