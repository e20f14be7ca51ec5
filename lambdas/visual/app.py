"""Visual search API function (API Gateway REST proxy -> Lambda): the visual routes of `shelfwise.visual.api` on the
shared resolver of `shelfwise.api`, with the Swagger UI at /visual/swagger (`?format=json`: the OpenAPI document).

Thin on purpose: it reads the search configuration and builds the clients and the resolver once per container; the
index and the query model load on first use (`shelfwise.visual.service`), then it routes.
"""

import functools
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer

from shelfwise.api import build_resolver, entry_point
from shelfwise.config import settings
from shelfwise.visual.api import DOMAIN_ERRORS, OWN_BODY_ROUTES, ROUTES, SWAGGER, visual_router
from shelfwise.visual.search_store import LakeObjects
from shelfwise.visual.service import VisualService, load_search_config

SERVICE = "visual-api"

logger = Logger(service=SERVICE, level=settings().log_level)
# Only botocore is patched: the lake reads go through it, and patching the rest costs cold start.
tracer = Tracer(service=SERVICE, patch_modules=("botocore",))
metrics = Metrics(namespace="Shelfwise", service=SERVICE)
search_config = load_search_config()


@functools.cache
def s3() -> Any:
    cfg = settings()
    return boto3.client("s3", region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)


@functools.cache
def opensearch() -> Any:
    from shelfwise.visual.opensearch_index import FLAVOURS, opensearch_client

    assert search_config.endpoint is not None  # the configuration requires it for the OpenSearch backends
    return opensearch_client(search_config.endpoint, settings().region, FLAVOURS[search_config.backend])


@functools.cache
def service() -> VisualService:
    cfg = settings()
    return VisualService(
        config=search_config,
        store=LakeObjects(s3(), cfg.lake_bucket, cfg.expected_owner()),
        opensearch=opensearch,
    )


app = build_resolver(
    title="Shelfwise visual search API",
    description="Products that look like an uploaded image, and the look-alikes of a product.",
    routers=[visual_router(service, metrics, tracer)],
    routes=ROUTES,
    swagger_path=SWAGGER,
    metrics=metrics,
    logger=logger,
    domain_errors=DOMAIN_ERRORS,
)
handler = entry_point(app, logger, tracer, metrics, own_body_routes=OWN_BODY_ROUTES)
