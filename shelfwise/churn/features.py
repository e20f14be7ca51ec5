"""The churn feature set: its entity, its features, its label and its version, defined once.

The Glue job computes these columns, training reads them, the online store holds them and the API validates what-if
payloads against their ranges. The SageMaker steps import this module too (it is staged with them), so the label
horizon, the column names and the version are never repeated. Pure Python: no Spark, no pandas, so the Lambda can
import it cheaply.

Bump `FEATURE_SET.version` whenever a feature is added, removed or changes meaning: every feature row and online
record carries the version it was computed with, and a model trained on another version is refused (by batch
scoring and by the API) instead of being fed columns it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Entity:
    name: str
    join_key: str
    description: str


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: Literal["int", "float"]
    description: str
    minimum: float
    maximum: float


CUSTOMER = Entity("customer", "customer_id", "A registered customer; walk-in orders have no customer.")

#: Days after the cutoff in which a customer without a purchase counts as churned.
LABEL_HORIZON_DAYS = 90
LABEL = "churned"
CUTOFF = "cutoff"
#: The column (in feature files) and attribute (in online records) holding the feature-set version.
VERSION_COLUMN = "feature_set_version"

_YEARS = 36500.0
_MONEY = 1e8

FEATURES: tuple[Feature, ...] = (
    Feature("recency_days", "int", "Days from the last purchase to the cutoff.", 0, _YEARS),
    Feature("tenure_days", "int", "Days from signup (or first purchase) to the cutoff.", 0, _YEARS),
    Feature("first_purchase_days", "int", "Days from the first purchase to the cutoff.", 0, _YEARS),
    Feature("frequency", "int", "Distinct orders with a purchase before the cutoff.", 0, 1e6),
    Feature("monetary", "float", "Net spend before the cutoff (returns subtracted).", -_MONEY, _MONEY),
    Feature("avg_order_value", "float", "Mean gross spend per order.", 0, _MONEY),
    Feature("orders_30d", "int", "Orders in the 30 days before the cutoff.", 0, 1e5),
    Feature("orders_90d", "int", "Orders in the 90 days before the cutoff.", 0, 1e5),
    Feature("spend_30d", "float", "Gross spend in the 30 days before the cutoff.", 0, _MONEY),
    Feature("spend_90d", "float", "Gross spend in the 90 days before the cutoff.", 0, _MONEY),
    Feature(
        "trend_30_90",
        "float",
        "Orders in the last 30 days over a third of the last 90 days' orders (1 = steady).",
        0,
        3,
    ),
    Feature("ipt_mean_days", "float", "Mean days between consecutive orders (-1 with fewer than two).", -1, _YEARS),
    Feature(
        "ipt_std_days", "float", "Standard deviation of days between orders (-1 with fewer than three).", -1, _YEARS
    ),
    Feature("ipt_max_days", "float", "Longest gap between consecutive orders (-1 with fewer than two).", -1, _YEARS),
    Feature("basket_size", "float", "Mean units per order.", 0, 1e6),
    Feature("category_diversity", "int", "Distinct categories bought.", 0, 1e4),
    Feature("discount_share", "float", "Share of gross spend bought on promotion.", 0, 1),
    Feature("returns_rate", "float", "Returned units over purchased units.", 0, 1e3),
    Feature(
        "stockouts_met_90d", "int", "Visits in the last 90 days to a store with a favourite SKU out of stock.", 0, 1e5
    ),
    Feature("online_share", "float", "Share of orders placed online.", 0, 1),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}


@dataclass(frozen=True)
class FeatureSet:
    """Features of one entity, computed at a cutoff from data before it, with the label they are trained for."""

    name: str
    version: str
    entity: Entity
    features: tuple[Feature, ...]
    label: str
    label_horizon_days: int

    @property
    def qualified_version(self) -> str:
        """`churn/3`: what records and models carry."""
        return f"{self.name}/{self.version}"


FEATURE_SET = FeatureSet(
    name="churn",
    version="3",
    entity=CUSTOMER,
    features=FEATURES,
    label=LABEL,
    label_horizon_days=LABEL_HORIZON_DAYS,
)

#: Features the model derives from the stored ones with parameters kept in its artifact (the BG/NBD model of
#: `shelfwise.churn.bgnbd`, fitted at a cutoff before the model's evaluation): not stored, not sent by clients.
DERIVED_FEATURES: tuple[Feature, ...] = (
    Feature("bgnbd_p_alive", "float", "BG/NBD probability that the customer is still active.", 0, 1),
    Feature(
        "bgnbd_p_no_purchase",
        "float",
        f"BG/NBD probability of no purchase in the next {LABEL_HORIZON_DAYS} days.",
        0,
        1,
    ),
)
DERIVED_NAMES: tuple[str, ...] = tuple(f.name for f in DERIVED_FEATURES)
