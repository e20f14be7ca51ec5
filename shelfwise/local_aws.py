"""Local AWS: a moto server on loopback with the lake bucket and tables of the configuration.

Every boto3 client in this process and its children reaches it through `AWS_ENDPOINT_URL`, so the code that runs
in AWS runs here unchanged.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3

from shelfwise.config import Settings, load_settings, settings

#: Dummy credentials for moto; real AWS credentials in the environment must never reach a local run.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
#: The account moto serves; the lake's S3 calls name it as the expected bucket owner, as they name yours in AWS.
MOTO_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class LocalAws:
    endpoint: str
    settings: Settings


def create_resources(cfg: Settings) -> None:
    """Create the lake bucket, the online table and the Glue database, as the CDK stacks do in AWS."""
    s3 = boto3.client("s3", region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if cfg.lake_bucket not in existing:
        if cfg.region == "us-east-1":
            s3.create_bucket(Bucket=cfg.lake_bucket)
        else:
            s3.create_bucket(
                Bucket=cfg.lake_bucket,
                CreateBucketConfiguration={"LocationConstraint": cfg.region},
            )
    dynamodb = boto3.client("dynamodb", region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)
    if cfg.online_table not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(**online_table_spec(cfg.online_table))
        dynamodb.update_time_to_live(
            TableName=cfg.online_table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
        )
    glue = boto3.client("glue", region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)
    if cfg.glue_database not in {d["Name"] for d in glue.get_databases()["DatabaseList"]}:
        glue.create_database(DatabaseInput={"Name": cfg.glue_database})


def online_table_spec(name: str) -> dict[str, object]:
    """The online store's key schema: one item per entity (`pk` = `customer#123`) and feature set (`sk`)."""
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


@contextmanager
def local_aws() -> Iterator[LocalAws]:
    """Run a moto server on 127.0.0.1 (free port) for the duration of the block, with resources created.

    Sets `AWS_ENDPOINT_URL` and dummy credentials in `os.environ` (so child processes inherit them) and restores
    the environment afterwards.
    """
    from moto.server import ThreadedMotoServer

    # moto's werkzeug server logs every request: thousands of lines during an ingest.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = dict(os.environ)
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ.setdefault("AWS_DEFAULT_REGION", settings().region)
    os.environ.setdefault("SHELFWISE_LAKE_BUCKET_OWNER", MOTO_ACCOUNT)
    settings.cache_clear()
    try:
        cfg = load_settings()
        create_resources(cfg)
        yield LocalAws(endpoint=endpoint, settings=cfg)
    finally:
        # moto keeps its state per process, not per server: without a reset, the next local AWS in this process
        # would start with this one's buckets and tables.
        _reset(endpoint)
        server.stop()
        os.environ.clear()
        os.environ.update(saved)
        settings.cache_clear()


def _reset(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
