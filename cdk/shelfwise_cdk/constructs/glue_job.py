"""`ShelfwiseGlueJob`: a Glue 5.0 Spark job whose script and libraries are CDK assets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from shelfwise_cdk.constructs.lake_access import grant_asset_read

GLUE_VERSION = "5.0"


class ShelfwiseGlueJob(Construct):
    """A `glueetl` job on Glue 5.0 (Spark 3.5, Python 3.11) with continuous logging, metrics and encryption.

    The job role gets read access to exactly the script and library objects; everything else it needs (lake
    prefixes, keys) the caller grants. No retries of its own: the orchestration retries.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        job_name: str,
        script: Path,
        role: iam.IRole,
        security_configuration: str,
        libraries: Sequence[s3_assets.Asset] = (),
        additional_python_modules: Sequence[str] = (),
        arguments: Mapping[str, str] | None = None,
        description: str | None = None,
        worker_type: str = "G.1X",
        number_of_workers: int = 2,
        timeout_minutes: int = 60,
        # The daily chain's state machine retries a failed run; a Glue retry would hide the failure from it.
        max_retries: int = 0,
    ) -> None:
        super().__init__(scope, construct_id)
        if not script.is_file():
            raise FileNotFoundError(f"Glue job script {script} does not exist")
        if number_of_workers < 2:
            raise ValueError(f"a Glue Spark job needs at least 2 workers, got {number_of_workers}")
        self.script = s3_assets.Asset(self, "Script", path=str(script))
        grant_asset_read(role, self.script, "JobScript")
        for index, library in enumerate(libraries):
            grant_asset_read(role, library, f"JobLibrary{index}")
        self.job = glue.CfnJob(
            self,
            "Job",
            name=job_name,
            description=description,
            role=role.role_arn,
            glue_version=GLUE_VERSION,
            command=glue.CfnJob.JobCommandProperty(
                name="glueetl", python_version="3", script_location=self.script.s3_object_url
            ),
            default_arguments=job_arguments(libraries, additional_python_modules, arguments or {}),
            worker_type=worker_type,
            number_of_workers=number_of_workers,
            timeout=timeout_minutes,
            max_retries=max_retries,
            execution_property=glue.CfnJob.ExecutionPropertyProperty(max_concurrent_runs=1),
            security_configuration=security_configuration,
        )
        self.job_name = job_name


def job_arguments(
    libraries: Sequence[s3_assets.Asset], additional_python_modules: Sequence[str], arguments: Mapping[str, str]
) -> dict[str, str]:
    """Glue's special parameters for logging, metrics and libraries, then the job's own `--name value` arguments."""
    defaults = {
        "--job-language": "python",
        "--enable-continuous-cloudwatch-log": "true",
        "--enable-continuous-log-filter": "true",
        "--enable-metrics": "true",
        "--enable-observability-metrics": "true",
        "--enable-job-insights": "true",
        # The jobs read explicit dt= partitions, so Glue's bookmark state would only drift from what they did.
        "--job-bookmark-option": "job-bookmark-disable",
    }
    if libraries:
        defaults["--extra-py-files"] = ",".join(lib.s3_object_url for lib in libraries)
    if additional_python_modules:
        defaults["--additional-python-modules"] = ",".join(additional_python_modules)
    clashes = sorted(set(defaults) & set(arguments))
    if clashes:
        raise ValueError(f"job arguments {clashes} are set by ShelfwiseGlueJob itself")
    bad = sorted(name for name in arguments if not name.startswith("--"))
    if bad:
        raise ValueError(f"Glue job argument names must start with '--', got {bad}")
    return defaults | dict(arguments)
