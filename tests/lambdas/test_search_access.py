"""The role-mapping custom resource against a loopback server playing both the domain's security API and
CloudFormation's response URL: signed calls that write the reader and writer roles and their mappings, the outcome
always reported (FAILED with the domain's answer, never an exception), deletes that tolerate what is already gone."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import ModuleType
from typing import Any

import pytest

from shelfwise.local_api import load_lambda

READER = "arn:aws:iam::123456789012:role/visual-api"
WRITER = "arn:aws:iam::123456789012:role/index-build"


@dataclass
class Loopback:
    url: str
    calls: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    #: path -> status to answer instead of 200
    answers: dict[str, int] = field(default_factory=dict)

    def domain_calls(self) -> list[tuple[str, str, Any]]:
        return [(m, p, b) for m, p, _, b in self.calls if p.startswith("/_plugins/")]

    def responses(self) -> list[dict[str, Any]]:
        return [b for _, p, _, b in self.calls if p.startswith("/cfn-response")]


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    state = Loopback(url="")

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            state.calls.append((self.command, self.path, dict(self.headers.items()), json.loads(raw) if raw else None))
            status = state.answers.get(self.path, 200)
            body = json.dumps({"status": "OK" if status == 200 else "error"}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            self._record()

        def do_DELETE(self) -> None:
            self._record()

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()


@pytest.fixture
def mapping(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTMAPPING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return load_lambda("search_access", fresh=True)


def event(loopback: Loopback, request_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": f"{loopback.url}/cfn-response?signature=x",
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/Api/1",
        "RequestId": "req-1",
        "LogicalResourceId": "VisualSearchRoleMappings",
        "ResourceProperties": {"Endpoint": loopback.url, "Index": "products", "Readers": [READER], "Writers": [WRITER]},
        **extra,
    }


def test_create_writes_both_roles_and_maps_them_with_signed_calls(mapping: ModuleType, loopback: Loopback) -> None:
    mapping.handler(event(loopback, "Create"), None)
    calls = loopback.domain_calls()
    assert [(m, p) for m, p, _ in calls] == [
        ("PUT", "/_plugins/_security/api/roles/products-reader"),
        ("PUT", "/_plugins/_security/api/rolesmapping/products-reader"),
        ("PUT", "/_plugins/_security/api/roles/products-writer"),
        ("PUT", "/_plugins/_security/api/rolesmapping/products-writer"),
    ]
    reader_role, reader_map, writer_role, writer_map = (b for _, _, b in calls)
    assert reader_role["index_permissions"] == [{"index_patterns": ["products*"], "allowed_actions": ["read"]}]
    assert reader_role["cluster_permissions"] == ["cluster_composite_ops_ro"]
    assert writer_role["index_permissions"] == [{"index_patterns": ["products*"], "allowed_actions": ["indices_all"]}]
    assert (reader_map, writer_map) == ({"backend_roles": [READER]}, {"backend_roles": [WRITER]})
    for _, path, headers, _ in loopback.calls:
        if path.startswith("/_plugins/"):
            assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTESTMAPPING/")
            assert "/eu-west-1/es/aws4_request" in headers["Authorization"]
            assert "X-Amz-Date" in headers
    (response,) = loopback.responses()
    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == f"{loopback.url}/products"
    assert (response["RequestId"], response["LogicalResourceId"]) == ("req-1", "VisualSearchRoleMappings")


def test_a_refusal_by_the_domain_is_reported_as_failed_with_its_answer(mapping: ModuleType, loopback: Loopback) -> None:
    loopback.answers["/_plugins/_security/api/rolesmapping/products-reader"] = 403
    mapping.handler(event(loopback, "Update", PhysicalResourceId="old-id"), None)
    (response,) = loopback.responses()
    assert response["Status"] == "FAILED"
    assert "PUT /_plugins/_security/api/rolesmapping/products-reader answered 403" in response["Reason"]
    assert response["PhysicalResourceId"] == "old-id"  # a failed update keeps the resource it had
    assert len(loopback.domain_calls()) == 2  # stopped at the refusal


def test_delete_removes_mappings_and_roles_and_tolerates_missing_ones(mapping: ModuleType, loopback: Loopback) -> None:
    loopback.answers["/_plugins/_security/api/roles/products-writer"] = 404
    mapping.handler(event(loopback, "Delete", PhysicalResourceId="https://domain/products"), None)
    assert [(m, p) for m, p, _ in loopback.domain_calls()] == [
        ("DELETE", "/_plugins/_security/api/rolesmapping/products-reader"),
        ("DELETE", "/_plugins/_security/api/roles/products-reader"),
        ("DELETE", "/_plugins/_security/api/rolesmapping/products-writer"),
        ("DELETE", "/_plugins/_security/api/roles/products-writer"),
    ]
    (response,) = loopback.responses()
    assert (response["Status"], response["PhysicalResourceId"]) == ("SUCCESS", "https://domain/products")
