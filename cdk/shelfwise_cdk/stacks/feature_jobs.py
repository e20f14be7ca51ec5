"""Feature jobs stack: every domain's Glue 5.0 jobs (`Domain.glue_jobs`), one least-privilege role each, their
security configuration and the shelfwise library they import.

The job scripts are the ones the local runtime runs on local Spark (`glue_jobs/*.py`); in Glue they receive `s3://`
URIs of the lake instead of local folders. The `shelfwise` package ships as a zip through `--extra-py-files`; the
modules Glue 5.0 lacks install through `--additional-python-modules`, pinned with their dependencies to the
versions of `constraints.txt`. Jobs do not retry by themselves: the daily chain's state machine owns retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, CfnOutput, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from shelfwise.config import Settings
from shelfwise.domain import GlueJob
from shelfwise_cdk.constructs.glue_job import ShelfwiseGlueJob
from shelfwise_cdk.constructs.lake_access import grant_lake
from shelfwise_cdk.nag import acknowledge_wildcards
from shelfwise_cdk.packaging import build_python_zip
from shelfwise_cdk.stacks.data_lake import LakeRef


class FeatureJobsStack(Stack):
    """Glue jobs with least-privilege roles scoped to lake prefixes, and encryption of S3, logs and bookmarks."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: Settings,
        lake: LakeRef,
        operations_key: kms.IKey,
        jobs: Sequence[GlueJob],
        library_packages: Sequence[Path],
        additional_modules: Sequence[str],
        build_dir: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.operations_key = operations_key
        self.security_configuration = self._security_configuration(cfg, lake.key, operations_key)
        library = s3_assets.Asset(
            self, "Library", path=str(build_python_zip(library_packages, build_dir / "glue" / "shelfwise.zip"))
        )
        self.jobs: dict[str, ShelfwiseGlueJob] = {}
        for spec in jobs:
            construct_id = _construct_id(spec.name)
            role = self._role(cfg, construct_id, spec, lake)
            job = ShelfwiseGlueJob(
                self,
                construct_id,
                job_name=cfg.resource_name(spec.resource_suffix),
                script=spec.script,
                role=role,
                security_configuration=self.security_configuration.ref,
                libraries=[library],
                additional_python_modules=additional_modules,
                arguments={f"--{arg}": f"s3://{lake.bucket_name}/{prefix}" for arg, prefix in spec.prefixes.items()},
                description=spec.description,
            )
            self.jobs[spec.name] = job
            CfnOutput(self, f"{construct_id}JobName", value=job.job_name)

    def _security_configuration(
        self, cfg: Settings, lake_key: kms.IKey, operations_key: kms.IKey
    ) -> glue.CfnSecurityConfiguration:
        sc = glue.CfnSecurityConfiguration
        return sc(
            self,
            "SecurityConfiguration",
            name=cfg.resource_name("glue-jobs"),
            encryption_configuration=sc.EncryptionConfigurationProperty(
                # Data written to the lake uses the lake's key, so every reader decrypts with one key.
                s3_encryptions=[sc.S3EncryptionProperty(s3_encryption_mode="SSE-KMS", kms_key_arn=lake_key.key_arn)],
                cloud_watch_encryption=sc.CloudWatchEncryptionProperty(
                    cloud_watch_encryption_mode="SSE-KMS", kms_key_arn=operations_key.key_arn
                ),
                job_bookmarks_encryption=sc.JobBookmarksEncryptionProperty(
                    job_bookmarks_encryption_mode="CSE-KMS", kms_key_arn=operations_key.key_arn
                ),
            ),
        )

    def _role(self, cfg: Settings, construct_id: str, spec: GlueJob, lake: LakeRef) -> iam.Role:
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description=f"Shelfwise {cfg.env}: Glue job {spec.name}",
        )
        # Read the inputs; read and replace the outputs and the job's state (Spark lists and rewrites them).
        grant_lake(
            role,
            lake,
            read=tuple(spec.inputs.values()),
            write=(*spec.outputs.values(), *((spec.state,) if spec.state else ())),
        )
        logs_arn = self.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws-glue/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="LakeBucketLocation",
                actions=["s3:GetBucketLocation"],
                resources=[f"arn:{self.partition}:s3:::{lake.bucket_name}"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EncryptedJobLogsAndBookmarks",
                actions=["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
                resources=[self.operations_key.key_arn],
            )
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
        acknowledge_wildcards(
            role,
            resources={
                "*": "cloudwatch:PutMetricData supports no resource ARNs; the policy limits it to the Glue namespace.",
                logs_arn: "Glue creates a log group and streams per job run under /aws-glue/.",
            },
        )
        return role


def _construct_id(job_name: str) -> str:
    return "".join(part.capitalize() for part in job_name.split("_"))
