"""Run a Glue job's entry script on local Spark against the lake, as Glue would run it in AWS.

The jobs are the domains' declarations (`shelfwise.domains`). The pyspark wheel cannot read S3 (no s3a), so the
runner copies the job's input (and output) prefixes to a scratch folder, keeping each object's S3 modification
time, runs `glue_jobs/<job>.py` in a subprocess with local paths in place of S3 URIs, and uploads what it wrote
back to the output prefixes, replacing each partition it wrote (as Glue's dynamic partition overwrite does) and
the files at the top of each output (markers, job state).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shelfwise.config import settings
from shelfwise.domain import GlueJob
from shelfwise.domains import glue_jobs
from shelfwise.job_log import parse_counts
from shelfwise.lake import Lake

if TYPE_CHECKING:
    from rich.progress import Progress

_LOG_TAIL_LINES = 15


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


def job_spec(job: str) -> GlueJob:
    """The declaration of a job by name; `UnknownJobError` listing the valid names otherwise."""
    jobs = glue_jobs()
    if job not in jobs:
        raise UnknownJobError(f"unknown Glue job {job!r}; valid jobs: {', '.join(sorted(jobs))}")
    return jobs[job]


def check_args(spec: GlueJob, args: dict[str, str]) -> None:
    """Reject arguments the job does not take and the path arguments the runner fills in itself."""
    for name in args:
        if name in spec.prefixes:
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
    paths = {**local_inputs, **local_outputs}
    if spec.state is not None:
        paths["state_path"] = scratch / "state"
        _download(lake, spec.state, paths["state_path"], progress)
    command = [sys.executable, str(spec.script)]
    for name, path in paths.items():
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
    if spec.state is not None:
        lake.delete_prefix(spec.state)
        lake.upload_dir(paths["state_path"], spec.state)
    for folder in ("in", "out", "state"):
        shutil.rmtree(scratch / folder, ignore_errors=True)
    return JobResult(job=job, seconds=time.monotonic() - started, counts=counts, outputs=outputs)


def _prefix(spec: GlueJob, name: str) -> str:
    return spec.prefixes[name]


def _download(lake: Lake, prefix: str, local: Path, progress: Progress | None) -> None:
    local.mkdir(parents=True, exist_ok=True)
    objects = list(lake.list(prefix))
    task = progress.add_task(f"download {prefix}", total=len(objects)) if progress else None
    for obj in objects:
        path = local / obj.key[len(prefix) :]
        lake.download_file(obj.key, path)
        # S3's modification time, which Spark sees in Glue: the incremental jobs compare it between runs.
        os.utime(path, (obj.last_modified, obj.last_modified))
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
    """Replace each partition folder (`name=value/`) the job wrote under `local` at `prefix` in the lake, and put
    the files at its top (Spark's `_SUCCESS` marker: a step reading the prefix finds it even when the job wrote
    no partition, as in Glue)."""
    if local.exists():
        for marker in sorted(p for p in local.iterdir() if p.is_file() and not p.name.endswith(".crc")):
            lake.upload_file(marker, f"{prefix}{marker.name}")
    partitions = sorted(p for p in local.iterdir() if p.is_dir() and "=" in p.name) if local.exists() else []
    task = progress.add_task(f"upload {prefix}", total=len(partitions)) if progress else None
    for partition in partitions:
        target = f"{prefix}{partition.name}/"
        lake.delete_prefix(target)
        lake.upload_dir(partition, target)
        if progress and task is not None:
            progress.advance(task)
