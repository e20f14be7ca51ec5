"""Online store stack: the DynamoDB table that serves churn scores and features by key in milliseconds.

Key schema and billing come from `shelfwise.local_aws.online_table_spec`, the same spec the local runtime creates
in moto, so both runtimes agree on `pk`/`sk`. Items expire through the `expires_at` TTL attribute.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from shelfwise.config import Settings
from shelfwise.local_aws import online_table_spec
from shelfwise_cdk.constructs.encryption import rotating_key

TTL_ATTRIBUTE = "expires_at"


class OnlineStoreStack(Stack):
    """On-demand table with point-in-time recovery, a customer-managed key and TTL."""

    def __init__(self, scope: Construct, construct_id: str, *, cfg: Settings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.key = rotating_key(
            self,
            "OnlineStoreKey",
            alias=f"alias/{cfg.resource_name('online')}",
            description=f"Shelfwise {cfg.env}: encrypts the online store table",
        )
        partition_key, sort_key = table_keys(online_table_spec(cfg.online_table))
        self.table = dynamodb.Table(
            self,
            "OnlineTable",
            table_name=cfg.online_table,
            partition_key=partition_key,
            sort_key=sort_key,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            time_to_live_attribute=TTL_ATTRIBUTE,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        CfnOutput(self, "OnlineTableName", value=self.table.table_name)


def table_keys(spec: dict[str, Any]) -> tuple[dynamodb.Attribute, dynamodb.Attribute]:
    """(partition key, sort key) as CDK attributes, from a boto3 `create_table` spec."""
    types = {a["AttributeName"]: a["AttributeType"] for a in spec["AttributeDefinitions"]}
    by_role = {k["KeyType"]: k["AttributeName"] for k in spec["KeySchema"]}
    if set(by_role) != {"HASH", "RANGE"}:
        raise ValueError(f"online table spec must have a HASH and a RANGE key, got {spec['KeySchema']}")
    kinds = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER, "B": dynamodb.AttributeType.BINARY}
    return (
        dynamodb.Attribute(name=by_role["HASH"], type=kinds[types[by_role["HASH"]]]),
        dynamodb.Attribute(name=by_role["RANGE"], type=kinds[types[by_role["RANGE"]]]),
    )
