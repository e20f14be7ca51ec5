"""Churn API function (API Gateway REST proxy -> Lambda): the churn routes of `shelfwise.churn.api` on the shared
resolver of `shelfwise.api`, with the Swagger UI at /churn/swagger (`?format=json`: the OpenAPI document).

Thin on purpose: it builds the clients, the model cache and the resolver once per container, then routes.
"""

import functools
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer

from shelfwise.api import build_resolver, entry_point
from shelfwise.churn import scoring
from shelfwise.churn.api import DOMAIN_ERRORS, MODEL_GROUP, ROUTES, SWAGGER, ChurnService, churn_router
from shelfwise.config import settings
from shelfwise.model_cache import ModelCache

SERVICE = "churn-api"

logger = Logger(service=SERVICE, level=settings().log_level)
# Only botocore is patched: every call this function makes goes through it, and patching the rest costs cold start.
tracer = Tracer(service=SERVICE, patch_modules=("botocore",))
metrics = Metrics(namespace="Shelfwise", service=SERVICE)


@functools.cache
def client(name: str) -> Any:
    cfg = settings()
    return boto3.client(name, region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)  # type: ignore[call-overload]


@functools.cache
def service() -> ChurnService:
    cfg = settings()
    models = ModelCache(
        cfg.model_group(MODEL_GROUP),
        scoring.load_archive,
        ttl_seconds=cfg.model_cache_seconds,
        sagemaker=lambda: client("sagemaker"),
        s3=lambda: client("s3"),
        expected_owner=cfg.expected_owner(),
        on_event=lambda event, fields: logger.info(event, extra=fields),
    )
    return ChurnService(models=models, dynamodb=lambda: client("dynamodb"), table=cfg.online_table)


app = build_resolver(
    title="Shelfwise churn API",
    description="Churn risk per customer from the batch features, and what-if scoring of a feature payload.",
    routers=[churn_router(service, metrics, tracer, logger)],
    routes=ROUTES,
    swagger_path=SWAGGER,
    metrics=metrics,
    logger=logger,
    domain_errors=DOMAIN_ERRORS,
)
handler = entry_point(app, logger, tracer, metrics)
