"""Feature jobs stack: the Glue 5.0 jobs `curate_orders` (raw/ -> curated/ + quarantine/) and `customer_features`
(curated/ + raw/ dimensions -> features/churn/), one least-privilege role each, their security configuration and
the shelfwise library they import.

The job scripts are the ones the local runtime runs on local Spark (`glue_jobs/*.py`); in Glue they receive `s3://`
URIs of the lake instead of local folders. The `shelfwise` package ships as a zip through `--extra-py-files`;
`pydantic-settings`, which Glue 5 lacks, installs through `--additional-python-modules`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, CfnOutput, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from shelfwise.config import Settings
from shelfwise_cdk.constructs.encryption import allow_cloudwatch_logs, rotating_key
from shelfwise_cdk.constructs.glue_job import ShelfwiseGlueJob
from shelfwise_cdk.nag import acknowledge_wildcards
from shelfwise_cdk.packaging import build_python_zip
from shelfwise_cdk.stacks.data_lake import LakeRef

#: Modules Glue 5.0 lacks that the shelfwise library imports (pinned like pyproject.toml).
GLUE_ADDITIONAL_MODULES = ("pydantic-settings==2.16.3",)


@dataclass(frozen=True)
class GlueJobSpec:
    """One job: its script and description, and the lake prefixes behind its `--<name>` input and output arguments.

    The role of the job may read exactly its input prefixes and read and write exactly its output prefixes.
    """

    name: str
    script: str
    description: str
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]

    def arguments(self, bucket: str) -> dict[str, str]:
        return {f"--{arg}": f"s3://{bucket}/{prefix}" for arg, prefix in {**self.inputs, **self.outputs}.items()}


#: The jobs of the churn feature chain in run order; arguments as the scripts in glue_jobs/ parse them and prefixes
#: as docs/contracts.md lays out the lake.
FEATURE_JOBS: tuple[GlueJobSpec, ...] = (
    GlueJobSpec(
        name="curate-orders",
        script="curate_orders.py",
        description="Schema-enforce and de-duplicate raw order lines; quarantine rejected rows with a reason",
        inputs={"input_path": "raw/order_lines/"},
        outputs={"output_path": "curated/order_lines/", "quarantine_path": "quarantine/curate_orders/"},
    ),
    GlueJobSpec(
        name="customer-features",
        script="customer_features.py",
        description="Point-in-time churn features and labels per customer and cutoff",
        inputs={
            "orders_path": "curated/order_lines/",
            "products_path": "raw/products/",
            "customers_path": "raw/customers/",
            "stockouts_path": "raw/stockouts/",
        },
        outputs={"training_path": "features/churn/training/", "serving_path": "features/churn/serving/"},
    ),
)


class FeatureJobsStack(Stack):
    """Glue jobs with least-privilege roles scoped to lake prefixes, and encryption of S3, logs and bookmarks."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: Settings,
        lake: LakeRef,
        glue_jobs_dir: Path,
        library_packages: Sequence[Path],
        build_dir: Path,
        jobs: Sequence[GlueJobSpec] = FEATURE_JOBS,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.key = rotating_key(
            self,
            "JobsKey",
            alias=f"alias/{cfg.resource_name('glue')}",
            description=f"Shelfwise {cfg.env}: encrypts Glue job logs and bookmarks",
        )
        allow_cloudwatch_logs(self.key)
        self.security_configuration = self._security_configuration(cfg, lake.key)
        bucket = lake.bucket(self)
        library = s3_assets.Asset(
            self, "Library", path=str(build_python_zip(library_packages, build_dir / "glue" / "shelfwise.zip"))
        )
        self.jobs: dict[str, ShelfwiseGlueJob] = {}
        for spec in jobs:
            construct_id = _construct_id(spec.name)
            role = self._role(cfg, construct_id, spec, bucket)
            job = ShelfwiseGlueJob(
                self,
                construct_id,
                job_name=cfg.resource_name(spec.name),
                script=glue_jobs_dir / spec.script,
                role=role,
                security_configuration=self.security_configuration.ref,
                libraries=[library],
                additional_python_modules=GLUE_ADDITIONAL_MODULES,
                arguments=spec.arguments(lake.bucket_name),
                description=spec.description,
            )
            acknowledge_wildcards(
                role,
                resources={library.bucket.arn_for_objects("*"): "CDK's asset bucket names objects by content hash."},
            )
            self.jobs[spec.name] = job
            CfnOutput(self, f"{construct_id}JobName", value=job.job_name)

    def _security_configuration(self, cfg: Settings, lake_key: kms.IKey) -> glue.CfnSecurityConfiguration:
        sc = glue.CfnSecurityConfiguration
        return sc(
            self,
            "SecurityConfiguration",
            name=cfg.resource_name("glue-jobs"),
            encryption_configuration=sc.EncryptionConfigurationProperty(
                # Data written to the lake uses the lake's key, so every reader decrypts with one key.
                s3_encryptions=[sc.S3EncryptionProperty(s3_encryption_mode="SSE-KMS", kms_key_arn=lake_key.key_arn)],
                cloud_watch_encryption=sc.CloudWatchEncryptionProperty(
                    cloud_watch_encryption_mode="SSE-KMS", kms_key_arn=self.key.key_arn
                ),
                job_bookmarks_encryption=sc.JobBookmarksEncryptionProperty(
                    job_bookmarks_encryption_mode="CSE-KMS", kms_key_arn=self.key.key_arn
                ),
            ),
        )

    def _role(self, cfg: Settings, construct_id: str, spec: GlueJobSpec, bucket: s3.IBucket) -> iam.Role:
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description=f"Shelfwise {cfg.env}: Glue job {spec.name}",
        )
        self.key.grant_encrypt_decrypt(role)
        _grant_lake_prefixes(role, spec, bucket)
        logs_arn = self.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws-glue/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="GlueJobLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"],
                resources=[logs_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="GlueJobMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": "Glue"}},
            )
        )
        tables = self.format_arn(service="glue", resource="table", resource_name=f"{cfg.glue_database}/*")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="GlueCatalogOfTheLakeDatabase",
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:CreateTable",
                    "glue:UpdateTable",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                    "glue:BatchCreatePartition",
                    "glue:CreatePartition",
                    "glue:UpdatePartition",
                ],
                resources=[
                    self.format_arn(service="glue", resource="catalog"),
                    self.format_arn(service="glue", resource="database", resource_name=cfg.glue_database),
                    tables,
                ],
            )
        )
        acknowledge_wildcards(
            role,
            actions={
                "kms:GenerateDataKey*": "SSE-KMS writes to the lake and encrypted job logs need data keys.",
                "kms:ReEncrypt*": "Part of the encrypt/decrypt grant on the lake and job keys only.",
            },
            resources={
                "*": "cloudwatch:PutMetricData supports no resource ARNs; the policy limits it to the Glue namespace.",
                logs_arn: "Glue creates a log group and streams per job run under /aws-glue/.",
                tables: "The jobs may register and update tables of the Shelfwise database only.",
            },
        )
        return role


def _grant_lake_prefixes(role: iam.Role, spec: GlueJobSpec, bucket: s3.IBucket) -> None:
    """Read on the inputs, read and write on the outputs (Spark lists and replaces what it writes)."""
    for prefix in spec.inputs.values():
        bucket.grant_read(role, f"{prefix}*")
    for prefix in spec.outputs.values():
        bucket.grant_read_write(role, f"{prefix}*")
    acknowledge_wildcards(
        role,
        actions={
            "s3:GetObject*": "Object reads (data, version, tagging) limited to the job's lake prefixes.",
            "s3:GetBucket*": "Spark reads the lake bucket's location and versioning; lake bucket only.",
            "s3:List*": "Spark lists input and output prefixes to plan reads and commits; lake bucket only.",
            **(
                {
                    "s3:DeleteObject*": "Spark overwrites output partitions, deleting the objects it replaces.",
                    "s3:Abort*": "Spark aborts its failed multipart uploads of output files.",
                }
                if spec.outputs
                else {}
            ),
        },
        resources={
            bucket.arn_for_objects(f"{prefix}*"): f"Objects under {prefix}, a {kind} of the job only."
            for kind, prefixes in (("input", spec.inputs), ("output", spec.outputs))
            for prefix in prefixes.values()
        },
    )


def _construct_id(job_name: str) -> str:
    return "".join(part.capitalize() for part in job_name.split("-"))
