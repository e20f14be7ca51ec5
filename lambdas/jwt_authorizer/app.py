"""API Gateway TOKEN authorizer for callers without AWS credentials: a bearer JWT signed by the deployment's OIDC
issuer (a Cognito user pool or any OpenID Connect provider) is allowed; anything else is refused with a 401.

The issuer's signing keys come from its discovery document (`<issuer>/.well-known/openid-configuration` ->
`jwks_uri`) and are cached per container. Checked: the signature (RS256/ES256 only, never `none` or HMAC), the
issuer, the audience (`aud`, or Cognito access tokens' `client_id`), expiry and not-before with 30 s of leeway, and
the token use when the token says (`id` tokens are refused: APIs take access tokens).
The policy allows the API's methods of the stage for the token's subject; API Gateway caches it (TTL in CDK).
Nothing of the token is logged.
"""

import functools
import json
import os
import re
import urllib.request
from typing import Any

import jwt

ALGORITHMS = ["RS256", "ES256"]
LEEWAY_S = 30
_BEARER = re.compile(r"^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$")


class UnauthorizedError(Exception):
    """API Gateway answers 401 when an authorizer raises with exactly the message "Unauthorized"."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


@functools.cache
def jwks_client(issuer: str) -> jwt.PyJWKClient:
    with urllib.request.urlopen(f"{issuer.rstrip('/')}/.well-known/openid-configuration", timeout=5) as response:
        document = json.loads(response.read())
    return jwt.PyJWKClient(document["jwks_uri"], cache_keys=True, lifespan=3600, timeout=5)


def verify(token: str, issuer: str, audience: str) -> dict[str, Any]:
    """The token's claims if it is valid for this API; raises `UnauthorizedError` otherwise."""
    try:
        key = jwks_client(issuer).get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            issuer=issuer,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iss", "sub"], "verify_aud": False},
        )
    except (jwt.PyJWTError, OSError, KeyError, ValueError):
        raise UnauthorizedError() from None
    audiences = claims.get("aud") or []
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not isinstance(audiences, list) or audience not in [*audiences, claims.get("client_id")]:
        raise UnauthorizedError()
    if claims.get("token_use", "access") != "access":
        raise UnauthorizedError()
    return claims


def stage_methods(method_arn: str) -> str:
    """`arn:...:<api>/<stage>/<METHOD>/<path>` -> `arn:...:<api>/<stage>/*/*`: the cached policy covers every route."""
    api, stage = method_arn.split("/", 2)[:2]
    return f"{api}/{stage}/*/*"


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    match = _BEARER.match(str(event.get("authorizationToken", "")))
    if match is None:
        raise UnauthorizedError()
    claims = verify(match.group(1), os.environ["SHELFWISE_JWT_ISSUER"], os.environ["SHELFWISE_JWT_AUDIENCE"])
    return {
        "principalId": str(claims["sub"])[:128],
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": stage_methods(event["methodArn"])}
            ],
        },
    }
