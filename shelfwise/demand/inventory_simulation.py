"""Replay of a periodic review order-up-to policy on true daily demand, with lost sales, to compare policies.

Each day t: at a review (t = 0, R, 2R, ...) the order max(0, S_k - on_hand - on_order) is placed, k being the
review's number; the orders placed at t - L arrive; demand is served from stock and what stock cannot serve is lost.
Orders whose arrival falls after the window are placed (and counted) but never received.

A review cycle is the stretch an order covers, from its arrival to the day before the next one's: days
[kR + L, (k+1)R + L), cut at the end of the window (a cut cycle has fewer days at risk). Days before the first
arrival are served by the initial stock alone, no decision covers them, so they count in the fill rate only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from shelfwise.demand.inventory import normal_order_up_to

#: The mean daily demand of the textbook policy is taken over this many whole seasons of history.
MEAN_SEASONS = 4


@dataclass(frozen=True)
class SimulationResult:
    """What a policy achieved over the window; units are demand units, costs in the inputs' currency."""

    days: int
    cycles: int
    cycle_service_level: float
    fill_rate: float
    average_on_hand: float
    units_demanded: float
    units_served: float
    lost_sales: float
    initial_on_hand: float
    units_received: float
    ending_on_hand: float
    orders: int
    cost_holding: float
    cost_lost_sales: float
    cost_ordering: float
    total_cost: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _check_nonnegative(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _review_levels(order_up_to: np.ndarray | float, reviews: int) -> np.ndarray:
    levels = np.asarray(order_up_to, dtype=np.float64)
    if levels.ndim == 0:
        levels = np.full(reviews, float(levels))
    if levels.shape != (reviews,):
        raise ValueError(f"order_up_to must be a number or have one level per review, ({reviews},), got {levels.shape}")
    if not np.isfinite(levels).all() or (levels < 0).any():
        raise ValueError("order_up_to levels must be finite and >= 0")
    return levels


def simulate_policy(
    demand: np.ndarray,
    order_up_to: np.ndarray | float,
    *,
    review_period_days: int,
    lead_time_days: int,
    initial_on_hand: float,
    holding_cost: float,
    lost_sale_penalty: float,
    order_cost: float = 0.0,
) -> SimulationResult:
    """Replays the policy ordering up to `order_up_to[k]` at review k (one number: the same level at every review).

    `demand` is the true daily demand over the window, shape (n_days,), which must be longer than the lead time so
    that an order can arrive in it. Costs: `holding_cost` per unit on hand at the end of each day,
    `lost_sale_penalty` per unit lost, `order_cost` per order placed.
    """
    demand = np.asarray(demand, dtype=np.float64)
    if demand.ndim != 1 or not np.isfinite(demand).all() or (demand < 0).any():
        raise ValueError(f"demand must be a 1-d array of finite values >= 0, got shape {demand.shape}")
    for name, value, least in (("lead_time_days", lead_time_days, 0), ("review_period_days", review_period_days, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    days = demand.size
    if days <= lead_time_days:
        raise ValueError(f"demand covers {days} days: it must be longer than lead_time_days ({lead_time_days})")
    for name, cost in (
        ("initial_on_hand", initial_on_hand),
        ("holding_cost", holding_cost),
        ("lost_sale_penalty", lost_sale_penalty),
        ("order_cost", order_cost),
    ):
        _check_nonnegative(name, cost)
    levels = _review_levels(order_up_to, -(-days // review_period_days))

    arriving = np.zeros(days)
    lost = np.zeros(days)
    end_on_hand = np.zeros(days)
    on_hand, on_order, orders = float(initial_on_hand), 0.0, 0
    for t in range(days):
        if t % review_period_days == 0:
            quantity = levels[t // review_period_days] - on_hand - on_order
            if quantity > 0:
                orders += 1
                on_order += quantity
                if t + lead_time_days < days:
                    arriving[t + lead_time_days] += quantity
        on_hand += arriving[t]
        on_order -= arriving[t]
        served = min(on_hand, demand[t])
        lost[t] = demand[t] - served
        on_hand -= served
        end_on_hand[t] = on_hand

    starts = range(lead_time_days, days, review_period_days)
    stockout_free = [not (lost[start : start + review_period_days] > 0).any() for start in starts]
    demanded = float(demand.sum())
    lost_units = float(lost.sum())
    holding = holding_cost * float(end_on_hand.sum())
    lost_cost = lost_sale_penalty * lost_units
    ordering = order_cost * orders
    return SimulationResult(
        days=days,
        cycles=len(stockout_free),
        cycle_service_level=float(np.mean(stockout_free)),
        fill_rate=(demanded - lost_units) / demanded if demanded > 0 else 1.0,
        average_on_hand=float(end_on_hand.mean()),
        units_demanded=demanded,
        units_served=demanded - lost_units,
        lost_sales=lost_units,
        initial_on_hand=float(initial_on_hand),
        units_received=float(arriving.sum()),
        ending_on_hand=on_hand,
        orders=orders,
        cost_holding=holding,
        cost_lost_sales=lost_cost,
        cost_ordering=ordering,
        total_cost=holding + lost_cost + ordering,
    )


def textbook_order_up_to(
    history: np.ndarray,
    lead_time_days: int,
    review_period_days: int,
    service_level: float,
    season: int = 7,
) -> float:
    """The textbook (R, S) level from a history of daily demand: mean x (L+R) + z x sigma x sqrt(L+R).

    The mean is the daily mean over the last `MEAN_SEASONS` whole seasons (28 days for weeks): the per-day mean
    of the seasonal naive forecast averaged over those seasons, so every weekday weighs the same; the plain seasonal
    naive forecast (last week repeated) has the mean of the last `season` days, with twice the standard error. Sigma is
    the standard deviation of the seasonal naive one-season-ahead errors y[t] - y[t - season] over the whole history,
    which treats daily errors as independent, as the textbook formula does.
    """
    history = np.asarray(history, dtype=np.float64)
    if isinstance(season, bool) or not isinstance(season, int | np.integer) or season < 1:
        raise ValueError(f"season must be an integer >= 1, got {season!r}")
    if history.ndim != 1 or history.size < MEAN_SEASONS * season:
        raise ValueError(
            f"history must be a 1-d array of at least {MEAN_SEASONS * season} days, got shape {history.shape}"
        )
    if not np.isfinite(history).all() or (history < 0).any():
        raise ValueError("history must be finite and >= 0")
    errors = history[season:] - history[:-season]
    return normal_order_up_to(
        mean_daily=float(history[-MEAN_SEASONS * season :].mean()),
        sigma_daily=float(np.std(errors, ddof=1)),
        lead_time_days=lead_time_days,
        review_period_days=review_period_days,
        service_level=service_level,
    )
