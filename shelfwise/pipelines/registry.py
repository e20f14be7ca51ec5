"""The SageMaker model registry: model package groups, registered packages and the latest approved artifact.

In AWS the pipeline's RegisterModel step creates packages as PendingManualApproval and a person approves them; the
local runner registers through `register_model_package` (approved, so the demo can serve) against moto.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from shelfwise.config import Settings, settings

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient


class NoApprovedModelError(LookupError):
    """The model package group has no approved package (or does not exist)."""


@dataclass(frozen=True)
class PackageVersion:
    arn: str
    version: int


def sagemaker_client(cfg: Settings | None = None) -> SageMakerClient:
    """A boto3 SageMaker client at the configured endpoint (moto locally, AWS otherwise)."""
    cfg = cfg or settings()
    return boto3.client("sagemaker", region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)


def ensure_model_package_group(client: SageMakerClient, group: str, description: str) -> None:
    existing = client.list_model_package_groups(NameContains=group)["ModelPackageGroupSummaryList"]
    if not any(g["ModelPackageGroupName"] == group for g in existing):
        client.create_model_package_group(ModelPackageGroupName=group, ModelPackageGroupDescription=description)


def register_model_package(
    client: SageMakerClient,
    group: str,
    model_data_url: str,
    image_uri: str,
    metrics_uri: str,
    approval_status: str,
    properties: Mapping[str, str],
) -> str:
    """Register a versioned model package (creating its group if missing) and return its ARN."""
    ensure_model_package_group(client, group, "Churn models registered by the churn pipeline")
    response = client.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=f"churn model {properties.get('model_version', '')}".strip(),
        InferenceSpecification={
            "Containers": [{"Image": image_uri, "ModelDataUrl": model_data_url}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelApprovalStatus=approval_status,
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics_uri}}},
        CustomerMetadataProperties=dict(properties),
    )
    arn: str = response["ModelPackageArn"]
    return arn


def approved_versions(client: SageMakerClient, group: str) -> list[PackageVersion]:
    """The group's approved packages, newest version first."""
    versions = []
    paginator = client.get_paginator("list_model_packages")
    for page in paginator.paginate(ModelPackageGroupName=group, ModelApprovalStatus="Approved"):
        for summary in page["ModelPackageSummaryList"]:
            arn = summary["ModelPackageArn"]
            # versioned package ARNs end in /<version>
            versions.append(PackageVersion(arn, int(summary.get("ModelPackageVersion") or arn.rsplit("/", 1)[1])))
    return sorted(versions, key=lambda v: v.version, reverse=True)


def latest_approved_artifact(group: str, client: SageMakerClient | None = None) -> tuple[str, str]:
    """(model package ARN, s3 URI of model.tar.gz) of the newest approved package in `group`."""
    client = client or sagemaker_client()
    try:
        versions = approved_versions(client, group)
        if not versions:
            raise NoApprovedModelError(f"model package group {group!r} has no approved model package")
        described = client.describe_model_package(ModelPackageName=versions[0].arn)
    except ClientError as exc:
        raise NoApprovedModelError(f"cannot read model package group {group!r}: {exc}") from exc
    return versions[0].arn, described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
