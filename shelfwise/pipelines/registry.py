"""The SageMaker model registry: model package groups, registration, and which package is served.

"Newest approved" has one definition, `NEWEST_APPROVED_QUERY`: the `Approved` package created last (versions
are numbered in creation order, so it is also the highest version). The API, the local runner and the daily chain
in AWS (whose state machine sends the same query) all read it, so they always agree on the model.

In AWS the training pipeline's RegisterModel step creates packages as PendingManualApproval and a person approves
them; the local runner registers through `register_model_package` (approved, so the demo can serve) against moto.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from shelfwise.config import Settings, settings

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

#: ListModelPackages arguments (besides the group) that find the package every consumer serves.
NEWEST_APPROVED_QUERY: Mapping[str, Any] = {
    "ModelApprovalStatus": "Approved",
    "SortBy": "CreationTime",
    "SortOrder": "Descending",
    "MaxResults": 1,
}
#: Customer metadata keys a registered package carries (set by the pipeline's RegisterModel step).
SHA256_KEY = "artifact_sha256"


class NoApprovedModelError(LookupError):
    """The model package group has no approved package (or does not exist)."""


@dataclass(frozen=True)
class ApprovedModel:
    """A package that may be served: where its artifact is and what the registry recorded about it."""

    arn: str
    version: int
    artifact_uri: str
    sha256: str | None
    metadata: Mapping[str, str]


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
    ensure_model_package_group(client, group, f"Models registered by the {group} pipeline")
    response = client.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=f"{group} model {properties.get('model_version', '')}".strip(),
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


def newest_approved(group: str, client: Any = None) -> ApprovedModel:
    """The package of `group` to serve; `NoApprovedModelError` when there is none (or no such group)."""
    client = client or sagemaker_client()
    try:
        packages = client.list_model_packages(ModelPackageGroupName=group, **NEWEST_APPROVED_QUERY)
        summaries = packages["ModelPackageSummaryList"]
        if not summaries:
            raise NoApprovedModelError(f"model package group {group!r} has no approved model package")
        described = client.describe_model_package(ModelPackageName=summaries[0]["ModelPackageArn"])
    except ClientError as exc:
        raise NoApprovedModelError(f"cannot read model package group {group!r}: {exc}") from exc
    metadata = dict(described.get("CustomerMetadataProperties") or {})
    arn = str(described["ModelPackageArn"])
    return ApprovedModel(
        arn=arn,
        version=int(described.get("ModelPackageVersion") or arn.rsplit("/", 1)[1]),
        artifact_uri=str(described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]),
        sha256=metadata.get(SHA256_KEY),
        metadata=metadata,
    )


def set_approval(client: Any, arn: str, status: str) -> None:
    """Approve or reject a package (what a person does in the console; the tests and the demo do it here)."""
    client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
