"""Customer-managed KMS keys and the key-policy statements that let AWS services use them."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

_ENCRYPT_DECRYPT = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]


def rotating_key(scope: Construct, construct_id: str, *, alias: str, description: str) -> kms.Key:
    """A symmetric key with yearly rotation, kept when its stack is deleted (data encrypted with it may remain)."""
    return kms.Key(
        scope,
        construct_id,
        alias=alias,
        description=description,
        enable_key_rotation=True,
        rotation_period=Duration.days(365),
        removal_policy=RemovalPolicy.RETAIN,
        pending_window=Duration.days(30),
    )


def allow_cloudwatch_logs(key: kms.Key) -> None:
    """Let CloudWatch Logs encrypt log groups of this account and region with `key`."""
    stack = Stack.of(key)
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowCloudWatchLogs",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=_ENCRYPT_DECRYPT,
            resources=["*"],
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:*"
                }
            },
        )
    )


def allow_cloudwatch_alarms(key: kms.Key) -> None:
    """Let CloudWatch alarms of this account (and only those: a confused deputy in another account cannot) publish
    to SNS topics encrypted with `key`."""
    stack = Stack.of(key)
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowCloudWatchAlarmsToEncryptedTopics",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=["*"],
            conditions={
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {
                    "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"
                },
            },
        )
    )
