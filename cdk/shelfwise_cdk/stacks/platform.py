"""Platform stack: what every domain's parts share to operate, not to hold data: the operations key (log groups,
Glue job bookmarks, the alarm topic) and the alarm topic every alarm of the deployment notifies.

Data keeps its own keys (the lake's in the data-lake stack, the online table's in the online-store stack), so a
key policy change for operations never touches data.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_sns as sns
from constructs import Construct

from shelfwise.config import Settings
from shelfwise_cdk.constructs.encryption import allow_cloudwatch_alarms, allow_cloudwatch_logs, rotating_key


class PlatformStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, cfg: Settings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.key = rotating_key(
            self,
            "OperationsKey",
            alias=f"alias/{cfg.resource_name('operations')}",
            description=f"Shelfwise {cfg.env}: encrypts logs, Glue job bookmarks and alarm notifications",
        )
        allow_cloudwatch_logs(self.key)
        allow_cloudwatch_alarms(self.key)
        self.alarm_topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=cfg.resource_name("alarms"),
            display_name=f"Shelfwise {cfg.env} alarms",
            master_key=self.key,
            enforce_ssl=True,
        )
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)
        CfnOutput(self, "OperationsKeyArn", value=self.key.key_arn)
