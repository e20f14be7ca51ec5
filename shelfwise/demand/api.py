"""The demand routes (a Powertools `Router`) and what they read: forecast records in the online store.

GET  /forecast/stores/{store_id}/skus/{sku}     a store x SKU's daily forecast (mean and quantiles per day)
GET  /forecast/aggregates?level=...&key=...     the same for a sum: a region, store, category, department or total
POST /inventory/decision                        an order-up-to or newsvendor decision from a store x SKU's forecast

No model is served: the batch forecast wrote every record (`shelfwise.demand.publish`), and a decision is computed
from the record's cumulative-demand quantiles (`shelfwise.demand.inventory`). Client mistakes are always 4xx naming
the field: 422 for a body the request model refuses (types, unknown or missing fields, malformed ids), 400 for a path
or query parameter that cannot name a forecast (malformed id, unknown level, missing key) and for inputs a policy
cannot use, 404 for an unknown store x SKU or group. A stored record that is not a whole forecast is a 503 that
names nothing internal.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, create_model

from shelfwise import online_store
from shelfwise.api import ApiError, error_doc
from shelfwise.demand.domain import DOMAIN
from shelfwise.demand.forecast_records import (
    CUMULATIVE_LEVELS,
    DAILY_QUANTILES,
    ForecastRecord,
    cumulative_demand,
    quantile_name,
)
from shelfwise.demand.inventory import (
    CumulativeDemand,
    NewsvendorDecision,
    OrderUpToDecision,
    newsvendor_decision,
    order_up_to_decision,
)
from shelfwise.demand.keys import checked_id
from shelfwise.demand.publish import (
    AGGREGATE_ENTITY,
    ENTITY,
    LEVELS,
    SORT_KEY,
    TOTAL,
    AggregateLevel,
    AggregateRecord,
    MalformedRecordError,
    aggregate_from_item,
    aggregate_id,
    forecast_from_item,
    series_id,
)

SERIES_FORECAST = "/forecast/stores/<store_id>/skus/<sku>"
AGGREGATE_FORECAST = "/forecast/aggregates"
DECISION = "/inventory/decision"
SWAGGER = "/demand/swagger"
ROUTES = DOMAIN.api.routes if DOMAIN.api is not None else ()

Policy = Literal["order_up_to", "newsvendor"]
#: The inputs each policy takes besides the common ones; the other policy's are refused, not ignored.
POLICY_FIELDS: dict[Policy, tuple[str, ...]] = {
    "order_up_to": ("service_level",),
    "newsvendor": ("unit_cost", "price", "salvage_value", "holding_cost"),
}
#: Control characters, invisible format characters (bidi overrides, zero widths), lone surrogates, and line and
#: paragraph separators: no real id holds them, and they hide what an id says. Everything else is allowed.

Decision = OrderUpToDecision | NewsvendorDecision


# ---- checks of ids ---------------------------------------------------------------------------------------------


def path_id(name: str, raw: str) -> str:
    """A path parameter as the client sent it: API Gateway passes REST paths percent-encoded (only its
    `pathParameters` are decoded, and Powertools routes on the path)."""
    try:
        return checked_id(name, unquote(raw, errors="strict"))
    except UnicodeDecodeError:
        raise ApiError(
            HTTPStatus.BAD_REQUEST, "invalid_parameter", f"{name} is not percent-encoded UTF-8", name
        ) from None
    except ValueError as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_parameter", str(error), name) from None


def aggregate_key(level: str | None, key: str | None) -> tuple[AggregateLevel, str | None]:
    """The aggregate's level and key from the query; ApiError 400 naming `level` or `key`."""
    levels = ", ".join(LEVELS)
    if level is None:
        raise ApiError(HTTPStatus.BAD_REQUEST, "missing_parameter", f"level is required: one of {levels}", "level")
    if level not in LEVELS:
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_parameter", f"level must be one of {levels}", "level")
    if level == TOTAL:
        if key:
            raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_parameter", "the total takes no key", "key")
        return level, None
    if not key:
        raise ApiError(HTTPStatus.BAD_REQUEST, "missing_parameter", f"key is required at level {level}", "key")
    try:
        return level, checked_id("key", key)
    except ValueError as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_parameter", str(error), "key") from None


# ---- request and response models ------------------------------------------------------------------------------


def _checked_id(value: str, info: ValidationInfo) -> str:
    return checked_id(str(info.field_name), value)


Id = Annotated[str, Field(strict=True), AfterValidator(_checked_id)]
Amount = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Days = Annotated[int, Field(strict=True)]


class DecisionRequest(BaseModel):
    """Ranges are the policies' to check (`shelfwise.demand.inventory`), so that each refusal names its field."""

    model_config = ConfigDict(extra="forbid")
    store_id: Id
    sku: Id
    on_hand: Amount = Field(description="Units in stock now.")
    on_order: Amount = Field(0.0, description="Units ordered that arrive within the lead time.")
    lead_time_days: Days = Field(description="Days from an order to its arrival (L).")
    review_period_days: Days = Field(description="Days between reviews (R); L + R is within the forecast horizon.")
    policy: Policy
    service_level: Amount | None = Field(
        None, description="order_up_to: probability of no stockout in a cycle, one of 0.01, 0.02, ..., 0.99."
    )
    unit_cost: Amount | None = Field(None, description="newsvendor: cost of a unit.")
    price: Amount | None = Field(None, description="newsvendor: selling price of a unit, above its cost.")
    salvage_value: Amount | None = Field(None, description="newsvendor: value of a unit left over, at most its cost.")
    holding_cost: Amount | None = Field(None, description="newsvendor: cost of holding a unit for the L + R days.")


_DAY_FIELDS: dict[str, Any] = {
    "date": (dt.date, ...),
    "mean": (float, Field(description="Expected demand of the day")),
    **{quantile_name(q): (float, Field(description=f"{q:.0%} quantile of the day's demand")) for q in DAILY_QUANTILES},
}
ForecastDay = create_model("ForecastDay", **_DAY_FIELDS)


class ForecastRun(BaseModel):
    """The batch forecast an answer comes from."""

    as_of: dt.date = Field(description="The first forecast day (the run date).")
    model_version: str
    cold_start: bool = Field(description="True when the forecast had no sales history of its own to start from.")


class ForecastOut(ForecastRun):
    days: list[ForecastDay]


class SeriesForecastOut(ForecastOut):
    store_id: str
    sku: str


class AggregateForecastOut(ForecastOut):
    level: AggregateLevel
    key: str | None = Field(description="The group at the level; null for the total.")


class DecisionOut(BaseModel):
    decision: dict[str, float | int] = Field(description="The policy's decision and what it expects per cycle.")
    inputs: dict[str, Any] = Field(description="The request as read, defaults included.")
    forecast: ForecastRun


# ---- the core: records to answers -----------------------------------------------------------------------------


def forecast_fields(record: ForecastRecord | AggregateRecord) -> dict[str, Any]:
    """The run and the days of a record, day h being as_of + h."""
    days = [
        ForecastDay(
            date=record.as_of + dt.timedelta(days=h),
            mean=mean,
            **{name: values[h] for name, values in record.quantiles.items()},
        )
        for h, mean in enumerate(record.mean)
    ]
    return {"as_of": record.as_of, "model_version": record.model_version, "cold_start": record.cold_start, "days": days}


def check_service_level(value: float) -> None:
    """A level the stored cumulative quantiles hold: a decision between two of them would silently use the lower."""
    first, second, last = CUMULATIVE_LEVELS[0], CUMULATIVE_LEVELS[1], CUMULATIVE_LEVELS[-1]
    grid = f"the forecast keeps cumulative demand at the levels {first}, {second}, ..., {last} only"
    if not first <= value <= last:
        raise ValueError(f"service_level must be between {first} and {last}: {grid}")
    if value not in CUMULATIVE_LEVELS:
        above = math.ceil(round(value * 100, 6)) / 100
        raise ValueError(f"service_level {value} lies between two levels: {grid}; use {above}, for one")


def decide(demand: CumulativeDemand, request: DecisionRequest) -> Decision:
    """The request's decision; ValueError whose message starts with the field for an input the policy cannot use."""
    for policy, names in POLICY_FIELDS.items():
        for name in names:
            given = getattr(request, name) is not None
            if policy == request.policy and not given:
                raise ValueError(f"{name} is required by the {policy} policy")
            if policy != request.policy and given:
                raise ValueError(f"{name} is an input of the {policy} policy, not of {request.policy}")
    policy_inputs: dict[str, float] = {name: getattr(request, name) for name in POLICY_FIELDS[request.policy]}
    if request.policy == "order_up_to":
        check_service_level(policy_inputs["service_level"])
    decide_with = order_up_to_decision if request.policy == "order_up_to" else newsvendor_decision
    return decide_with(
        demand,
        lead_time_days=request.lead_time_days,
        review_period_days=request.review_period_days,
        on_hand=request.on_hand,
        on_order=request.on_order,
        **policy_inputs,
    )


def refused_input(error: ValueError) -> ApiError:
    """A 400 naming the field the message starts with (the convention of `decide` and `shelfwise.demand.inventory`);
    the message holds only what the client sent."""
    message = str(error)
    leading = re.match(r"\w+", message)
    field = leading.group() if leading and leading.group() in DecisionRequest.model_fields else None
    return ApiError(HTTPStatus.BAD_REQUEST, "invalid_input", message, field)


def stored_demand(record: ForecastRecord) -> CumulativeDemand:
    """The record's cumulative demand; a record whose quantiles are not cumulative demand is a broken record."""
    try:
        return cumulative_demand(record)
    except ValueError as error:
        raise MalformedRecordError(f"the stored forecast is not cumulative demand: {error}") from None


# ---- what the routes read -------------------------------------------------------------------------------------


@dataclass
class DemandService:
    """The online store, behind the routes."""

    dynamodb: Callable[[], Any]
    table: str

    def forecast(self, store_id: str, sku: str) -> ForecastRecord | None:
        item = online_store.get_item(
            ENTITY, series_id(store_id, sku), SORT_KEY, table=self.table, client=self.dynamodb()
        )
        return None if item is None else forecast_from_item(item)

    def aggregate(self, level: AggregateLevel, key: str | None) -> AggregateRecord | None:
        item = online_store.get_item(
            AGGREGATE_ENTITY, aggregate_id(level, key), SORT_KEY, table=self.table, client=self.dynamodb()
        )
        return None if item is None else aggregate_from_item(item)


def unreadable(_: Exception) -> ApiError:
    return ApiError(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "forecast_unreadable",
        "the stored forecast cannot be read; the next scheduled run rewrites it",
    )


#: Errors of the demand routes and the answers they become (`shelfwise.api.build_resolver`).
DOMAIN_ERRORS: tuple[tuple[type[Exception], Callable[[Exception], ApiError]], ...] = (
    (MalformedRecordError, unreadable),
)


def demand_router(service: Callable[[], DemandService], metrics: Metrics, tracer: Tracer) -> Router:
    """The demand routes; `service` is called per request (it is built once per container by the caller)."""
    router = Router()

    # Traced without their results: forecasts are the retailer's business data.
    @tracer.capture_method(capture_response=False)
    def lookup_series(store_id: str, sku: str) -> ForecastRecord | None:
        return service().forecast(store_id, sku)

    @tracer.capture_method(capture_response=False)
    def lookup_aggregate(level: AggregateLevel, key: str | None) -> AggregateRecord | None:
        return service().aggregate(level, key)

    def series(store_id: str, sku: str) -> ForecastRecord:
        record = lookup_series(store_id, sku)
        if record is None:
            metrics.add_metric(name="UnknownSeries", unit=MetricUnit.Count, value=1)
            raise ApiError(
                HTTPStatus.NOT_FOUND, "forecast_not_found", f"no forecast for store {store_id!r} and SKU {sku!r}"
            )
        served(record)
        return record

    def served(record: ForecastRecord | AggregateRecord) -> None:
        metrics.add_metric(name="ServedDataAgeSeconds", unit=MetricUnit.Seconds, value=_age_seconds(record.as_of))
        if record.cold_start:
            metrics.add_metric(name="ColdStartAnswers", unit=MetricUnit.Count, value=1)

    @router.get(
        SERIES_FORECAST,
        summary="Daily demand forecast of a store x SKU",
        responses={
            200: {"description": "Mean and quantiles of each day's demand over the horizon"},
            400: error_doc("A malformed store id or SKU"),
            404: error_doc("No forecast for the store x SKU"),
            503: error_doc("The stored forecast cannot be read"),
        },
    )
    def series_forecast(
        store_id: Annotated[str, PathParam(description="Store id, percent-encoded")],
        sku: Annotated[str, PathParam(description="SKU, percent-encoded")],
    ) -> SeriesForecastOut:
        store_id, sku = path_id("store_id", store_id), path_id("sku", sku)
        record = series(store_id, sku)
        metrics.add_metric(name="ForecastAnswers", unit=MetricUnit.Count, value=1)
        return SeriesForecastOut(store_id=store_id, sku=sku, **forecast_fields(record))

    @router.get(
        AGGREGATE_FORECAST,
        summary="Daily demand forecast of a sum of store x SKU series",
        responses={
            200: {"description": "Mean and quantiles of each day's demand of the sum"},
            400: error_doc("A missing or unknown level, or a missing or malformed key"),
            404: error_doc("No forecast for the group"),
            503: error_doc("The stored forecast cannot be read"),
        },
    )
    def aggregate_forecast(
        level: Annotated[str | None, Query(description=f"One of {', '.join(LEVELS)}")] = None,
        key: Annotated[str | None, Query(description="The group at the level (none for the total)")] = None,
    ) -> AggregateForecastOut:
        found, group = aggregate_key(level, key)
        record = lookup_aggregate(found, group)
        if record is None:
            metrics.add_metric(name="UnknownAggregates", unit=MetricUnit.Count, value=1)
            named = "the total" if group is None else f"{found} {group!r}"
            raise ApiError(HTTPStatus.NOT_FOUND, "forecast_not_found", f"no forecast for {named}")
        served(record)
        metrics.add_metric(name="AggregateAnswers", unit=MetricUnit.Count, value=1)
        return AggregateForecastOut(level=found, key=group, **forecast_fields(record))

    @router.post(
        DECISION,
        summary="Inventory decision for a store x SKU from its forecast",
        responses={
            200: {"description": "The decision, the inputs it used and the forecast run it came from"},
            400: error_doc("Body is not JSON, or an input the policy cannot use (the field is named)"),
            404: error_doc("No forecast for the store x SKU"),
            413: error_doc("Body too large"),
            415: error_doc("Body is not application/json"),
            422: error_doc("A field is missing, unknown or of the wrong type, or an id is malformed"),
            503: error_doc("The stored forecast cannot be read"),
        },
    )
    def decision(request: DecisionRequest) -> DecisionOut:
        record = series(request.store_id, request.sku)
        demand = stored_demand(record)
        try:
            result = decide(demand, request)
        except ValueError as error:
            raise refused_input(error) from None
        metrics.add_metric(name="DecisionAnswers", unit=MetricUnit.Count, value=1)
        return DecisionOut(
            decision=result.as_dict(),
            inputs=request.model_dump(exclude_none=True),
            forecast=ForecastRun(as_of=record.as_of, model_version=record.model_version, cold_start=record.cold_start),
        )

    return router


def _age_seconds(as_of: dt.date) -> float:
    """Seconds since the start of the `as_of` day (UTC): how old the served forecast is."""
    start = dt.datetime.combine(as_of, dt.time.min, tzinfo=dt.UTC)
    return max(0.0, time.time() - start.timestamp())
