"""Churn API (API Gateway REST proxy -> Lambda): a customer's churn risk with its reasons, and what-if scoring.

GET  /customers/{customer_id}/churn   scores the customer's online-store features with the registered model
POST /churn/score                     scores a full feature payload sent by the client
GET  /churn/swagger                   Swagger UI (assets inlined, no CDN); `?format=json` gives the OpenAPI document

Every error is `{"error": {"code", "message", "field"}}`; bad client input always gets a 4xx.
The model is the newest approved package of the registry group, loaded once per container.
"""

import base64
import binascii
import functools
import json
import re
import tempfile
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, create_model

from shelfwise import churn_scoring, online_store
from shelfwise.churn_features import FEATURES, Feature
from shelfwise.config import settings

SERVICE = "churn-api"
CUSTOMER_CHURN = "/customers/<customer_id>/churn"
WHAT_IF = "/churn/score"
SWAGGER = "/churn/swagger"
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: A full feature payload is well under 2 KiB; anything this big is not one.
MAX_BODY_BYTES = 16 * 1024
MAX_REASONS = 3

logger = Logger(service=SERVICE, level=settings().log_level)
# Only botocore is patched: every call this function makes goes through it, and patching the rest costs cold start.
tracer = Tracer(service=SERVICE, patch_modules=("botocore",))
metrics = Metrics(namespace="Shelfwise", service=SERVICE)
app = APIGatewayRestResolver(enable_validation=True)
app.configure_openapi(
    title="Shelfwise churn API",
    version="1.0.0",
    description="Churn risk per customer from the batch features, and what-if scoring of a feature payload.",
)
app.enable_swagger(path=SWAGGER, title="Shelfwise churn API", version="1.0.0")


# ---- request and response models ------------------------------------------------------------------------------


def _feature_field(feature: Feature) -> Any:
    """A strict field for one feature: ints must be JSON integers, floats finite, both within the range."""
    if feature.dtype == "int":
        return (int, Field(strict=True, ge=feature.minimum, le=feature.maximum, description=feature.description))
    return (
        float,
        Field(
            strict=True, allow_inf_nan=False, ge=feature.minimum, le=feature.maximum, description=feature.description
        ),
    )


FeatureValues = create_model(
    "FeatureValues",
    __config__=ConfigDict(extra="forbid"),
    **{feature.name: _feature_field(feature) for feature in FEATURES},
)


class WhatIfRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    features: FeatureValues


class ReasonOut(BaseModel):
    feature: str
    value: float
    contribution: float = Field(description="SHAP contribution to the churn logit (positive raises the risk).")


class ScoreOut(BaseModel):
    probability: float = Field(ge=0, le=1)
    risk_band: Literal["low", "medium", "high"]
    reasons: list[ReasonOut]
    model_version: str


class CustomerChurnOut(ScoreOut):
    customer_id: str
    features_as_of: str
    cold_start: bool = Field(description="True for a customer without purchase history: the population prior.")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


def _error_doc(description: str) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": ErrorOut}}}


# ---- the model and the store -----------------------------------------------------------------------------------


class ModelUnavailableError(RuntimeError):
    """No approved churn model can be loaded; the API answers 503 until one is registered."""


@functools.cache
def _client(service: str) -> Any:
    cfg = settings()
    return boto3.client(service, region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)  # type: ignore[call-overload]


@tracer.capture_method
def registered_artifact_uri(group: str) -> str:
    """The S3 URI of the newest approved model package's artifact in the registry group."""
    sagemaker = _client("sagemaker")
    packages = sagemaker.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )["ModelPackageSummaryList"]
    if not packages:
        raise ModelUnavailableError(f"no approved model package in registry group {group!r}")
    package = sagemaker.describe_model_package(ModelPackageName=packages[0]["ModelPackageArn"])
    return str(package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"])


@tracer.capture_method
def download_artifact(uri: str, dest: Path) -> Path:
    """Download `s3://bucket/key` to `dest/model.tar.gz`."""
    match = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
    if match is None:
        raise ModelUnavailableError(f"model artifact URI is not s3://bucket/key: {uri!r}")
    archive = dest / "model.tar.gz"
    _client("s3").download_file(match.group(1), match.group(2), str(archive))
    return archive


@functools.cache
def churn_model() -> churn_scoring.ChurnModel:
    """The registered churn model, loaded once per container (a failure is retried on the next request)."""
    uri = registered_artifact_uri(settings().churn_model_group)
    workdir = Path(tempfile.mkdtemp(prefix="churn-model-"))
    model = churn_scoring.load_model(churn_scoring.extract_artifact(download_artifact(uri, workdir), workdir))
    logger.info("churn model loaded", extra={"model_version": model.model_version, "artifact": uri})
    return model


@tracer.capture_method
def lookup_customer(customer_id: str) -> online_store.OnlineRecord | None:
    return online_store.get_customer(customer_id, client=_client("dynamodb"))


# ---- routes ----------------------------------------------------------------------------------------------------


@app.get(
    CUSTOMER_CHURN,
    summary="Churn risk of a customer",
    responses={
        200: {"description": "The customer's churn risk"},
        404: _error_doc("No such customer"),
        422: _error_doc("Malformed customer id"),
    },
)
def customer_churn(
    customer_id: Annotated[str, PathParam(pattern=CUSTOMER_ID_PATTERN, max_length=64, description="Customer id")],
) -> CustomerChurnOut:
    record = lookup_customer(customer_id)
    if record is None:
        metrics.add_metric(name="UnknownCustomers", unit=MetricUnit.Count, value=1)
        raise ApiError(
            HTTPStatus.NOT_FOUND, "customer_not_found", f"no churn record for customer {customer_id}", "customer_id"
        )
    model = churn_model()
    if record.features is None:
        metrics.add_metric(name="ColdStartAnswers", unit=MetricUnit.Count, value=1)
        result = churn_scoring.cold_start_score(model)
    else:
        metrics.add_metric(name="ScoredAnswers", unit=MetricUnit.Count, value=1)
        # Rescored with the loaded model so that probability, reasons and model_version agree.
        result = churn_scoring.score(model, record.features, MAX_REASONS)
    return CustomerChurnOut(
        customer_id=customer_id,
        features_as_of=record.as_of,
        cold_start=record.features is None,
        **_score_fields(result, model),
    )


@app.post(
    WHAT_IF,
    summary="What-if churn score of a full feature payload",
    responses={
        200: {"description": "The payload's churn risk"},
        400: _error_doc("Body is not JSON"),
        413: _error_doc("Body too large"),
        415: _error_doc("Body is not application/json"),
        422: _error_doc("A feature is missing, unknown, of the wrong type or out of range"),
    },
)
def what_if(request: WhatIfRequest) -> ScoreOut:
    metrics.add_metric(name="WhatIfAnswers", unit=MetricUnit.Count, value=1)
    model = churn_model()
    result = churn_scoring.score(model, request.features.model_dump(), MAX_REASONS)
    return ScoreOut(**_score_fields(result, model))


def _score_fields(result: churn_scoring.ChurnScore, model: churn_scoring.ChurnModel) -> dict[str, Any]:
    return {
        "probability": result.probability,
        "risk_band": result.risk_band,
        "reasons": [ReasonOut(feature=r.feature, value=r.value, contribution=r.contribution) for r in result.reasons],
        "model_version": model.model_version,
    }


# ---- errors ----------------------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> Response[str]:
    body = ErrorOut(error=ErrorDetail(code=error.code, message=error.message, field=error.field))
    return Response(
        status_code=error.status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(),
        headers=headers,
    )


@app.exception_handler(ApiError)
def _api_error(error: ApiError) -> Response[str]:
    return error_response(error)


@app.exception_handler(RequestValidationError)
def _invalid_request(error: RequestValidationError) -> Response[str]:
    metrics.add_metric(name="RejectedRequests", unit=MetricUnit.Count, value=1)
    problems = list(error.errors())
    first = problems[0]
    location = [str(part) for part in first["loc"]]
    if first["type"] == "json_invalid":
        return error_response(ApiError(HTTPStatus.BAD_REQUEST, "malformed_json", "request body is not valid JSON"))
    field = ".".join(location[1:]) or location[0]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    message = f"{field}: {first['msg']}{more}"
    return error_response(ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_request", message, field))


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_content_type(_: RequestUnsupportedContentType) -> Response[str]:
    return error_response(
        ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json")
    )


@app.not_found
def _not_found(_: NotFoundError) -> Response[str]:
    metrics.add_metric(name="RejectedRequests", unit=MetricUnit.Count, value=1)
    path, method = app.current_event.path, app.current_event.http_method.upper()
    allowed = sorted(m for m, pattern in _ROUTE_PATTERNS if pattern.fullmatch(path))
    if allowed:
        message = f"{method} is not allowed on {path}; use {', '.join(allowed)}"
        return error_response(
            ApiError(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", message), {"Allow": ", ".join(allowed)}
        )
    return error_response(ApiError(HTTPStatus.NOT_FOUND, "route_not_found", f"no route {method} {path}"))


@app.exception_handler([churn_scoring.ArtifactError, ModelUnavailableError])
def _model_unavailable(error: Exception) -> Response[str]:
    logger.exception("churn model unavailable")
    metrics.add_metric(name="ModelUnavailable", unit=MetricUnit.Count, value=1)
    return error_response(ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "model_unavailable", str(error)))


@app.exception_handler(churn_scoring.FeatureRowError)
def _feature_mismatch(error: churn_scoring.FeatureRowError) -> Response[str]:
    # The request was valid; the stored row or the model's feature list disagrees with the feature definitions.
    logger.exception("feature row does not fit the model")
    return error_response(ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, "feature_mismatch", str(error)))


@app.exception_handler(Exception)
def _internal_error(error: Exception) -> Response[str]:
    logger.exception("unhandled error")
    return error_response(ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error; see the logs"))


_ROUTE_PATTERNS = [
    (method, re.compile(re.sub(r"<\w+>", "[^/]+", path)))
    for method, path in (("GET", CUSTOMER_CHURN), ("POST", WHAT_IF), ("GET", SWAGGER))
]


# ---- entry point -----------------------------------------------------------------------------------------------


def reject_body(event: dict[str, Any]) -> ApiError | None:
    """Why the request body cannot be a JSON request, found before Powertools parses it (it would answer 5xx)."""
    proxy = APIGatewayProxyEvent(event)
    body = proxy.body or ""
    if len(body) > (MAX_BODY_BYTES * 4 // 3 + 4 if proxy.is_base64_encoded else MAX_BODY_BYTES):
        return ApiError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", f"body exceeds {MAX_BODY_BYTES} bytes"
        )
    content_type = proxy.headers.get("content-type", "application/json").strip().lower()
    # Checked on empty bodies too: Powertools' form and multipart parsers fail on them with a 500.
    if (body or proxy.http_method.upper() in _BODY_METHODS) and not content_type.startswith("application/json"):
        return ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            f"send application/json, not {content_type[:60]!r}",
        )
    if not body:
        return None
    try:
        text = base64.b64decode(body, validate=True).decode() if proxy.is_base64_encoded else body
        json.loads(text)
    except (binascii.Error, UnicodeDecodeError):
        return ApiError(HTTPStatus.BAD_REQUEST, "malformed_body", "body is not valid base64-encoded UTF-8")
    # ValueError covers JSONDecodeError and integers beyond Python's digit limit; RecursionError deep nesting.
    except (ValueError, RecursionError):
        return ApiError(HTTPStatus.BAD_REQUEST, "malformed_json", "request body is not valid JSON")
    return None


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rejection = reject_body(event)
    if rejection is not None:
        metrics.add_metric(name="RejectedRequests", unit=MetricUnit.Count, value=1)
        return _proxy_response(rejection)
    return app.resolve(event, context)


def _proxy_response(error: ApiError) -> dict[str, Any]:
    """The proxy-integration response for an error found before routing, in the shape the resolver produces."""
    body = ErrorOut(error=ErrorDetail(code=error.code, message=error.message, field=error.field))
    return {
        "statusCode": int(error.status),
        "multiValueHeaders": {"Content-Type": [content_types.APPLICATION_JSON]},
        "body": body.model_dump_json(),
        "isBase64Encoded": False,
    }
