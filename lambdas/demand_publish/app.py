"""Demand publish (Step Functions -> Lambda, or the local demo in-process): a batch forecast's
`online_records.jsonl` (every store x SKU's forecast and every sum's) into the online store with
`shelfwise.demand.publish` (event, answer, quarantine and metrics: `shelfwise.publish_function`)."""

from shelfwise.demand.publish import publish_lines
from shelfwise.publish_function import InvalidEventError, OnlineRecordsMissingError, PublishFunction

__all__ = ["InvalidEventError", "OnlineRecordsMissingError", "function", "handler"]

function = PublishFunction("demand", publish_lines)
handler = function.handler
