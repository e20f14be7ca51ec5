"""API Gateway on 127.0.0.1: each HTTP request becomes a REST (v1) proxy event for the real Lambda handler.

The route table is read from the domains' declarations (`shelfwise.domains`), the same ones the CDK API stack
builds its resources from. `/openapi.json` merges the handlers' OpenAPI documents and `/docs` is a Swagger UI page
whose assets are served from the Powertools package, so it works offline.

Authentication: in AWS every route takes IAM (SigV4) or, as a deployment setting, a JWT. Locally there is no
caller identity to check, so signed and unsigned requests are both accepted, and every answer says so in the
`X-Shelfwise-Auth` header. Every request, whatever its method or path, gets an answer in the API's JSON error
shape when it cannot be routed (a malformed request line included).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

LAMBDAS_DIR = Path(__file__).resolve().parents[1] / "lambdas"
STAGE = "local"
#: API Gateway's payload limit.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
#: Sent with every local answer: what a deployed API would have checked.
AUTH_HEADER = ("X-Shelfwise-Auth", "not checked locally (AWS: IAM SigV4 or JWT); signed and unsigned requests accepted")

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    """One API Gateway method: HTTP method, resource template (`/customers/{customer_id}/churn`), handler."""

    method: str
    resource: str
    handler: LambdaHandler
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.resource))
        object.__setattr__(self, "pattern", re.compile(regex))

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters, decoded, if the percent-encoded `path` is this resource (an encoded `/` stays in its
        parameter)."""
        found = self.pattern.fullmatch(path)
        return None if found is None else {name: unquote(value) for name, value in found.groupdict().items()}


@dataclass(frozen=True)
class LocalLambdaContext:
    """The parts of the Lambda context object that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def load_lambda(name: str, *, fresh: bool = False) -> ModuleType:
    """Import `lambdas/<name>/app.py` (lambdas/ is not a package: each folder is the root of its own bundle).

    The module is registered as `shelfwise_lambda_<name>`; `fresh=True` imports a new copy, with empty caches,
    as a new Lambda container would.
    """
    module_name = f"shelfwise_lambda_{name}"
    if not fresh and module_name in sys.modules:
        return sys.modules[module_name]
    path = LAMBDAS_DIR / name / "app.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"no Lambda handler at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def api_methods() -> tuple[tuple[str, str, str], ...]:
    """The API's methods as the domains declare them: (HTTP method, resource, folder of the handler under lambdas/)."""
    from shelfwise.domains import DOMAINS

    return tuple((route.method, route.path, d.api.name) for d in DOMAINS if d.api is not None for route in d.api.routes)


@dataclass(frozen=True)
class LocalLambdas:
    """Freshly imported handler modules (one container each) and the routes to them."""

    modules: dict[str, ModuleType]
    routes: list[Route]


def local_lambdas() -> LocalLambdas:
    """Import each handler once, fresh (new caches and clients for the current AWS endpoint), and route to it."""
    methods = api_methods()
    modules = {name: load_lambda(name, fresh=True) for name in dict.fromkeys(n for _, _, n in methods)}
    handlers = {name: serialized(module.handler) for name, module in modules.items()}
    return LocalLambdas(modules, [Route(method, resource, handlers[name]) for method, resource, name in methods])


def serialized(handler: LambdaHandler) -> LambdaHandler:
    """A handler that runs one request at a time, as one Lambda container does (resolvers keep per-request state)."""
    lock = threading.Lock()

    def run(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock:
            return handler(event, context)

    return run


def proxy_event(
    method: str,
    path: str,
    *,
    resource: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    headers: list[tuple[str, str]] | Mapping[str, str] | None = None,
    query: list[tuple[str, str]] | None = None,
    body: bytes | str | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy-integration event, in the full shape API Gateway sends."""
    header_pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    query_pairs = list(query or [])
    text, is_base64 = _event_body(body)
    now = datetime.now(UTC)
    resource = resource or path
    single_headers = dict(header_pairs)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": _multi(header_pairs) or None,
        "queryStringParameters": dict(query_pairs) or None,
        "multiValueQueryStringParameters": _multi(query_pairs) or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "resourceId": "local",
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "extendedRequestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "domainName": "localhost",
            "identity": {
                "sourceIp": source_ip,
                "userAgent": single_headers.get("User-Agent") or single_headers.get("user-agent"),
                "accountId": None,
                "apiKey": None,
                "caller": None,
                "user": None,
                "userArn": None,
            },
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


def _event_body(body: bytes | str | None) -> tuple[str | None, bool]:
    """API Gateway passes text bodies as they are and binary ones base64-encoded."""
    if body is None or body in (b"", ""):
        return None, False
    if isinstance(body, str):
        return body, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def _multi(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def dispatch(
    routes: list[Route], method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> HttpResponse:
    """Route one HTTP request to its handler through a proxy event, as API Gateway does."""
    parts = urlsplit(target)
    # API Gateway's REST proxy events carry the path as sent, percent-encoded; only `pathParameters` are decoded.
    path = parts.path
    if path.startswith(f"/{STAGE}/"):  # invoke URLs of a deployed API carry the stage, as Powertools' Swagger page does
        path = path[len(STAGE) + 1 :]
    matches = [(route, params) for route in routes if (params := route.match(path)) is not None]
    if not matches:
        return json_response(HTTPStatus.NOT_FOUND, error_body("route_not_found", f"no route {method} {path}"))
    for route, params in matches:
        if route.method == method:
            event = proxy_event(
                method,
                path,
                resource=route.resource,
                path_parameters=params,
                headers=headers,
                query=parse_qsl(parts.query, keep_blank_values=True),
                body=body,
            )
            return from_proxy_response(route.handler(event, LocalLambdaContext(function_name=f"local{route.resource}")))
    allowed = sorted({route.method for route, _ in matches})
    response = json_response(
        HTTPStatus.METHOD_NOT_ALLOWED,
        error_body("method_not_allowed", f"{method} is not allowed on {path}; use {', '.join(allowed)}"),
    )
    return HttpResponse(response.status, [*response.headers, ("Allow", ", ".join(allowed))], response.body)


def from_proxy_response(response: Mapping[str, Any]) -> HttpResponse:
    """The HTTP response for a proxy-integration result."""
    headers = [(k, str(v)) for k, v in (response.get("headers") or {}).items()]
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values)
    raw = response.get("body") or ""
    body = base64.b64decode(raw) if response.get("isBase64Encoded") else str(raw).encode("utf-8")
    return HttpResponse(int(response["statusCode"]), headers, body)


def error_body(code: str, message: str, field_name: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field_name}}


def json_response(status: int, payload: Any) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", "application/json")], json.dumps(payload).encode())


def merged_openapi(modules: list[ModuleType]) -> dict[str, Any]:
    """One OpenAPI document from the handlers' resolvers; a path or schema defined twice differently is an error."""
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Shelfwise API (local)", "version": "1.0.0"},
        "servers": [{"url": "/"}],
        "paths": {},
        "components": {"schemas": {}},
    }
    for module in modules:
        document = json.loads(module.app.get_openapi_json_schema())
        _merge_into(merged["paths"], document.get("paths", {}), module.__name__, "path")
        _merge_into(
            merged["components"]["schemas"],
            document.get("components", {}).get("schemas", {}),
            module.__name__,
            "schema",
        )
    return merged


def _merge_into(target: dict[str, Any], source: Mapping[str, Any], origin: str, kind: str) -> None:
    for name, value in source.items():
        if name in target and target[name] != value:
            raise ValueError(f"{origin} defines {kind} {name!r} differently from another handler")
        target[name] = value


def docs_page() -> bytes:
    """A Swagger UI page for /openapi.json, with the UI's assets served from /docs/ (no CDN)."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Shelfwise API (local)</title>
<link rel="stylesheet" href="/docs/{_SWAGGER_CSS}"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/{_SWAGGER_JS}"></script>
<script>window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui"}});</script>
</body></html>""".encode()


_SWAGGER_JS = "swagger-ui-bundle.min.js"
_SWAGGER_CSS = "swagger-ui.min.css"
_ASSET_TYPES = {_SWAGGER_JS: "application/javascript", _SWAGGER_CSS: "text/css"}


def _swagger_asset(name: str) -> bytes:
    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    return (Path(swagger_ui.__file__).parent / name).read_bytes()


class _RequestHandler(BaseHTTPRequestHandler):
    server: _ApiServer
    protocol_version = "HTTP/1.1"
    # Before a request line is understood, answer as HTTP/1.1 (status line and headers), not as HTTP/0.9 (body only).
    default_request_version = "HTTP/1.1"

    def __getattr__(self, name: str) -> Any:
        # http.server looks for `do_<METHOD>`: every method, however odd (PROPFIND, BREW), goes to the router,
        # which answers 405 with the allowed methods or 404 in the API's error shape.
        if name.startswith("do_") and name[3:].isascii() and name[3:].replace("-", "").isalnum():
            return self._serve
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (malformed request line, header too long, ...) in the API's JSON shape."""
        self.close_connection = True
        body = json.dumps(
            error_body("bad_request" if code < 500 else "server_error", message or "bad request")
        ).encode()
        try:
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json")
            self.send_header(*AUTH_HEADER)
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:
            pass  # the client went away

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _serve(self) -> None:
        started = time.perf_counter()
        response = self._respond()
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in {"content-length", "connection"}:
                self.send_header(name, value)
        self.send_header(*AUTH_HEADER)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        self.server.log(f"{self.command} {self.path} {response.status} {(time.perf_counter() - started) * 1000:.1f} ms")

    def _respond(self) -> HttpResponse:
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            self.close_connection = True
            return json_response(HTTPStatus.BAD_REQUEST, error_body("bad_content_length", "invalid Content-Length"))
        if int(length) > MAX_REQUEST_BYTES:
            self.close_connection = True
            return json_response(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                error_body("payload_too_large", f"body exceeds {MAX_REQUEST_BYTES} bytes"),
            )
        body = self.rfile.read(int(length))
        path = urlsplit(self.path).path
        if self.command == "GET" and path in self.server.static:
            content_type, produce = self.server.static[path]
            return HttpResponse(HTTPStatus.OK, [("Content-Type", content_type)], produce())
        try:
            return dispatch(self.server.routes, self.command, self.path, list(self.headers.items()), body)
        except Exception as exc:  # a handler crash must still reach the client as an API Gateway 502 would
            self.server.log(f"handler error: {exc!r}")
            return json_response(HTTPStatus.BAD_GATEWAY, error_body("handler_error", str(exc)))

    def log_message(self, format: str, *args: Any) -> None:
        """Request lines go through `LocalApi.log` instead of stderr."""


class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, lambdas: LocalLambdas, log: Callable[[str], None]) -> None:
        super().__init__(("127.0.0.1", port), _RequestHandler)
        self.routes = lambdas.routes
        self.log = log
        openapi = json.dumps(merged_openapi(list(lambdas.modules.values()))).encode()
        self.static: dict[str, tuple[str, Callable[[], bytes]]] = {
            "/openapi.json": ("application/json", lambda: openapi),
            "/docs": ("text/html; charset=utf-8", docs_page),
            **{f"/docs/{name}": (kind, _asset_reader(name)) for name, kind in _ASSET_TYPES.items()},
        }


def _asset_reader(name: str) -> Callable[[], bytes]:
    return lambda: _swagger_asset(name)


class LocalApi:
    """A running local API; use as a context manager or call `stop()`."""

    def __init__(self, server: _ApiServer) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="shelfwise-local-api", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> LocalApi:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_local_api(
    port: int = 0, lambdas: LocalLambdas | None = None, log: Callable[[str], None] = lambda _: None
) -> LocalApi:
    """Serve the API on 127.0.0.1:`port` (0 = a free port) from a background thread."""
    return LocalApi(_ApiServer(port, lambdas or local_lambdas(), log))


def iter_routes(routes: list[Route]) -> Iterator[str]:
    """Lines describing the routes, for the CLI."""
    for route in routes:
        yield f"{route.method:6} {route.resource}"
