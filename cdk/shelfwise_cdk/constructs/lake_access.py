"""Least-privilege access to prefixes of the lake: the exact object actions, listing scoped by `s3:prefix`, and the
lake key's use limited to what the access needs.

CDK's `bucket.grant_read` gives `s3:GetObject*`, `s3:GetBucket*` and `s3:List*` on the whole bucket; these
statements name each action and let a role list only under its own prefixes.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets

from shelfwise_cdk.nag import acknowledge_wildcards
from shelfwise_cdk.stacks.data_lake import LakeRef

_READ = ["s3:GetObject", "s3:GetObjectVersion"]
_WRITE = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]


def grant_lake(
    role: iam.IRole,
    lake: LakeRef,
    *,
    read: Sequence[str] = (),
    write: Sequence[str] = (),
    put_only: Sequence[str] = (),
    list_prefixes: bool = True,
    sid: str = "Lake",
) -> None:
    """Objects under `read` readable, under `write` readable and writable (Spark and SageMaker replace what they
    write), under `put_only` writable without reads or deletes; listing only under those prefixes."""
    bucket_arn = f"arn:{Stack.of(role).partition}:s3:::{lake.bucket_name}"

    def objects(prefixes: Sequence[str]) -> list[str]:
        return [f"{bucket_arn}/{p}*" for p in prefixes]

    statements = []
    readable = [*read, *write]
    if readable:
        statements.append(iam.PolicyStatement(sid=f"{sid}Read", actions=_READ, resources=objects(readable)))
    if write:
        statements.append(iam.PolicyStatement(sid=f"{sid}Write", actions=_WRITE, resources=objects(write)))
    if put_only:
        statements.append(iam.PolicyStatement(sid=f"{sid}Put", actions=["s3:PutObject"], resources=objects(put_only)))
    listed = [*readable, *put_only]
    if list_prefixes and listed:
        statements.append(
            iam.PolicyStatement(
                sid=f"{sid}List",
                actions=["s3:ListBucket"],
                resources=[bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in listed]}},
            )
        )
    key_actions = ["kms:Decrypt"] if readable else []
    if write or put_only:
        key_actions += ["kms:Encrypt", "kms:GenerateDataKey"]
    if key_actions:
        statements.append(iam.PolicyStatement(sid=f"{sid}Key", actions=key_actions, resources=[lake.key.key_arn]))
    for statement in statements:
        role.add_to_principal_policy(statement)
    acknowledge_wildcards(
        role,
        resources={
            f"{bucket_arn}/{prefix}*": f"Objects under the lake prefix {prefix} only: the keys below it are named "
            "per run, partition or model version."
            for prefix in sorted({*readable, *put_only})
        },
    )


def grant_asset_read(role: iam.IRole, asset: s3_assets.Asset, sid: str) -> None:
    """Read one CDK asset object (and list exactly its key, as SageMaker's S3Prefix inputs do): no wildcard."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid=f"{sid}Read", actions=["s3:GetObject"], resources=[asset.bucket.arn_for_objects(asset.s3_object_key)]
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid=f"{sid}List",
            actions=["s3:ListBucket"],
            resources=[asset.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [asset.s3_object_key]}},
        )
    )
