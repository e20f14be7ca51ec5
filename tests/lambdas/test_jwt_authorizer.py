"""The JWT authorizer against an OIDC issuer served on loopback (discovery document + JWKS): a token it signed for
this audience is allowed for the stage's methods; a foreign, expired, id, `none`-signed or misdirected token is a
401, never an allow."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import ModuleType
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shelfwise.local_api import load_lambda

AUDIENCE = "shop-app"
METHOD = "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1/GET/customers/C1/churn"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"issuer": rsa_key(), "stranger": rsa_key()}


@pytest.fixture(scope="module")
def issuer(keys: dict[str, rsa.RSAPrivateKey]) -> Iterator[str]:
    """An OIDC issuer on 127.0.0.1: its discovery document and the JWKS with the issuer's public key."""
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys["issuer"].public_key()))
    jwks = {"keys": [public | {"kid": "k1", "use": "sig", "alg": "RS256"}]}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            documents = {
                "/.well-known/openid-configuration": {"issuer": base, "jwks_uri": f"{base}/jwks.json"},
                "/jwks.json": jwks,
            }
            body = json.dumps(documents.get(self.path, {})).encode()
            self.send_response(200 if self.path in documents else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def authorizer(issuer: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("SHELFWISE_JWT_ISSUER", issuer)
    monkeypatch.setenv("SHELFWISE_JWT_AUDIENCE", AUDIENCE)
    return load_lambda("jwt_authorizer", fresh=True)


def token(key: Any, issuer: str, algorithm: str = "RS256", kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": issuer, "sub": "user-42", "aud": AUDIENCE, "iat": now, "exp": now + 600} | claims
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm, headers={"kid": kid})


def authorize(module: ModuleType, value: str) -> dict[str, Any]:
    result: dict[str, Any] = module.handler({"type": "TOKEN", "authorizationToken": value, "methodArn": METHOD}, None)
    return result


def test_a_token_of_the_issuer_for_this_audience_is_allowed_for_the_stage(
    authorizer: ModuleType, keys: dict[str, Any], issuer: str
) -> None:
    policy = authorize(authorizer, f"Bearer {token(keys['issuer'], issuer)}")
    assert policy["principalId"] == "user-42"
    (statement,) = policy["policyDocument"]["Statement"]
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1/*/*",
    }


def test_a_cognito_access_token_names_the_client_instead_of_an_audience(
    authorizer: ModuleType, keys: dict[str, Any], issuer: str
) -> None:
    access = token(keys["issuer"], issuer, aud=None, client_id=AUDIENCE, token_use="access")
    assert authorize(authorizer, f"Bearer {access}")["principalId"] == "user-42"


@pytest.mark.parametrize(
    "case",
    ["stranger's key", "expired", "other audience", "other issuer", "id token", "no bearer", "unsigned"],
)
def test_anything_else_is_unauthorized(authorizer: ModuleType, keys: dict[str, Any], issuer: str, case: str) -> None:
    values = {
        "stranger's key": f"Bearer {token(keys['stranger'], issuer)}",
        "expired": f"Bearer {token(keys['issuer'], issuer, exp=int(time.time()) - 120)}",
        "other audience": f"Bearer {token(keys['issuer'], issuer, aud='another-app')}",
        "other issuer": f"Bearer {token(keys['issuer'], 'https://evil.example')}",
        "id token": f"Bearer {token(keys['issuer'], issuer, token_use='id')}",
        "no bearer": token(keys["issuer"], issuer),
        "unsigned": "Bearer " + jwt.encode({"iss": issuer, "sub": "x", "aud": AUDIENCE, "exp": 2**33}, None, "none"),
    }
    with pytest.raises(authorizer.UnauthorizedError, match=r"^Unauthorized$"):
        authorize(authorizer, values[case])
