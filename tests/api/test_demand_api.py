"""The demand handler with API Gateway proxy events against a moto server holding forecast records: forecasts by
store x SKU and by aggregate, inventory decisions equal to the inventory core's on the same record, and every bad
input a 4xx naming its field, never a 5xx."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from types import ModuleType
from typing import Any
from urllib.parse import quote
from urllib.request import Request, urlopen

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelfwise.demand.api import DecisionRequest
from shelfwise.demand.domain import DECISION_FIELDS, DECISION_REQUIRED
from shelfwise.demand.forecast_records import (
    CUMULATIVE_LEVELS,
    DAILY_QUANTILES,
    ForecastRecord,
    cumulative_demand,
    forecast_records,
    quantile_name,
)
from shelfwise.demand.inventory import newsvendor_decision, order_up_to_decision
from shelfwise.demand.publish import AggregateRecord, aggregate_item, forecast_item
from shelfwise.local_api import LocalLambdaContext, load_lambda, proxy_event, start_local_api
from shelfwise.local_aws import LocalAws
from shelfwise.online_store import write_items

CONTEXT = LocalLambdaContext(function_name="demand-test")
HORIZON = 28
TODAY = dt.date.today()
STORE, SKU = "CA_1", "FOODS_3_090"
#: Ids as retailers write them: separators, spaces, a percent sign, other scripts.
ODD_STORE, ODD_SKU = "Store #1/Zürich", "SKU 42%#x 商品"
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_record(store_id: str, sku: str, seed: int, cold_start: bool = False) -> ForecastRecord:
    paths = np.random.default_rng(seed).poisson(4, size=(1, 400, HORIZON)).astype(float)
    (made,) = forecast_records([(store_id, sku)], paths, TODAY, "v-demand", [cold_start])
    return made


def as_aggregate(level: Any, key: str | None, source: ForecastRecord) -> AggregateRecord:
    values = {f.name: getattr(source, f.name) for f in dataclasses.fields(ForecastRecord)}
    del values["store_id"], values["sku"]
    return AggregateRecord(level=level, key=key, **values)


RECORDS = {
    (STORE, SKU): make_record(STORE, SKU, 0),
    (ODD_STORE, ODD_SKU): make_record(ODD_STORE, ODD_SKU, 1),
    ("CA_2", "NEW_1"): make_record("CA_2", "NEW_1", 2, cold_start=True),
}
AGGREGATES = {
    ("total", None): as_aggregate("total", None, make_record("-", "-", 3)),
    ("region", "west"): as_aggregate("region", "west", make_record("-", "-", 4)),
    ("store", ODD_STORE): as_aggregate("store", ODD_STORE, make_record("-", "-", 5)),
}


@pytest.fixture(scope="module")
def demand_app(aws: LocalAws) -> ModuleType:
    report = write_items(
        [*(forecast_item(r) for r in RECORDS.values()), *(aggregate_item(a) for a in AGGREGATES.values())]
    )
    assert report.written == len(RECORDS) + len(AGGREGATES)
    return load_lambda("demand", fresh=True)


class Answer:
    def __init__(self, response: dict[str, Any]) -> None:
        self.status: int = response["statusCode"]
        self.headers = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
        self.headers |= {k.lower(): [v] for k, v in (response.get("headers") or {}).items()}
        self.text: str = response["body"]

    @property
    def body(self) -> Any:
        return json.loads(self.text)

    def is_client_error(self) -> bool:
        """A 4xx in the API's error shape."""
        body = self.body
        return (
            400 <= self.status < 500
            and set(body) == {"error"}
            and set(body["error"]) == {"code", "message", "field"}
            and bool(body["error"]["message"])
        )

    def refused(self, status: int, field: str | None) -> None:
        assert self.is_client_error(), (self.status, self.text)
        assert (self.status, self.body["error"]["field"]) == (status, field), self.text


def invoke(app: ModuleType, event: dict[str, Any]) -> Answer:
    return Answer(app.handler(event, CONTEXT))


def get_forecast(app: ModuleType, store_id: str, sku: str) -> Answer:
    """As API Gateway sends it: the path percent-encoded, the path parameters decoded."""
    path = f"/forecast/stores/{quote(store_id, safe='')}/skus/{quote(sku, safe='')}"
    parameters = {"store_id": store_id, "sku": sku}
    return invoke(
        app, proxy_event("GET", path, resource="/forecast/stores/{store_id}/skus/{sku}", path_parameters=parameters)
    )


def get_aggregate(app: ModuleType, query: list[tuple[str, str]]) -> Answer:
    return invoke(app, proxy_event("GET", "/forecast/aggregates", query=query))


def post_decision(app: ModuleType, body: Any) -> Answer:
    text = body if isinstance(body, str | bytes) else json.dumps(body)
    return invoke(
        app, proxy_event("POST", "/inventory/decision", headers={"Content-Type": "application/json"}, body=text)
    )


ORDER_UP_TO = {
    "store_id": STORE,
    "sku": SKU,
    "on_hand": 12,
    "lead_time_days": 7,
    "review_period_days": 7,
    "policy": "order_up_to",
    "service_level": 0.95,
}
NEWSVENDOR = {
    "store_id": STORE,
    "sku": SKU,
    "on_hand": 3.5,
    "on_order": 10,
    "lead_time_days": 2,
    "review_period_days": 5,
    "policy": "newsvendor",
    "unit_cost": 4.0,
    "price": 10.0,
    "salvage_value": 1.0,
    "holding_cost": 0.5,
}


def expected_days(record: ForecastRecord | AggregateRecord) -> list[dict[str, Any]]:
    return [
        {
            "date": (record.as_of + dt.timedelta(days=h)).isoformat(),
            "mean": record.mean[h],
            **{quantile_name(q): record.quantiles[quantile_name(q)][h] for q in DAILY_QUANTILES},
        }
        for h in range(HORIZON)
    ]


# -- forecasts -----------------------------------------------------------------------------------------------------


def test_a_stored_forecast_is_served_day_by_day(demand_app: ModuleType) -> None:
    answer = get_forecast(demand_app, STORE, SKU)
    assert answer.status == 200
    body = answer.body
    assert {k: body[k] for k in ("store_id", "sku", "as_of", "model_version", "cold_start")} == {
        "store_id": STORE,
        "sku": SKU,
        "as_of": TODAY.isoformat(),
        "model_version": "v-demand",
        "cold_start": False,
    }
    assert body["days"] == expected_days(RECORDS[STORE, SKU])
    assert body["days"][0]["date"] == TODAY.isoformat()
    assert list(body["days"][0]) == ["date", "mean", "p05", "p10", "p25", "p50", "p75", "p90", "p95"]


def test_ids_with_separators_spaces_and_other_scripts_are_decoded_and_found(demand_app: ModuleType) -> None:
    answer = get_forecast(demand_app, ODD_STORE, ODD_SKU)
    assert answer.status == 200, answer.text
    assert (answer.body["store_id"], answer.body["sku"]) == (ODD_STORE, ODD_SKU)
    assert answer.body["days"] == expected_days(RECORDS[ODD_STORE, ODD_SKU])


def test_a_cold_start_says_so(demand_app: ModuleType) -> None:
    assert get_forecast(demand_app, "CA_2", "NEW_1").body["cold_start"] is True


@pytest.mark.parametrize(
    ("store_id", "sku"), [(STORE, "NOPE"), ("CA_9", SKU), (SKU, STORE), ("Store #1", "Zürich/SKU 42%#x 商品")]
)
def test_an_unknown_store_or_sku_is_404(demand_app: ModuleType, store_id: str, sku: str) -> None:
    answer = get_forecast(demand_app, store_id, sku)
    answer.refused(404, None)
    assert answer.body["error"]["code"] == "forecast_not_found"


@pytest.mark.parametrize(
    ("store_id", "sku", "field"),
    [
        ("CA\x001", SKU, "store_id"),
        (STORE, "A\nB", "sku"),
        ("\u202eCA_1", SKU, "store_id"),  # a bidi override: shows one id, is another
        (STORE, "x\u200b", "sku"),  # zero width space
        ("x" * 61, SKU, "store_id"),
    ],
)
def test_malformed_ids_are_400_naming_the_field(demand_app: ModuleType, store_id: str, sku: str, field: str) -> None:
    get_forecast(demand_app, store_id, sku).refused(400, field)


def test_a_path_that_is_not_percent_encoded_utf8_is_400(demand_app: ModuleType) -> None:
    event = proxy_event("GET", "/forecast/stores/%FF%FE/skus/X", path_parameters={"store_id": "\ufffd", "sku": "X"})
    invoke(demand_app, event).refused(400, "store_id")


# -- aggregates ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "key"), list(AGGREGATES))
def test_an_aggregate_is_served_by_level_and_key(demand_app: ModuleType, level: str, key: str | None) -> None:
    answer = get_aggregate(demand_app, [("level", level)] + ([("key", key)] if key else []))
    assert answer.status == 200, answer.text
    body = answer.body
    assert (body["level"], body["key"], body["as_of"]) == (level, key, TODAY.isoformat())
    assert body["days"] == expected_days(AGGREGATES[level, key])


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ([], 400, "level"),
        ([("level", "planet")], 400, "level"),
        ([("level", "Region")], 400, "level"),
        ([("level", "region")], 400, "key"),
        ([("level", "region"), ("key", "")], 400, "key"),
        ([("level", "total"), ("key", "west")], 400, "key"),
        ([("level", "store"), ("key", "a\x7fb")], 400, "key"),
        ([("level", "region"), ("key", "east")], 404, None),
        ([("level", "department"), ("key", "west")], 404, None),
    ],
)
def test_bad_or_unknown_aggregates_are_refused_naming_the_parameter(
    demand_app: ModuleType, query: list[tuple[str, str]], status: int, field: str | None
) -> None:
    get_aggregate(demand_app, query).refused(status, field)


# -- decisions -----------------------------------------------------------------------------------------------------


def test_an_order_up_to_decision_is_the_inventory_cores_on_the_same_record(demand_app: ModuleType) -> None:
    answer = post_decision(demand_app, ORDER_UP_TO)
    assert answer.status == 200, answer.text
    expected = order_up_to_decision(
        cumulative_demand(RECORDS[STORE, SKU]),
        service_level=0.95,
        lead_time_days=7,
        review_period_days=7,
        on_hand=12,
        on_order=0,
    )
    body = answer.body
    assert body["decision"] == pytest.approx(expected.as_dict())
    assert body["inputs"] == ORDER_UP_TO | {"on_order": 0.0}
    assert body["forecast"] == {"as_of": TODAY.isoformat(), "model_version": "v-demand", "cold_start": False}


def test_a_newsvendor_decision_is_the_inventory_cores_on_the_same_record(demand_app: ModuleType) -> None:
    answer = post_decision(demand_app, NEWSVENDOR)
    assert answer.status == 200, answer.text
    expected = newsvendor_decision(
        cumulative_demand(RECORDS[STORE, SKU]),
        unit_cost=4.0,
        price=10.0,
        salvage_value=1.0,
        holding_cost=0.5,
        lead_time_days=2,
        review_period_days=5,
        on_hand=3.5,
        on_order=10,
    )
    assert answer.body["decision"] == pytest.approx(expected.as_dict())
    assert answer.body["inputs"] == NEWSVENDOR


@pytest.mark.parametrize("level", [0.01, 0.07, 0.5, 0.9, 0.99])
def test_the_order_up_to_level_is_the_stored_cumulative_quantile_at_the_service_level(
    demand_app: ModuleType, level: float
) -> None:
    """Every level of the grid reaches its own stored quantile, not a neighbour's."""
    body = post_decision(demand_app, ORDER_UP_TO | {"service_level": level}).body
    stored = RECORDS[STORE, SKU].cumulative[CUMULATIVE_LEVELS.index(level)][7 + 7 - 1]
    assert body["decision"]["order_up_to"] == stored


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"lead_time_days": 21, "review_period_days": 8}, 400, "lead_time_days"),  # L + R = 29 > 28
        ({"lead_time_days": -1}, 400, "lead_time_days"),
        ({"review_period_days": 0}, 400, "review_period_days"),
        ({"service_level": 0}, 400, "service_level"),
        ({"service_level": 1}, 400, "service_level"),
        ({"service_level": 1.5}, 400, "service_level"),
        ({"service_level": -0.2}, 400, "service_level"),
        ({"service_level": 0.995}, 400, "service_level"),
        ({"service_level": 0.005}, 400, "service_level"),
        ({"service_level": 0.955}, 400, "service_level"),
        ({"on_hand": -1}, 400, "on_hand"),
        ({"on_order": -0.5}, 400, "on_order"),
        ({"service_level": None}, 400, "service_level"),  # required by order_up_to
        ({"unit_cost": 3.0}, 400, "unit_cost"),  # an input of newsvendor, not of order_up_to
        ({"surprise": 1}, 422, "surprise"),
        ({"policy": "magic"}, 422, "policy"),
        ({"lead_time_days": 2.5}, 422, "lead_time_days"),
        ({"on_hand": "12"}, 422, "on_hand"),
        ({"on_hand": True}, 422, "on_hand"),
        ({"store_id": "CA\x00"}, 422, "store_id"),
        ({"sku": ""}, 422, "sku"),
        ({"store_id": 7}, 422, "store_id"),
    ],
)
def test_bad_order_up_to_inputs_are_refused_naming_the_field(
    demand_app: ModuleType, change: dict[str, Any], status: int, field: str
) -> None:
    post_decision(demand_app, ORDER_UP_TO | change).refused(status, field)


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"unit_cost": -1}, 400, "unit_cost"),
        ({"holding_cost": -0.1}, 400, "holding_cost"),
        ({"salvage_value": -1}, 400, "salvage_value"),
        ({"price": 3.0}, 400, "price"),  # below cost
        ({"price": 4.0}, 400, "price"),  # at cost: nothing is worth stocking
        ({"salvage_value": 5.0}, 400, "salvage_value"),  # above cost
        ({"price": None}, 400, "price"),
        ({"service_level": 0.9}, 400, "service_level"),
        ({"lead_time_days": 28}, 400, "lead_time_days"),
    ],
)
def test_bad_newsvendor_inputs_are_refused_naming_the_field(
    demand_app: ModuleType, change: dict[str, Any], status: int, field: str
) -> None:
    post_decision(demand_app, NEWSVENDOR | change).refused(status, field)


def test_a_missing_field_is_422_naming_it(demand_app: ModuleType) -> None:
    body = dict(ORDER_UP_TO)
    del body["on_hand"]
    post_decision(demand_app, body).refused(422, "on_hand")


def test_service_levels_beyond_the_grid_say_so(demand_app: ModuleType) -> None:
    message = post_decision(demand_app, ORDER_UP_TO | {"service_level": 0.995}).body["error"]["message"]
    assert "0.01, 0.02, ..., 0.99" in message
    message = post_decision(demand_app, ORDER_UP_TO | {"service_level": 0.955}).body["error"]["message"]
    assert "use 0.96" in message


def test_a_decision_for_an_unknown_store_or_sku_is_404(demand_app: ModuleType) -> None:
    post_decision(demand_app, ORDER_UP_TO | {"sku": "NOPE"}).refused(404, None)


def test_the_gateway_schema_mirrors_the_handler_request() -> None:
    schema = DecisionRequest.model_json_schema()
    assert set(DECISION_REQUIRED) == set(schema["required"])
    handler_types = {
        name: {kind["type"] for kind in field.get("anyOf", [field]) if kind["type"] != "null"}
        for name, field in schema["properties"].items()
    }
    assert handler_types == {name: {kind} for name, kind in DECISION_FIELDS.items()}


# -- broken records, documents, the local server -------------------------------------------------------------------


def test_a_stored_record_that_is_not_a_forecast_is_503_naming_nothing_internal(demand_app: ModuleType) -> None:
    broken = forecast_item(make_record("BROKEN", "K", 9))
    write_items([dataclasses.replace(broken, attributes={**broken.attributes, "mean": [1.0] * 3})])
    answer = get_forecast(demand_app, "BROKEN", "K")
    assert answer.status == 503
    assert answer.body["error"]["code"] == "forecast_unreadable"
    assert "quantiles" not in answer.body["error"]["message"]


def test_openapi_document_lists_the_routes_and_the_error_shape(demand_app: ModuleType) -> None:
    document = json.loads(demand_app.app.get_openapi_json_schema())
    assert {"/forecast/stores/{store_id}/skus/{sku}", "/forecast/aggregates", "/inventory/decision"} <= set(
        document["paths"]
    )
    schemas = document["components"]["schemas"]
    assert {"ErrorOut", "DecisionRequest", "ForecastDay"} <= set(schemas)
    assert schemas["DecisionRequest"]["additionalProperties"] is False


def test_swagger_page_is_served(demand_app: ModuleType) -> None:
    answer = invoke(demand_app, proxy_event("GET", "/demand/swagger"))
    assert answer.status == 200
    assert "SwaggerUIBundle" in answer.text


def test_the_local_api_serves_the_demand_routes_with_encoded_ids(demand_app: ModuleType) -> None:
    path = f"/forecast/stores/{quote(ODD_STORE, safe='')}/skus/{quote(ODD_SKU, safe='')}"
    with start_local_api(port=0) as api, urlopen(Request(api.url + path), timeout=30) as response:
        body = json.loads(response.read())
    assert (body["store_id"], body["sku"]) == (ODD_STORE, ODD_SKU)


# -- property tests: whatever a client sends, a 2xx or a 4xx in the error shape ------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=15), children, max_size=5),
    max_leaves=20,
)
#: Values near and across every boundary the decision checks.
edgy = st.sampled_from(
    [0, 1, -1, 0.5, 0.01, 0.99, 0.995, 1e-9, 27, 28, 29, 10**30, -(10**30), math.inf, math.nan, None, True, "1", []]
)


def answered(answer: Answer) -> None:
    assert answer.status == 200 or answer.is_client_error(), (answer.status, answer.text)


@FUZZ
@given(store_id=st.text(max_size=70), sku=st.text(max_size=70))
def test_any_store_and_sku_get_a_forecast_or_a_4xx(demand_app: ModuleType, store_id: str, sku: str) -> None:
    answer = get_forecast(demand_app, store_id, sku)
    answered(answer)
    if answer.status == 200:
        assert (store_id, sku) in RECORDS


@FUZZ
@given(path=st.text(max_size=60).map(lambda p: "/forecast/stores/" + p))
def test_any_path_below_forecast_gets_an_answer_or_a_4xx(demand_app: ModuleType, path: str) -> None:
    answered(invoke(demand_app, proxy_event("GET", path)))


@FUZZ
@given(query=st.lists(st.tuples(st.sampled_from(["level", "key", "x"]), st.text(max_size=12)), max_size=4))
def test_any_aggregate_query_gets_an_answer_or_a_4xx(demand_app: ModuleType, query: list[tuple[str, str]]) -> None:
    answered(get_aggregate(demand_app, query))


@FUZZ
@given(payload=json_values)
def test_any_json_value_as_a_decision_body_is_a_4xx(demand_app: ModuleType, payload: Any) -> None:
    assert post_decision(demand_app, payload).is_client_error()


@FUZZ
@given(
    base=st.sampled_from([ORDER_UP_TO, NEWSVENDOR]),
    changes=st.dictionaries(st.sampled_from([*DECISION_FIELDS, "extra"]), edgy | json_values, max_size=4),
    dropped=st.sets(st.sampled_from(list(DECISION_FIELDS)), max_size=2),
)
def test_spoiled_decision_bodies_get_a_decision_or_a_4xx_naming_a_field(
    demand_app: ModuleType, base: dict[str, Any], changes: dict[str, Any], dropped: set[str]
) -> None:
    body = {k: v for k, v in (base | changes).items() if k not in dropped}
    answer = post_decision(demand_app, body)
    answered(answer)
    if answer.status in (400, 422):
        assert answer.body["error"]["field"] in {*DECISION_FIELDS, "extra"}, answer.text


@FUZZ
@given(
    body=st.binary(max_size=300) | st.text(max_size=300),
    content_type=st.none() | st.sampled_from(["application/json", "text/plain", "multipart/form-data"]) | st.text(),
)
def test_arbitrary_bodies_and_content_types_are_4xx(
    demand_app: ModuleType, body: bytes | str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    answer = invoke(demand_app, proxy_event("POST", "/inventory/decision", headers=headers, body=body))
    assert answer.is_client_error(), (answer.status, answer.text)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    path=st.sampled_from(
        ["/forecast/aggregates", "/inventory/decision", "/forecast/stores/a/skus/b", "/demand/swagger"]
    ),
)
def test_any_method_on_a_demand_path_gets_an_answer_or_a_4xx(demand_app: ModuleType, method: str, path: str) -> None:
    answer = invoke(demand_app, proxy_event(method, path))
    if answer.status != 200:
        answered(answer)
