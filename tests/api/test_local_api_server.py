"""The local API server: real HTTP requests through proxy events to the real churn handler."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from shelfwise.bench.serving import ServingWorld
from shelfwise.churn.features import FEATURES
from shelfwise.local_api import MAX_REQUEST_BYTES, LocalApi, Route, dispatch, proxy_event, serialized, start_local_api


@pytest.fixture(scope="module")
def api(world: ServingWorld) -> Iterator[LocalApi]:
    with start_local_api(port=0) as running:
        yield running


def call(
    api: LocalApi, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(api.url + path, data=body, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_known_customer_over_http(api: LocalApi, world: ServingWorld) -> None:
    customer_id = sorted(world.rows)[0]
    status, headers, body = call(api, "GET", f"/customers/{customer_id}/churn")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    answer = json.loads(body)
    assert answer["customer_id"] == customer_id
    assert answer["model_version"] == "v-api"


def test_stage_prefixed_path_reaches_the_same_route(api: LocalApi, world: ServingWorld) -> None:
    customer_id = sorted(world.rows)[0]
    assert call(api, "GET", f"/local/customers/{customer_id}/churn")[0] == 200


def test_unknown_customer_over_http_is_404_json(api: LocalApi) -> None:
    status, _, body = call(api, "GET", "/customers/C424242/churn")
    assert status == 404
    assert json.loads(body)["error"]["code"] == "customer_not_found"


def test_what_if_over_http(api: LocalApi, world: ServingWorld) -> None:
    row = world.rows[sorted(world.rows)[1]]
    features = {f.name: int(row[f.name]) if f.dtype == "int" else row[f.name] for f in FEATURES}
    status, _, body = call(api, "POST", "/churn/score", json.dumps({"features": features}).encode())
    assert status == 200
    assert 0 <= json.loads(body)["probability"] <= 1


def test_bad_what_if_over_http_is_422_naming_the_field(api: LocalApi) -> None:
    status, _, body = call(api, "POST", "/churn/score", b'{"features": {"recency_days": "soon"}}')
    assert status == 422
    assert json.loads(body)["error"]["field"] == "features.recency_days"


def test_wrong_method_and_unknown_path(api: LocalApi) -> None:
    status, headers, body = call(api, "DELETE", "/churn/score")
    assert (status, headers["Allow"], json.loads(body)["error"]["code"]) == (405, "POST", "method_not_allowed")
    status, _, body = call(api, "GET", "/nowhere")
    assert (status, json.loads(body)["error"]["code"]) == (404, "route_not_found")


def test_openapi_lists_both_paths(api: LocalApi) -> None:
    status, headers, body = call(api, "GET", "/openapi.json")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    document = json.loads(body)
    assert {"/customers/{customer_id}/churn", "/churn/score"} <= set(document["paths"])
    assert "post" in document["paths"]["/churn/score"]
    assert "WhatIfRequest" in document["components"]["schemas"]


def test_docs_page_and_its_assets_are_served_locally(api: LocalApi) -> None:
    status, headers, page = call(api, "GET", "/docs")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b'url: "/openapi.json"' in page
    for asset in (b"/docs/swagger-ui-bundle.min.js", b"/docs/swagger-ui.min.css"):
        assert asset in page
        status, _, content = call(api, "GET", asset.decode())
        assert status == 200
        assert len(content) > 10_000


def test_handler_swagger_route_works_through_the_server(api: LocalApi) -> None:
    status, _, body = call(api, "GET", "/churn/swagger?format=json")
    assert status == 200
    assert "/churn/score" in json.loads(body)["paths"]


class Recorder:
    """A handler that records the proxy event it got and answers with a fixed response."""

    def __init__(self, response: dict[str, Any] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.response = response or {"statusCode": 200, "headers": {"X-Test": "1"}, "body": "{}"}

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return self.response


def test_dispatch_builds_a_full_rest_proxy_event() -> None:
    recorder = Recorder()
    routes = [Route("GET", "/things/{thing_id}/parts/{part}", recorder)]
    headers = [("Accept", "a"), ("X-Multi", "1"), ("X-Multi", "2")]
    dispatch(routes, "GET", "/things/t%201/parts/p?x=1&x=2&y=", headers, b"")

    event = recorder.events[0]
    assert event["resource"] == "/things/{thing_id}/parts/{part}"
    assert event["path"] == "/things/t%201/parts/p"  # percent-encoded as in AWS; the parameters decoded
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"thing_id": "t 1", "part": "p"}
    assert event["queryStringParameters"] == {"x": "2", "y": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": [""]}
    assert event["headers"]["X-Multi"] == "2"
    assert event["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["resourcePath"] == event["resource"]
    assert context["stage"] == "local"
    assert context["requestId"]
    assert context["identity"]["sourceIp"] == "127.0.0.1"


def test_binary_body_is_base64_encoded_and_binary_response_decoded() -> None:
    recorder = Recorder({"statusCode": 201, "body": "AAEC", "isBase64Encoded": True})
    response = dispatch([Route("POST", "/upload", recorder)], "POST", "/upload", [], b"\x00\xff")
    assert recorder.events[0]["isBase64Encoded"] is True
    assert recorder.events[0]["body"] == "AP8="
    assert (response.status, response.body) == (201, b"\x00\x01\x02")


def test_proxy_event_without_optional_parts_uses_nulls_as_api_gateway_does() -> None:
    event = proxy_event("GET", "/x")
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["headers"] is None


def test_concurrent_http_requests_each_get_their_own_answer(api: LocalApi, world: ServingWorld) -> None:
    ids = sorted(world.rows)[:16]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda c: call(api, "GET", f"/customers/{c}/churn"), ids))
    assert [status for status, _, _ in answers] == [200] * len(ids)
    assert [json.loads(body)["customer_id"] for _, _, body in answers] == ids


def test_a_serialized_handler_runs_one_request_at_a_time() -> None:
    """Like one Lambda container: Powertools resolvers keep the current request on the app object."""
    running, overlaps = [0], []

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        running[0] += 1
        overlaps.append(running[0])
        time.sleep(0.01)
        running[0] -= 1
        return {"statusCode": 200, "body": "{}"}

    handler = serialized(slow)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: handler({}, None), range(12)))
    assert max(overlaps) == 1


def test_body_over_the_api_gateway_limit_is_413_without_reading_it(api: LocalApi) -> None:
    host, port = api.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/churn/score")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(MAX_REQUEST_BYTES + 1))
    connection.endheaders()  # and no body: the server must answer without waiting for 10 MB
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"]["code"] == "payload_too_large"
    connection.close()


def raw_exchange(api: LocalApi, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (odd methods, malformed request lines) and parse the HTTP answer."""
    import socket

    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"PROPFIND /customers/C1/churn HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
        (b"BREW /coffee HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        (b"TRACE /churn/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
        (b"M-SEARCH * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        (b"G{T / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 501),
        (b"GET\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    ],
)
def test_every_method_and_path_however_odd_gets_the_json_error_shape(
    api: LocalApi, request_bytes: bytes, status: int
) -> None:
    got, headers, body = raw_exchange(api, request_bytes)
    assert got == status
    assert headers["Content-Type"] == "application/json"
    answer = json.loads(body)
    assert set(answer) == {"error"}
    assert set(answer["error"]) == {"code", "message", "field"}


def test_signed_and_unsigned_requests_are_both_accepted_locally_and_the_answer_says_so(
    api: LocalApi, world: ServingWorld
) -> None:
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    path = f"/customers/{sorted(world.rows)[0]}/churn"
    signed = botocore.awsrequest.AWSRequest(method="GET", url=api.url + path)
    credentials = botocore.credentials.Credentials("AKIDEXAMPLE", "secret")
    botocore.auth.SigV4Auth(credentials, "execute-api", "eu-west-1").add_auth(signed)
    headers = dict(signed.headers.items())
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    request = urllib.request.Request(api.url + path, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert "not checked locally" in response.headers["X-Shelfwise-Auth"]
    status, unsigned_headers, _ = call(api, "GET", path)
    assert status == 200
    assert "signed and unsigned requests accepted" in unsigned_headers["X-Shelfwise-Auth"]
