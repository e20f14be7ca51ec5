"""The churn routes (a Powertools `Router`) and what they read: the served model and the online store.

GET  /customers/{customer_id}/churn   rescores the customer's stored features with the served model
POST /churn/score                     what-if: scores a full feature payload sent by the client

The served model is the newest approved package of the churn registry group, re-checked at most every
`Settings.model_cache_seconds` (`shelfwise.model_cache`): a new approval reaches warm containers without a
restart. A model of another feature-set version than this code's is refused; a stored record of another version
than the served model's is answered with a 503 naming the versions, never scored with the wrong columns.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, Literal

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field, create_model

from shelfwise import online_store
from shelfwise.api import ApiError, error_doc
from shelfwise.churn import scoring
from shelfwise.churn.domain import DOMAIN
from shelfwise.churn.features import FEATURES, Feature
from shelfwise.churn.publish import ENTITY, SORT_KEY
from shelfwise.model_cache import ModelCache, ModelUnavailableError

CUSTOMER_CHURN = "/customers/<customer_id>/churn"
WHAT_IF = "/churn/score"
SWAGGER = "/churn/swagger"
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_REASONS = 3
ROUTES = DOMAIN.api.routes if DOMAIN.api is not None else ()
MODEL_GROUP = "churn" if DOMAIN.pipeline is None else DOMAIN.pipeline.model_group


# ---- request and response models ------------------------------------------------------------------------------


def _feature_field(feature: Feature) -> Any:
    """A strict field for one feature: ints must be JSON integers, floats finite, both within the range."""
    if feature.dtype == "int":
        return (int, Field(strict=True, ge=feature.minimum, le=feature.maximum, description=feature.description))
    return (
        float,
        Field(
            strict=True, allow_inf_nan=False, ge=feature.minimum, le=feature.maximum, description=feature.description
        ),
    )


FeatureValues = create_model(
    "FeatureValues",
    __config__=ConfigDict(extra="forbid"),
    **{feature.name: _feature_field(feature) for feature in FEATURES},
)


class WhatIfRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    features: FeatureValues


class ReasonOut(BaseModel):
    feature: str
    value: float
    contribution: float = Field(description="SHAP contribution to the churn logit (positive raises the risk).")


class ScoreOut(BaseModel):
    probability: float = Field(ge=0, le=1)
    risk_band: Literal["low", "medium", "high"]
    reasons: list[ReasonOut]
    model_version: str


class CustomerChurnOut(ScoreOut):
    customer_id: str
    features_as_of: str
    cold_start: bool = Field(description="True for a customer without purchase history: the measured prior.")


# ---- what the routes read -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerRecord:
    customer_id: str
    as_of: str
    feature_set_version: str
    features: dict[str, float] | None


@dataclass
class ChurnService:
    """The served model and the online store, behind the routes."""

    models: ModelCache[scoring.ChurnModel]
    dynamodb: Callable[[], Any]
    table: str

    def model(self) -> scoring.ChurnModel:
        return self.models.get().model

    def customer(self, customer_id: str) -> CustomerRecord | None:
        item = online_store.get_item(ENTITY, customer_id, SORT_KEY, table=self.table, client=self.dynamodb())
        if item is None:
            return None
        features = item.attributes.get("features")
        return CustomerRecord(
            customer_id=customer_id,
            as_of=item.as_of,
            feature_set_version=item.feature_set_version,
            features=None if features is None else {k: float(v) for k, v in features.items()},
        )


def unavailable(error: Exception) -> ApiError:
    """A 503 whose message says what is wrong without naming registries, packages or artifacts."""
    reason = error.reason if isinstance(error, ModelUnavailableError) else "model_unavailable"
    messages = {
        "no_approved_model": "no approved churn model yet; approve one in the model registry",
        "model_rejected": "the approved churn model failed verification and is not served",
    }
    message = messages.get(reason, "the churn model cannot be loaded right now; retry later")
    return ApiError(HTTPStatus.SERVICE_UNAVAILABLE, reason, message)


def feature_mismatch(_: Exception) -> ApiError:
    return ApiError(
        HTTPStatus.SERVICE_UNAVAILABLE, "feature_mismatch", "the stored features do not fit the served model"
    )


#: Errors of the churn routes and the answers they become (`shelfwise.api.build_resolver`).
DOMAIN_ERRORS: tuple[tuple[type[Exception], Callable[[Exception], ApiError]], ...] = (
    (ModelUnavailableError, unavailable),
    (scoring.FeatureRowError, feature_mismatch),
)


def churn_router(service: Callable[[], ChurnService], metrics: Metrics, tracer: Tracer, logger: Logger) -> Router:
    """The churn routes; `service` is called per request (it is built once per container by the caller)."""
    router = Router()

    # Traced without their results: those are customer records.
    @tracer.capture_method(capture_response=False)
    def lookup_customer(customer_id: str) -> CustomerRecord | None:
        return service().customer(customer_id)

    @tracer.capture_method(capture_response=False)
    def served_model() -> scoring.ChurnModel:
        return service().model()

    @router.get(
        CUSTOMER_CHURN,
        summary="Churn risk of a customer",
        responses={
            200: {"description": "The customer's churn risk"},
            404: error_doc("No such customer"),
            422: error_doc("Malformed customer id"),
            503: error_doc("No model can be served, or the stored features do not fit it"),
        },
    )
    def customer_churn(
        customer_id: Annotated[str, PathParam(pattern=CUSTOMER_ID_PATTERN, max_length=64, description="Customer id")],
    ) -> CustomerChurnOut:
        record = lookup_customer(customer_id)
        if record is None:
            metrics.add_metric(name="UnknownCustomers", unit=MetricUnit.Count, value=1)
            raise ApiError(
                HTTPStatus.NOT_FOUND, "customer_not_found", f"no churn record for customer {customer_id}", "customer_id"
            )
        model = served_model()
        metrics.add_metric(name="ServedDataAgeSeconds", unit=MetricUnit.Seconds, value=_age_seconds(record.as_of))
        if record.feature_set_version != model.feature_set_version:
            logger.warning(
                "record and model feature sets differ",
                extra={"record_version": record.feature_set_version, "model_version": model.feature_set_version},
            )
            raise ApiError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "feature_set_mismatch",
                f"the stored features are of feature set {record.feature_set_version}, the served model of "
                f"{model.feature_set_version}; they agree again after the next scheduled run",
            )
        if record.features is None:
            metrics.add_metric(name="ColdStartAnswers", unit=MetricUnit.Count, value=1)
            result = scoring.cold_start_score(model)
        else:
            metrics.add_metric(name="ScoredAnswers", unit=MetricUnit.Count, value=1)
            # Rescored with the served model so that probability, reasons and model_version agree.
            result = scoring.score(model, record.features, MAX_REASONS)
        return CustomerChurnOut(
            customer_id=customer_id,
            features_as_of=record.as_of,
            cold_start=record.features is None,
            **_score_fields(result, model),
        )

    @router.post(
        WHAT_IF,
        summary="What-if churn score of a full feature payload",
        responses={
            200: {"description": "The payload's churn risk"},
            400: error_doc("Body is not JSON"),
            413: error_doc("Body too large"),
            415: error_doc("Body is not application/json"),
            422: error_doc("A feature is missing, unknown, of the wrong type or out of range"),
            503: error_doc("No model can be served"),
        },
    )
    def what_if(request: WhatIfRequest) -> ScoreOut:
        metrics.add_metric(name="WhatIfAnswers", unit=MetricUnit.Count, value=1)
        model = served_model()
        result = scoring.score(model, request.features.model_dump(), MAX_REASONS)
        return ScoreOut(**_score_fields(result, model))

    return router


def _score_fields(result: scoring.ChurnScore, model: scoring.ChurnModel) -> dict[str, Any]:
    return {
        "probability": result.probability,
        "risk_band": result.risk_band,
        "reasons": [ReasonOut(feature=r.feature, value=r.value, contribution=r.contribution) for r in result.reasons],
        "model_version": model.model_version,
    }


def _age_seconds(as_of: str) -> float:
    """Seconds since the start of the `as_of` day (the cutoff the features were computed at)."""
    start = dt.datetime.fromisoformat(as_of[:10]).replace(tzinfo=dt.UTC)
    return max(0.0, time.time() - start.timestamp())
