"""The publish Lambda every domain shares (Step Functions -> Lambda, or the local demo in-process): stream a batch
run's `online_records.jsonl` from the lake into the DynamoDB online store with the domain's `publish_lines`.

Event: `{"predictions_prefix": "predictions/<domain>/<run>/"}` (the object `<prefix>online_records.jsonl` in the lake
bucket) or `{"bucket": "...", "key": "..."}`. A bad event raises `InvalidEventError` naming the field.
Answer: the counts (lines = written + skipped_older + rejected), the latest `as_of` written and, when lines were
rejected, `quarantine_key`: the lake object `quarantine/<domain>-publish/<run>/rejected.jsonl` holding each rejected
line with its line number and reason. Metrics: the counts, and the age of the published `as_of`.

A domain's `lambdas/<name>/app.py` builds one `PublishFunction` and exports its `handler`.
"""

import datetime as dt
import functools
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shelfwise.config import settings
from shelfwise.publishing import ONLINE_RECORDS, PublishReport, Rejection

#: Rejections also written to the log (all of them go to the quarantine object).
LOGGED_REJECTIONS = 10
PublishLines = Callable[..., PublishReport]


class InvalidEventError(ValueError):
    """The event is not one this function takes; the message names the field."""


class OnlineRecordsMissingError(RuntimeError):
    """The run has no `online_records.jsonl` (it did not finish, or an older batch score wrote it)."""


class PublishEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    predictions_prefix: str | None = Field(None, pattern=r"^predictions/[a-z]+/[A-Za-z0-9][A-Za-z0-9._:-]{0,127}/$")
    bucket: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    key: str | None = Field(None, min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _one_location(self) -> "PublishEvent":
        if self.predictions_prefix is not None and (self.bucket is not None or self.key is not None):
            raise ValueError("give predictions_prefix or bucket and key, not both")
        if self.predictions_prefix is None and (self.bucket is None or self.key is None):
            raise ValueError("give predictions_prefix, or both bucket and key")
        return self

    def location(self, lake_bucket: str) -> tuple[str, str]:
        if self.predictions_prefix is not None:
            return lake_bucket, self.predictions_prefix + ONLINE_RECORDS
        # _one_location guarantees both are set here
        return str(self.bucket), str(self.key)


def parse_event(event: Any) -> PublishEvent:
    """The event as a `PublishEvent`; raises InvalidEventError naming each bad field."""
    if not isinstance(event, dict):
        raise InvalidEventError(f"the event must be a JSON object, got {type(event).__name__}")
    try:
        return PublishEvent.model_validate(event)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(part) for part in err["loc"]) or "event"
            problems.append(f"{field}: {err['msg']}")
        raise InvalidEventError("invalid publish event: " + "; ".join(problems)) from None


def quarantine_key(quarantine_prefix: str, key: str) -> str:
    """Where the rejected lines of the run at `key` go: named by the run folder, as the other quarantines are."""
    run = key.rsplit("/", 2)[-2] if key.count("/") >= 1 else "unknown-run"
    return f"{quarantine_prefix}{re.sub(r'[^A-Za-z0-9._:-]', '_', run)}/rejected.jsonl"


class PublishFunction:
    """One domain's publish Lambda: its service name, where its runs are, and its `publish_lines`."""

    def __init__(self, domain: str, publish_lines: PublishLines) -> None:
        self.domain = domain
        self.service = f"{domain}-publish"
        self.predictions_prefix = f"predictions/{domain}/"
        self.quarantine_prefix = f"quarantine/{domain}-publish/"
        self.publish_lines = publish_lines
        self.logger = Logger(service=self.service, level=settings().log_level)
        # Only botocore is patched: every call this function makes goes through it.
        self.tracer = Tracer(service=self.service, patch_modules=("botocore",))
        self.metrics = Metrics(namespace="Shelfwise", service=self.service)
        self.publish = self.tracer.capture_method(capture_response=False)(self._publish)
        self.handler = self.logger.inject_lambda_context(
            self.tracer.capture_lambda_handler(self.metrics.log_metrics(self._handle), capture_response=False)
        )

    def parse_event(self, event: Any) -> PublishEvent:
        """The event as a `PublishEvent` of this domain's runs; raises InvalidEventError naming each bad field."""
        request = parse_event(event)
        if request.predictions_prefix is not None and not request.predictions_prefix.startswith(
            self.predictions_prefix
        ):
            raise InvalidEventError(
                f"invalid publish event: predictions_prefix must be under {self.predictions_prefix}"
            )
        return request

    @functools.cached_property
    def _clients(self) -> tuple[Any, Any]:
        cfg = settings()
        return (
            boto3.client("s3", region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url),
            boto3.client("dynamodb", region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url),
        )

    def _publish(self, bucket: str, key: str) -> dict[str, Any]:
        """Stream `s3://bucket/key` into the online table; quarantine rejected lines in the lake."""
        s3, dynamodb = self._clients
        cfg = settings()
        try:
            body = s3.get_object(Bucket=bucket, Key=key, **cfg.expected_owner())["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise OnlineRecordsMissingError(
                    f"no online records at s3://{bucket}/{key}: the batch run wrote none"
                ) from None
            raise
        # Rejected lines stream to a scratch file (Lambda's /tmp), so memory stays bounded however many there are.
        with tempfile.NamedTemporaryFile("w+", encoding="utf-8", suffix=".jsonl") as rejected:

            def keep(rejection: Rejection) -> None:
                rejected.write(rejection.to_json() + "\n")

            lines: Iterable[bytes] = body.iter_lines()
            report = self.publish_lines(lines, table=cfg.online_table, client=dynamodb, on_reject=keep)
            rejected.flush()
            kept = None
            if report.rejected:
                kept = quarantine_key(self.quarantine_prefix, key)
                s3.upload_file(rejected.name, cfg.lake_bucket, kept, ExtraArgs=cfg.expected_owner() or None)
        for rejection in report.sample[:LOGGED_REJECTIONS]:
            self.logger.warning("rejected line", extra={"line": rejection.line, "reason": rejection.reason})
        if not report.reconciles:  # a bug in the publisher, never bad input: fail loudly
            raise RuntimeError(f"publish counts do not reconcile: {report.summary()}")
        return {"bucket": bucket, "key": key, **report.summary(), "quarantine_key": kept}

    def _handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        request = self.parse_event(event)
        bucket, key = request.location(settings().lake_bucket)
        result: dict[str, Any] = self.publish(bucket, key)
        metrics = self.metrics
        metrics.add_metric(name="PublishedRecords", unit=MetricUnit.Count, value=result["written"])
        metrics.add_metric(name="ColdStartRecords", unit=MetricUnit.Count, value=result["cold_starts"])
        metrics.add_metric(name="RejectedRecords", unit=MetricUnit.Count, value=result["rejected"])
        metrics.add_metric(name="SkippedOlderRecords", unit=MetricUnit.Count, value=result["skipped_older"])
        if result["as_of"]:
            metrics.add_metric(
                name="PublishedDataAgeSeconds", unit=MetricUnit.Seconds, value=age_seconds(result["as_of"])
            )
        self.logger.info(f"published {self.domain} records", extra=result)
        return result


def age_seconds(as_of: str) -> float:
    """Seconds since the start of the `as_of` day."""
    start = dt.datetime.fromisoformat(as_of[:10]).replace(tzinfo=dt.UTC)
    return max(0.0, time.time() - start.timestamp())
