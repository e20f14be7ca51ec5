"""Inventory decisions for one store x SKU from a forecast's sample paths of cumulative demand.

Timing: a review happens at the start of day 1, before that day's demand; an order placed then arrives at the start
of day L + 1, and the next one at day L + R + 1, so the order must cover demand over days 1..L+R, `D(L+R)`, and the
stock already held must cover days 1..L, `D(L)`. Both come from the same sample paths, which is why the forecast is
passed as paths and not as daily quantiles: the quantile of a sum is not the sum of the quantiles.

Quantiles of the samples use numpy's `inverted_cdf` (Hyndman & Fan's definition 1): the smallest sample value x
with an empirical P(D <= x) >= q. Demand comes in whole units, so the level is a demand the paths can reach, the
textbook definition of the order-up-to level for discrete demand (the smallest S whose service is at least the
target), where linear interpolation would give fractional units that fall short of the target.

Only numpy and the standard library are imported: the API Lambda imports this module and its cold start matters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Final

import numpy as np

QUANTILE_METHOD: Final = "inverted_cdf"


@dataclass(frozen=True, eq=False)
class CumulativeDemand:
    """Sample paths of cumulative demand, shape (n_paths, horizon): `samples[:, h - 1]` is demand over days 1..h."""

    samples: np.ndarray

    def __post_init__(self) -> None:
        samples = np.array(self.samples, dtype=np.float64)  # a read-only copy: the caller's array may change later
        if samples.ndim != 2 or samples.shape[0] < 1 or samples.shape[1] < 1:
            raise ValueError(f"samples must have shape (n_paths, horizon) with both >= 1, got {samples.shape}")
        if not np.isfinite(samples).all():
            raise ValueError("samples must be finite")
        if (samples < 0).any():
            raise ValueError("samples must be >= 0: demand cannot be negative")
        if (np.diff(samples, axis=1) < 0).any():
            raise ValueError("samples must be non-decreasing along the horizon: they are cumulative demand")
        samples.flags.writeable = False
        object.__setattr__(self, "samples", samples)

    @classmethod
    def from_daily(cls, daily: np.ndarray) -> CumulativeDemand:
        """From sample paths of daily demand, shape (n_paths, horizon), as the forecasters return them per series."""
        daily = np.asarray(daily, dtype=np.float64)
        if daily.ndim != 2:
            raise ValueError(f"daily must have shape (n_paths, horizon), got {daily.shape}")
        if not np.isfinite(daily).all() or (daily < 0).any():
            raise ValueError("daily demand samples must be finite and >= 0")
        return cls(np.cumsum(daily, axis=1))

    @property
    def horizon_days(self) -> int:
        return int(self.samples.shape[1])

    def through(self, days: int) -> np.ndarray:
        """Demand over days 1..`days` on every path; 0 for `days` = 0."""
        if days == 0:
            return np.zeros(self.samples.shape[0])
        return self.samples[:, days - 1]


@dataclass(frozen=True)
class OrderUpToDecision:
    """A periodic review (R, S) decision; the expectations are the policy's, per review cycle, from the paths."""

    service_level: float
    lead_time_days: int
    review_period_days: int
    on_hand: float
    on_order: float
    inventory_position: float
    order_up_to: float
    order_quantity: float
    reorder_point: float
    expected_demand: float
    safety_stock: float
    fill_rate: float
    expected_shortage: float
    expected_leftover: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class NewsvendorDecision:
    """A newsvendor decision over the L + R days an order covers; money per unit, profit per cycle."""

    lead_time_days: int
    review_period_days: int
    unit_cost: float
    price: float
    salvage_value: float
    holding_cost: float
    underage_cost: float
    overage_cost: float
    critical_ratio: float
    on_hand: float
    on_order: float
    inventory_position: float
    stock_level: float
    order_quantity: float
    expected_demand: float
    expected_sales: float
    expected_leftover: float
    expected_profit: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _check_nonnegative(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_service_level(service_level: float) -> None:
    if not 0.0 < service_level < 1.0:
        raise ValueError(f"service_level must be strictly between 0 and 1, got {service_level!r}")


def _check_periods(lead_time_days: int, review_period_days: int) -> None:
    for name, value, least in (("lead_time_days", lead_time_days, 0), ("review_period_days", review_period_days, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def _check_within_horizon(demand: CumulativeDemand, lead_time_days: int, review_period_days: int) -> None:
    _check_periods(lead_time_days, review_period_days)
    if lead_time_days + review_period_days > demand.horizon_days:
        raise ValueError(
            f"lead_time_days + review_period_days = {lead_time_days + review_period_days} exceeds the forecast "
            f"horizon of {demand.horizon_days} days"
        )


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q, method=QUANTILE_METHOD))


def _position(on_hand: float, on_order: float) -> float:
    _check_nonnegative("on_hand", on_hand)
    _check_nonnegative("on_order", on_order)
    return on_hand + on_order


def order_up_to_decision(
    demand: CumulativeDemand,
    *,
    service_level: float,
    lead_time_days: int,
    review_period_days: int,
    on_hand: float,
    on_order: float = 0.0,
) -> OrderUpToDecision:
    """The (R, S) policy with cycle service level `service_level` (P(no stockout in a cycle)), and this review's order.

    - S is the `service_level` quantile of D(L+R); the order is max(0, S - (on_hand + on_order)), `on_order` being
      what arrives within the lead time; safety stock is S - E[D(L+R)].
    - The reorder point is the `service_level` quantile of lead-time demand D(L): the reorder point s of the
      continuous-review (s, Q) policy (Silver, Pyke & Thomas, Inventory and Production Management in Supply Chains,
      4th ed., 2017, ch. 6: s = expected lead-time demand + safety stock, at the same cycle service level). Under
      (R, S) every review orders up to S; a position below s means even an order placed now arrives after a
      stockout with probability above 1 - service_level, so it is the level at which not to wait for the review.
    - Fill rate, shortage and leftover use backorder accounting (the usual approximation for lost sales when
      shortages are small; Axsäter, Inventory Control, 3rd ed., 2015): the cycle's shortage is
      E[(D(L+R) - S)+] - E[(D(L) - S)+], the units short by the next arrival less those already short when this
      order arrives, over the cycle's demand E[D(L+R) - D(L)] (a fill rate of 1 if the paths have none); leftover is
      E[(S - D(L+R))+]. They describe the policy in steady state, not this order: a position above S orders nothing.
    """
    _check_service_level(service_level)
    _check_within_horizon(demand, lead_time_days, review_period_days)
    position = _position(on_hand, on_order)
    lead = demand.through(lead_time_days)
    cycle_end = demand.through(lead_time_days + review_period_days)

    level = _quantile(cycle_end, service_level)
    expected_demand = float(cycle_end.mean())
    shortage = float(np.maximum(cycle_end - level, 0.0).mean() - np.maximum(lead - level, 0.0).mean())
    cycle_demand = float((cycle_end - lead).mean())
    return OrderUpToDecision(
        service_level=service_level,
        lead_time_days=lead_time_days,
        review_period_days=review_period_days,
        on_hand=on_hand,
        on_order=on_order,
        inventory_position=position,
        order_up_to=level,
        order_quantity=max(0.0, level - position),
        reorder_point=_quantile(lead, service_level),
        expected_demand=expected_demand,
        safety_stock=level - expected_demand,
        fill_rate=1.0 - shortage / cycle_demand if cycle_demand > 0 else 1.0,
        expected_shortage=shortage,
        expected_leftover=float(np.maximum(level - cycle_end, 0.0).mean()),
    )


def newsvendor_decision(
    demand: CumulativeDemand,
    *,
    unit_cost: float,
    price: float,
    salvage_value: float,
    holding_cost: float,
    lead_time_days: int,
    review_period_days: int,
    on_hand: float,
    on_order: float = 0.0,
) -> NewsvendorDecision:
    """The newsvendor stock level for demand D(L+R), treating the cycle as one selling period, and this order.

    Underage cost cu = price - unit_cost (margin lost per unit short), overage cost co = unit_cost - salvage_value
    + holding_cost (per unit left at the end of the cycle, `holding_cost` being per unit for the cycle); the stock
    level is the critical ratio cu / (cu + co) quantile of D(L+R), and the order max(0, level - position).
    Expected profit is that of the cycle after this order, stock already held or ordered being sunk:
    price x E[sales] + (salvage_value - holding_cost) x E[leftover] - unit_cost x order_quantity; with nothing held
    it is the textbook newsvendor objective.
    """
    for name, value in (
        ("unit_cost", unit_cost),
        ("price", price),
        ("salvage_value", salvage_value),
        ("holding_cost", holding_cost),
    ):
        _check_nonnegative(name, value)
    if price <= unit_cost:
        raise ValueError(f"price ({price}) must exceed unit_cost ({unit_cost}), or no unit is worth stocking")
    if salvage_value > unit_cost:
        raise ValueError(f"salvage_value ({salvage_value}) must not exceed unit_cost ({unit_cost})")
    _check_within_horizon(demand, lead_time_days, review_period_days)
    position = _position(on_hand, on_order)
    cycle_end = demand.through(lead_time_days + review_period_days)

    underage, overage = price - unit_cost, unit_cost - salvage_value + holding_cost
    critical_ratio = underage / (underage + overage)
    # A critical ratio of 1 (nothing lost on a leftover) stocks the largest demand on the paths.
    level = _quantile(cycle_end, critical_ratio)
    order_quantity = max(0.0, level - position)
    stock = position + order_quantity
    sales = float(np.minimum(cycle_end, stock).mean())
    leftover = float(np.maximum(stock - cycle_end, 0.0).mean())
    return NewsvendorDecision(
        lead_time_days=lead_time_days,
        review_period_days=review_period_days,
        unit_cost=unit_cost,
        price=price,
        salvage_value=salvage_value,
        holding_cost=holding_cost,
        underage_cost=underage,
        overage_cost=overage,
        critical_ratio=critical_ratio,
        on_hand=on_hand,
        on_order=on_order,
        inventory_position=position,
        stock_level=level,
        order_quantity=order_quantity,
        expected_demand=float(cycle_end.mean()),
        expected_sales=sales,
        expected_leftover=leftover,
        expected_profit=price * sales + (salvage_value - holding_cost) * leftover - unit_cost * order_quantity,
    )


def normal_order_up_to(
    mean_daily: float,
    sigma_daily: float,
    lead_time_days: int,
    review_period_days: int,
    service_level: float,
) -> float:
    """The textbook (R, S) level for independent normal daily demand: mean x (L+R) + z x sigma x sqrt(L+R).

    z is the standard normal quantile of `service_level`. The level is floored at 0: below it (a low service level
    with a wide spread) it would cover negative demand.
    """
    _check_nonnegative("mean_daily", mean_daily)
    _check_nonnegative("sigma_daily", sigma_daily)
    _check_periods(lead_time_days, review_period_days)
    _check_service_level(service_level)
    days = lead_time_days + review_period_days
    z = NormalDist().inv_cdf(service_level)
    return max(0.0, mean_daily * days + z * sigma_daily * math.sqrt(days))
