"""What every domain's API function shares: the JSON error shape, request checks before routing, error handlers,
and the resolver with each domain's Powertools `Router` included.

Every error is `{"error": {"code", "message", "field"}}`; a client mistake always gets a 4xx, and a 5xx body never
carries internal detail (artifact URIs, registry names and stack traces go to the log only). Nothing here knows a
domain: `lambdas/<name>/app.py` builds its resolver with `build_resolver` and its entry point with `entry_point`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from shelfwise.domain import ApiRoute

#: A JSON request to these APIs is well under 2 KiB; anything this big is not one.
MAX_BODY_BYTES = 16 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An answer other than 200, raised anywhere in a handler; `message` is shown to the client."""

    def __init__(self, status: HTTPStatus, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_doc(description: str) -> OpenAPIResponse:
    """An OpenAPI response entry for an error of the API's shape."""
    return {"description": description, "content": {"application/json": {"model": ErrorOut}}}


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> Response[str]:
    body = ErrorOut(error=ErrorDetail(code=error.code, message=error.message, field=error.field))
    return Response(
        status_code=error.status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(),
        headers=headers,
    )


def proxy_error(error: ApiError) -> dict[str, Any]:
    """The proxy-integration response for an error found before routing, in the shape the resolver produces."""
    body = ErrorOut(error=ErrorDetail(code=error.code, message=error.message, field=error.field))
    return {
        "statusCode": int(error.status),
        "multiValueHeaders": {"Content-Type": [content_types.APPLICATION_JSON]},
        "body": body.model_dump_json(),
        "isBase64Encoded": False,
    }


def reject_body(event: dict[str, Any], own_body: Sequence[tuple[str, re.Pattern[str]]] = ()) -> ApiError | None:
    """Why the request body cannot be a JSON request, found before Powertools parses it (it would answer 5xx).

    `own_body` (method, path regex, as `route_patterns` gives) are the routes that read and check their body
    themselves (an image upload): their requests are left to them.
    """
    proxy = APIGatewayProxyEvent(event)
    method, path = str(event.get("httpMethod") or "").upper(), str(event.get("path") or "")
    if any(method == own_method and pattern.fullmatch(path) for own_method, pattern in own_body):
        return None
    body = proxy.body or ""
    if len(body) > (MAX_BODY_BYTES * 4 // 3 + 4 if proxy.is_base64_encoded else MAX_BODY_BYTES):
        return ApiError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", f"body exceeds {MAX_BODY_BYTES} bytes"
        )
    content_type = (proxy.headers.get("content-type") or "application/json").strip().lower()
    # Checked on empty bodies too: Powertools' form and multipart parsers fail on them with a 500.
    if (body or (proxy.http_method or "").upper() in _BODY_METHODS) and not content_type.startswith("application/json"):
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


def route_patterns(routes: Sequence[ApiRoute]) -> list[tuple[str, re.Pattern[str]]]:
    """(method, path regex) of each declared route, for 405 answers."""
    return [(r.method, re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(r.path)))) for r in routes]


def build_resolver(
    *,
    title: str,
    description: str,
    routers: Sequence[Router],
    routes: Sequence[ApiRoute],
    swagger_path: str,
    metrics: Metrics,
    logger: Logger,
    domain_errors: Sequence[tuple[type[Exception], Callable[[Exception], ApiError]]] = (),
) -> APIGatewayRestResolver:
    """A resolver with the routers included, OpenAPI and Swagger UI, and the API's error handling."""
    app = APIGatewayRestResolver(enable_validation=True)
    app.configure_openapi(title=title, version="1.0.0", description=description)
    app.enable_swagger(path=swagger_path, title=title, version="1.0.0")
    for router in routers:
        app.include_router(router)
    patterns = route_patterns(routes)

    def rejected() -> None:
        metrics.add_metric(name="RejectedRequests", unit=MetricUnit.Count, value=1)

    @app.exception_handler(ApiError)
    def _api_error(error: ApiError) -> Response[str]:
        if error.status < 500:
            rejected()
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    def _invalid_request(error: RequestValidationError) -> Response[str]:
        rejected()
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
        rejected()
        return error_response(
            ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json")
        )

    @app.not_found
    def _not_found(_: NotFoundError) -> Response[str]:
        rejected()
        path, method = app.current_event.path, app.current_event.http_method.upper()
        allowed = sorted({m for m, pattern in patterns if pattern.fullmatch(path)})
        if allowed:
            message = f"{method} is not allowed on {path}; use {', '.join(allowed)}"
            return error_response(
                ApiError(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", message), {"Allow": ", ".join(allowed)}
            )
        return error_response(ApiError(HTTPStatus.NOT_FOUND, "route_not_found", f"no route {method} {path}"))

    for kind, translate in domain_errors:

        def _domain_error(error: Exception, translate: Callable[[Exception], ApiError] = translate) -> Response[str]:
            answer = translate(error)
            logger.warning("request failed", extra={"code": answer.code, "detail": str(error)})
            return error_response(answer)

        app.exception_handler(kind)(_domain_error)

    @app.exception_handler(Exception)
    def _internal_error(error: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return error_response(
            ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error; see the logs")
        )

    return app


def entry_point(
    app: APIGatewayRestResolver,
    logger: Logger,
    tracer: Tracer,
    metrics: Metrics,
    own_body_routes: Sequence[ApiRoute] = (),
) -> Callable[[dict[str, Any], LambdaContext], dict[str, Any]]:
    """The Lambda handler: checks the body (except on `own_body_routes`, which check theirs), then routes; traces
    without capturing responses (they hold customer data), logs with the API Gateway request id as correlation id."""
    own_body = route_patterns(own_body_routes)

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        rejection = reject_body(event, own_body)
        if rejection is not None:
            metrics.add_metric(name="RejectedRequests", unit=MetricUnit.Count, value=1)
            return proxy_error(rejection)
        return app.resolve(event, context)

    return handler  # type: ignore[no-any-return]
