"""Data lake stack: the S3 lake bucket (raw/, curated/, features/, models/, predictions/, quarantine/), its KMS key,
its server-access-log bucket and the Glue Data Catalog database.

Bucket name: S3 names are global, so the local default `shelfwise-<env>-lake` would collide between accounts. The
stack uses `Settings.lake_bucket_name` when the deployment sets one (context `shelfwise:lakeBucketName`), otherwise
`shelfwise-<env>-lake-<account>-<region>`. The name is a plain value (with the `AWS::AccountId` pseudo parameter),
so other stacks reference the bucket without a cross-stack export that would pin it, and their policies name it
readably. Functions and jobs get it through `SHELFWISE_LAKE_BUCKET`.

Lifecycle: raw data ages into cheaper storage classes; every prefix a domain declares as growing with each run
(serving features, pipeline scratch, predictions, quarantine: `Domain.retention`) expires after its days.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from shelfwise.config import Settings
from shelfwise.domain import Retention
from shelfwise_cdk.constructs.encryption import rotating_key
from shelfwise_cdk.nag import acknowledge

#: Days after which raw objects move to Infrequent Access, then to Glacier Instant Retrieval. Raw data is read by
#: the daily jobs within days of landing and rarely after a month; Glacier IR keeps millisecond reads for backfills.
RAW_TO_INFREQUENT_ACCESS_DAYS = 30
RAW_TO_GLACIER_IR_DAYS = 120
NONCURRENT_VERSION_EXPIRY_DAYS = 90
ACCESS_LOG_EXPIRY_DAYS = 365
_MAX_BUCKET_NAME = 63
_ACCOUNT_ID_LENGTH = 12


@dataclass(frozen=True)
class LakeRef:
    """What other stacks need of the lake: the bucket's name and its key."""

    bucket_name: str
    key: kms.IKey

    def bucket(self, scope: Construct, construct_id: str = "LakeBucket") -> s3.IBucket:
        """The lake bucket in `scope`'s stack; grants on it include the key."""
        return s3.Bucket.from_bucket_attributes(
            scope, construct_id, bucket_name=self.bucket_name, encryption_key=self.key
        )


def lake_bucket_name(cfg: Settings) -> str:
    """The configured name, else `<local name>-<account>-<region>` (unique across accounts and regions)."""
    if cfg.lake_bucket_name:
        return cfg.lake_bucket_name
    length = len(cfg.lake_bucket) + len(cfg.region) + _ACCOUNT_ID_LENGTH + 2
    if length > _MAX_BUCKET_NAME:
        raise ValueError(
            f"lake bucket name for env {cfg.env!r} would be {length} characters (S3 allows {_MAX_BUCKET_NAME}); "
            "set a shorter env or the context shelfwise:lakeBucketName"
        )
    return f"{cfg.lake_bucket}-{Aws.ACCOUNT_ID}-{cfg.region}"


class DataLakeStack(Stack):
    """The lake bucket with its key, access logs and catalog database; other stacks take these as props."""

    def __init__(
        self, scope: Construct, construct_id: str, *, cfg: Settings, retention: Sequence[Retention] = (), **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.retention = tuple(retention)
        self.key = rotating_key(
            self,
            "LakeKey",
            alias=f"alias/{cfg.resource_name('lake')}",
            description=f"Shelfwise {cfg.env}: encrypts the data lake bucket and what Glue writes to it",
        )
        self.access_log_bucket = self._access_log_bucket()
        name = lake_bucket_name(cfg)
        self.bucket = self._lake_bucket(name, self.key, self.access_log_bucket)
        # The name, not `bucket.bucket_name` (a Ref): consumers then need no cross-stack export of the bucket.
        self.lake = LakeRef(bucket_name=name, key=self.key)
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=self.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=cfg.glue_database,
                description=f"Shelfwise {cfg.env}: tables over the lake bucket",
            ),
        )
        CfnOutput(self, "LakeBucketName", value=self.bucket.bucket_name)
        CfnOutput(self, "LakeKeyArn", value=self.key.key_arn)
        CfnOutput(self, "GlueDatabaseName", value=cfg.glue_database)

    def _access_log_bucket(self) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            # S3 server access logging delivers only to buckets with SSE-S3 encryption, not SSE-KMS.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(ACCESS_LOG_EXPIRY_DAYS)),
                s3.LifecycleRule(
                    id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(7)
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "This is the server-access-log target of the lake; logging it into itself would loop.",
        )
        return bucket

    def _lake_bucket(self, name: str, key: kms.IKey, logs: s3.IBucket) -> s3.Bucket:
        return s3.Bucket(
            self,
            "Lake",
            bucket_name=name,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=logs,
            server_access_logs_prefix="lake/",
            lifecycle_rules=lake_lifecycle_rules(self.retention),
            removal_policy=RemovalPolicy.RETAIN,
        )


def lake_lifecycle_rules(retention: Sequence[Retention] = ()) -> list[s3.LifecycleRule]:
    """Raw data ages into cheaper classes; growing prefixes expire; old versions of every object expire; failed
    uploads are cleaned up."""
    prefixes = [r.prefix for r in retention]
    if len(set(prefixes)) != len(prefixes) or any(p.startswith("raw/") for p in prefixes):
        raise ValueError(f"retention prefixes must be unique and outside raw/, got {prefixes}")
    expiring = [
        s3.LifecycleRule(
            id=f"expire-{r.prefix.strip('/').replace('/', '-').replace('_', '-')}",
            prefix=r.prefix,
            expiration=Duration.days(r.days),
        )
        for r in retention
    ]
    return [
        *expiring,
        s3.LifecycleRule(
            id="raw-to-archive",
            prefix="raw/",
            transitions=[
                s3.Transition(
                    storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                    transition_after=Duration.days(RAW_TO_INFREQUENT_ACCESS_DAYS),
                ),
                s3.Transition(
                    storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                    transition_after=Duration.days(RAW_TO_GLACIER_IR_DAYS),
                ),
            ],
        ),
        s3.LifecycleRule(
            id="expire-noncurrent-versions",
            noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_EXPIRY_DAYS),
            expired_object_delete_marker=True,
        ),
        s3.LifecycleRule(id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(7)),
    ]
