"""`ShelfwisePythonFunction`: a Python Lambda bundled on this machine (no Docker) with the shelfwise library,
X-Ray tracing, and its own KMS-encrypted log group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import AssetHashType, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from shelfwise_cdk.constructs.local_bundling import BundleSource, PipLocalBundling, local_bundling_options
from shelfwise_cdk.packaging import tree_hash

PYTHON_VERSION = "3.12"
RUNTIME = lambda_.Runtime.PYTHON_3_12
#: Wheel platforms the Lambda runtime (Amazon Linux 2023, glibc 2.34, x86_64) can load; newer wheels (xgboost 3,
#: for one) are tagged manylinux_2_28 only.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64")


class ShelfwisePythonFunction(Construct):
    """A function whose bundle root holds `code_dir`'s files, each of `library_dirs` as a package, and the wheels of
    `requirements`.

    The asset hash covers all of those (plus the target runtime), so a change in the library redeploys the function
    even though the asset's source folder is `code_dir`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        code_dir: Path,
        library_dirs: Sequence[Path] = (),
        requirements: Path | None = None,
        constraints: Path | None = None,
        environment: Mapping[str, str] | None = None,
        log_key: kms.IKey,
        description: str | None = None,
        memory_size: int = 1024,
        timeout: Duration | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.THREE_MONTHS,
    ) -> None:
        super().__init__(scope, construct_id)
        if not code_dir.is_dir():
            raise FileNotFoundError(f"Lambda code folder {code_dir} does not exist")
        if requirements is not None and not requirements.is_file():
            raise FileNotFoundError(f"Lambda requirements file {requirements} does not exist")
        self.log_group = logs.LogGroup(
            self, "Logs", encryption_key=log_key, retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=description,
        )
        # Only its own log group: no AWSLambdaBasicExecutionRole, which allows writing to every log group.
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler=handler,
            code=bundled_code(code_dir, library_dirs, requirements, constraints),
            role=self.role,
            environment=dict(environment or {}),
            memory_size=memory_size,
            timeout=timeout or Duration.seconds(15),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            description=description,
        )


def bundled_code(
    code_dir: Path, library_dirs: Sequence[Path], requirements: Path | None, constraints: Path | None = None
) -> lambda_.Code:
    """Lambda code from `code_dir`, bundled locally with the library folders and the requirements, pinned by
    `constraints`."""
    bundler = PipLocalBundling(
        sources=[BundleSource(code_dir), *(BundleSource(d, d.name) for d in library_dirs)],
        requirements=requirements,
        constraints=constraints,
        python_version=PYTHON_VERSION,
        platforms=PLATFORMS,
    )
    pins = [p for p in (requirements, constraints) if p is not None]
    fingerprint = tree_hash([code_dir, *library_dirs], pins)
    return lambda_.Code.from_asset(
        str(code_dir),
        asset_hash=f"{fingerprint}-py{PYTHON_VERSION}-{'-'.join(PLATFORMS)}",
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=local_bundling_options(bundler),
    )
