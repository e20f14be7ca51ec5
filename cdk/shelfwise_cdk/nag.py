"""cdk-nag acknowledgements, written next to the permission or setting they are about.

IAM5 findings name the wildcard resource as cdk-nag prints it (`arn:<AWS::Partition>:s3:::bucket/raw/*`), so the
acknowledgement renders the same ARN value the policy uses instead of repeating a hand-written copy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge `rule` (e.g. `AwsSolutions-L1`) on `scope` and its children."""
    if len(reason) < 20:
        raise ValueError(f"acknowledgement of {rule} needs a specific reason, got {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def acknowledge_wildcards(
    scope: IConstruct, *, actions: Mapping[str, str] | None = None, resources: Mapping[str, str] | None = None
) -> None:
    """Acknowledge AwsSolutions-IAM5 for wildcard `actions` and `resources` (ARN values, tokens allowed) of `scope`."""
    for action, reason in (actions or {}).items():
        acknowledge(scope, f"AwsSolutions-IAM5[Action::{action}]", reason)
    for resource, reason in (resources or {}).items():
        acknowledge(scope, f"AwsSolutions-IAM5[Resource::{render(scope, resource)}]", reason)


def render(scope: IConstruct, value: str) -> str:
    """A string value as cdk-nag prints it: pseudo parameters and references as `<Name>` / `<Resource.Attr>`."""
    return _flatten(Stack.of(scope).resolve(value))


def _flatten(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return f"<{arg}>"
        if fn == "Fn::GetAtt":
            return f"<{arg[0]}.{arg[1]}>"
        if fn == "Fn::Join":
            return str(arg[0]).join(_flatten(part) for part in arg[1])
        if fn == "Fn::Sub" and isinstance(arg, str):
            return re.sub(r"\$\{([^}]+)\}", r"<\1>", arg)
    raise ValueError(f"cannot render {value!r} as cdk-nag does; build the ARN from names and pseudo parameters")
