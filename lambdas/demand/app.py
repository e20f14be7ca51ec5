"""Demand API function (API Gateway REST proxy -> Lambda): the demand routes of `shelfwise.demand.api` on the shared
resolver of `shelfwise.api`, with the Swagger UI at /demand/swagger (`?format=json`: the OpenAPI document).

Thin on purpose: it builds the DynamoDB client and the resolver once per container, then routes.
"""

import functools
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer

from shelfwise.api import build_resolver, entry_point
from shelfwise.config import settings
from shelfwise.demand.api import DOMAIN_ERRORS, ROUTES, SWAGGER, DemandService, demand_router

SERVICE = "demand-api"

logger = Logger(service=SERVICE, level=settings().log_level)
# Only botocore is patched: every call this function makes goes through it, and patching the rest costs cold start.
tracer = Tracer(service=SERVICE, patch_modules=("botocore",))
metrics = Metrics(namespace="Shelfwise", service=SERVICE)


@functools.cache
def dynamodb() -> Any:
    cfg = settings()
    return boto3.client("dynamodb", region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)


@functools.cache
def service() -> DemandService:
    return DemandService(dynamodb=dynamodb, table=settings().online_table)


app = build_resolver(
    title="Shelfwise demand API",
    description="Daily demand forecasts per store x SKU and per aggregate, and inventory decisions from them.",
    routers=[demand_router(service, metrics, tracer)],
    routes=ROUTES,
    swagger_path=SWAGGER,
    metrics=metrics,
    logger=logger,
    domain_errors=DOMAIN_ERRORS,
)
handler = entry_point(app, logger, tracer, metrics)
