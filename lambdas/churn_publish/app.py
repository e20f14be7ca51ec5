"""Churn publish (Step Functions -> Lambda, or the local demo in-process): a churn scoring run's
`online_records.jsonl` into the online store with `shelfwise.churn.publish` (event, answer, quarantine and metrics:
`shelfwise.publish_function`)."""

from shelfwise.churn.publish import publish_lines
from shelfwise.publish_function import InvalidEventError, OnlineRecordsMissingError, PublishFunction

__all__ = ["InvalidEventError", "OnlineRecordsMissingError", "function", "handler"]

function = PublishFunction("churn", publish_lines)
handler = function.handler
