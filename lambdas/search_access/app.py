"""CloudFormation custom resource: maps the IAM roles granted a vector index to OpenSearch roles on a domain with
fine-grained access control. It runs as the domain's master user (this function's role is the master).

Fine-grained access control refuses every IAM role but the master until it is mapped. On Create and Update this
function writes two roles through the security plugin's REST API and maps each to its IAM roles (backend roles):
`<index>-reader` (read and search on `<index>*`) and `<index>-writer` (every index action on `<index>*`, which covers
creating versions, bulk loading, counting, moving the alias and deleting old versions). On Delete it removes both.
Requests are SigV4-signed (service `es`) with the function's credentials. The outcome always reaches CloudFormation's
pre-signed URL (FAILED with the reason on any error), so a stack never waits for a timeout.
"""

import json
import os
import urllib.error
import urllib.request
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

SECURITY_API = "_plugins/_security/api"
TIMEOUT_S = 20


class DomainRequestError(RuntimeError):
    """The domain answered a security API call with an error; the message names the call and the answer."""


def security_requests(index: str, readers: list[str], writers: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, body) of every call that makes the domain's roles and mappings match the grants."""
    roles = {
        f"{index}-reader": (
            {
                "cluster_permissions": ["cluster_composite_ops_ro"],
                "index_permissions": [{"index_patterns": [f"{index}*"], "allowed_actions": ["read"]}],
            },
            readers,
        ),
        f"{index}-writer": (
            {
                "cluster_permissions": ["cluster_composite_ops"],
                "index_permissions": [{"index_patterns": [f"{index}*"], "allowed_actions": ["indices_all"]}],
            },
            writers,
        ),
    }
    calls: list[tuple[str, str, dict[str, Any]]] = []
    for name, (definition, backend_roles) in roles.items():
        calls.append(("PUT", f"{SECURITY_API}/roles/{name}", definition))
        calls.append(("PUT", f"{SECURITY_API}/rolesmapping/{name}", {"backend_roles": sorted(backend_roles)}))
    return calls


def removal_requests(index: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("DELETE", f"{SECURITY_API}/{kind}/{index}-{role}", {})
        for role in ("reader", "writer")
        for kind in ("rolesmapping", "roles")
    ]


def send(endpoint: str, region: str, method: str, path: str, body: dict[str, Any], missing_ok: bool = False) -> None:
    """One signed call; DomainRequestError on an error answer (404 tolerated when `missing_ok`)."""
    data = json.dumps(body).encode() if body else None
    url = f"{endpoint.rstrip('/')}/{path}"
    signed = AWSRequest(method=method, url=url, data=data, headers={"Content-Type": "application/json"})
    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise DomainRequestError(f"no AWS credentials to sign {method} /{path}")
    SigV4Auth(credentials, "es", region).add_auth(signed)
    request = urllib.request.Request(url, data=data, headers=dict(signed.headers.items()), method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S):
            return
    except urllib.error.HTTPError as error:
        if missing_ok and error.code == 404:
            return
        raise DomainRequestError(f"{method} /{path} answered {error.code}: {error.read()[:500]!r}") from None


def apply(event: dict[str, Any], region: str) -> str:
    """Carry out the request; return the physical id (the endpoint and index: a change replaces the mapping)."""
    props = event["ResourceProperties"]
    endpoint, index = props["Endpoint"], props["Index"]
    if event["RequestType"] == "Delete":
        for method, path, body in removal_requests(index):
            send(endpoint, region, method, path, body, missing_ok=True)
        return str(event["PhysicalResourceId"])
    for method, path, body in security_requests(index, list(props["Readers"]), list(props["Writers"])):
        send(endpoint, region, method, path, body)
    return f"{endpoint}/{index}"


def respond(event: dict[str, Any], status: str, physical_id: str, reason: str) -> None:
    """Put the outcome to CloudFormation's pre-signed URL (signed for an empty content type)."""
    body = {
        "Status": status,
        "Reason": reason[:3000],
        "PhysicalResourceId": physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
    }
    request = urllib.request.Request(
        event["ResponseURL"], data=json.dumps(body).encode(), headers={"Content-Type": ""}, method="PUT"
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S):
        pass


def handler(event: dict[str, Any], context: Any) -> None:
    physical_id = str(event.get("PhysicalResourceId") or event["LogicalResourceId"])
    try:
        physical_id = apply(event, os.environ["AWS_REGION"])
    except Exception as error:  # every failure must reach CloudFormation, whatever it is
        print(json.dumps({"level": "ERROR", "message": "role mapping failed", "error": str(error)}))
        respond(event, "FAILED", physical_id, str(error))
        return
    respond(event, "SUCCESS", physical_id, "OpenSearch roles mapped")
