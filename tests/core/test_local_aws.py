"""Local AWS: a moto server with the configured resources, and nothing left behind when it stops."""

from __future__ import annotations

import os

import boto3
import pyarrow as pa

from shelfwise.lake import Lake
from shelfwise.local_aws import local_aws


def test_local_aws_creates_resources_and_restores_the_environment() -> None:
    before = os.environ.get("AWS_ENDPOINT_URL")
    with local_aws() as aws:
        assert os.environ["AWS_ENDPOINT_URL"] == aws.endpoint
        assert aws.endpoint.startswith("http://127.0.0.1:")
        s3 = boto3.client("s3", region_name=aws.settings.region, endpoint_url=aws.endpoint)
        assert aws.settings.lake_bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}
        dynamodb = boto3.client("dynamodb", region_name=aws.settings.region, endpoint_url=aws.endpoint)
        assert aws.settings.online_table in dynamodb.list_tables()["TableNames"]
    assert os.environ.get("AWS_ENDPOINT_URL") == before


def test_a_new_local_aws_starts_empty() -> None:
    with local_aws() as aws:
        Lake(aws.settings).write_table(pa.table({"x": [1]}), "raw/leftover/dt=2024-01-01")
    with local_aws() as aws:
        assert list(Lake(aws.settings).list("raw/")) == []
