"""Property tests: whatever a client sends, the churn API answers 2xx or a 4xx JSON error, never a 5xx."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelfwise.bench.serving import ServingWorld
from shelfwise.churn.features import FEATURES
from shelfwise.local_api import proxy_event

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=15), children, max_size=5),
    max_leaves=20,
)

#: Ways to spoil one feature value: each must be rejected.
spoilers = st.sampled_from(
    ["missing", "string", "null", "bool", "list", "nan", "inf", "huge", "below", "above", "frac"]
)


def spoil(feature_name: str, how: str, features: dict[str, Any]) -> None:
    feature = next(f for f in FEATURES if f.name == feature_name)
    replacement: dict[str, Any] = {
        "string": "12",
        "null": None,
        "bool": True,
        "list": [1],
        "nan": math.nan,
        "inf": -math.inf,
        "huge": 10**30,
        "below": feature.minimum - 1,
        "above": feature.maximum + 1,
        "frac": 0.5 if feature.dtype == "int" else None,
    }
    if how == "missing":
        del features[feature_name]
    else:
        features[feature_name] = replacement[how]


def typed_row(world: ServingWorld) -> dict[str, Any]:
    row = world.rows[sorted(world.rows)[0]]
    return {f.name: int(row[f.name]) if f.dtype == "int" else row[f.name] for f in FEATURES}


@SETTINGS
@given(customer_id=st.text(max_size=80))
def test_any_customer_id_gets_an_answer_or_a_4xx(invoke: Any, world: ServingWorld, customer_id: str) -> None:
    status, _, body = invoke.get_churn(customer_id)
    if status == 200:
        assert customer_id in world.rows or customer_id in world.cold_customers
    else:
        invoke.assert_client_error(status, body)


@SETTINGS
@given(payload=json_values)
def test_any_json_value_is_a_4xx(invoke: Any, payload: Any) -> None:
    status, _, body = invoke.score(json.dumps(payload))
    invoke.assert_client_error(status, body)


@SETTINGS
@given(
    spoiled=st.dictionaries(st.sampled_from([f.name for f in FEATURES]), spoilers, max_size=5),
    extra=st.dictionaries(
        st.text(max_size=10).filter(lambda k: k not in {f.name for f in FEATURES}), json_values, max_size=2
    ),
    wrapper_extra=st.booleans(),
)
def test_spoiled_feature_payloads_are_422_naming_a_feature(
    invoke: Any, world: ServingWorld, spoiled: dict[str, str], extra: dict[str, Any], wrapper_extra: bool
) -> None:
    features = typed_row(world)
    for name, how in spoiled.items():
        spoil(name, how, features)
    payload: dict[str, Any] = {"features": features | extra}
    if wrapper_extra:
        payload["explain"] = True
    status, _, body = invoke.score(json.dumps(payload))
    if not spoiled and not extra and not wrapper_extra:
        assert status == 200
        return
    invoke.assert_client_error(status, body)
    assert status == 422
    field = body["error"]["field"]
    assert field == "explain" or field.startswith("features.")


@SETTINGS
@given(
    body=st.binary(max_size=300) | st.text(max_size=300),
    content_type=st.none() | st.sampled_from(["application/json", "text/plain", "multipart/form-data"]) | st.text(),
)
def test_arbitrary_bodies_and_content_types_are_4xx(invoke: Any, body: bytes | str, content_type: str | None) -> None:
    status, _, answer = invoke.score(body, content_type)
    invoke.assert_client_error(status, answer)


@SETTINGS
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    path=st.text(max_size=60).map(lambda p: "/" + p),
    query=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=3),
)
def test_arbitrary_methods_and_paths_are_4xx(invoke: Any, method: str, path: str, query: list[tuple[str, str]]) -> None:
    status, _, body = invoke(proxy_event(method, path, query=query))
    invoke.assert_client_error(status, body)
