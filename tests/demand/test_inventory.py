"""Order-up-to and newsvendor decisions from sample paths of cumulative demand."""

from __future__ import annotations

import json
import math
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shelfwise.demand.inventory import (
    CumulativeDemand,
    newsvendor_decision,
    normal_order_up_to,
    order_up_to_decision,
)

# Four paths over H = 2 days; with L = 1, R = 1: D(L) = [0, 1, 2, 4], D(L+R) = [2, 3, 4, 6].
SMALL = CumulativeDemand(np.array([[0.0, 2.0], [1.0, 3.0], [2.0, 4.0], [4.0, 6.0]]))
# D(L+R) uniform on 1..10 with L = 0, R = 1.
UNIFORM = CumulativeDemand(np.arange(1.0, 11.0)[:, None])
NEWSVENDOR = {"unit_cost": 6.0, "price": 10.0, "salvage_value": 2.0, "holding_cost": 1.0}


def _poisson_paths(n_paths: int = 2_000, horizon: int = 28, rate: float = 4.0, seed: int = 0) -> CumulativeDemand:
    daily = np.random.default_rng(seed).poisson(rate, size=(n_paths, horizon))
    return CumulativeDemand.from_daily(daily)


def test_order_up_to_decision_by_hand() -> None:
    decision = order_up_to_decision(
        SMALL, service_level=0.5, lead_time_days=1, review_period_days=1, on_hand=1.0, on_order=0.5
    )
    assert decision.order_up_to == 3.0  # smallest demand with P(D(2) <= x) >= 0.5: an attainable value
    assert decision.reorder_point == 1.0  # same rule on D(1)
    assert decision.inventory_position == 1.5
    assert decision.order_quantity == 1.5
    assert decision.expected_demand == 3.75
    assert decision.safety_stock == -0.75
    # E[(D(2) - 3)+] = 1, E[(D(1) - 3)+] = 0.25, cycle demand E[D(2) - D(1)] = 2.
    assert decision.expected_shortage == pytest.approx(0.75)
    assert decision.fill_rate == pytest.approx(1 - 0.75 / 2)
    assert decision.expected_leftover == pytest.approx(0.25)
    assert json.loads(json.dumps(decision.as_dict()))["order_up_to"] == 3.0


def test_order_up_to_matches_the_normal_closed_form() -> None:
    n_paths, mean_daily, sigma_daily, lead, review = 200_000, 100.0, 10.0, 2, 7
    daily = np.random.default_rng(1).normal(mean_daily, sigma_daily, size=(n_paths, 28))  # 10 sigma from 0
    demand = CumulativeDemand.from_daily(daily)
    spread = sigma_daily * math.sqrt(lead + review)
    for alpha in (0.5, 0.9, 0.95, 0.99):
        expected = normal_order_up_to(mean_daily, sigma_daily, lead, review, alpha)
        decision = order_up_to_decision(
            demand, service_level=alpha, lead_time_days=lead, review_period_days=review, on_hand=0.0
        )
        # Standard error of a sample quantile: sqrt(a(1-a)/n) / density at the quantile, 0.14-0.25 units here
        # (0.03% of S); 5 of them make a false failure practically impossible yet catch a one-day or z error.
        density = NormalDist(mean_daily * (lead + review), spread).pdf(expected)
        tolerance = 5 * math.sqrt(alpha * (1 - alpha) / n_paths) / density
        assert decision.order_up_to == pytest.approx(expected, abs=tolerance)
        assert decision.safety_stock == pytest.approx(NormalDist().inv_cdf(alpha) * spread, abs=2 * tolerance)


def test_normal_order_up_to_by_hand() -> None:
    assert normal_order_up_to(10.0, 3.0, 2, 7, 0.95) == pytest.approx(90 + 1.6448536 * 3 * 3)
    assert normal_order_up_to(10.0, 3.0, 2, 7, 0.5) == pytest.approx(90.0)
    assert normal_order_up_to(0.1, 5.0, 0, 1, 0.05) == 0.0  # floored: demand is never negative


def test_order_quantity_is_the_gap_to_the_level_and_never_negative() -> None:
    demand = _poisson_paths()
    common: dict[str, Any] = {"service_level": 0.9, "lead_time_days": 3, "review_period_days": 7}
    level = order_up_to_decision(demand, **common, on_hand=0.0).order_up_to
    below = order_up_to_decision(demand, **common, on_hand=level - 10, on_order=4.0)
    assert below.order_quantity == 6.0
    above = order_up_to_decision(demand, **common, on_hand=level + 5, on_order=3.0)
    assert above.order_quantity == 0.0


def test_quantile_is_the_smallest_demand_reaching_the_service_level() -> None:
    demand = _poisson_paths(n_paths=999)
    decision = order_up_to_decision(demand, service_level=0.9, lead_time_days=3, review_period_days=7, on_hand=0.0)
    cycle = demand.through(10)
    assert decision.order_up_to in cycle
    assert np.mean(cycle <= decision.order_up_to) >= 0.9
    assert np.mean(cycle < decision.order_up_to) < 0.9


def test_fill_rate_is_one_when_the_level_covers_every_path() -> None:
    demand = _poisson_paths(n_paths=100)
    decision = order_up_to_decision(demand, service_level=0.999, lead_time_days=3, review_period_days=7, on_hand=0.0)
    assert decision.order_up_to == demand.through(10).max()
    assert decision.fill_rate == 1.0
    assert decision.expected_shortage == 0.0


def test_fill_rate_falls_with_the_service_level() -> None:
    demand = _poisson_paths()
    fills = [
        order_up_to_decision(demand, service_level=a, lead_time_days=3, review_period_days=7, on_hand=0.0).fill_rate
        for a in (0.99, 0.95, 0.9, 0.8, 0.5, 0.2)
    ]
    assert (np.diff(fills) <= 0).all()
    assert fills[0] > 0.99
    assert fills[-1] < 0.9


def test_fill_rate_of_a_cycle_without_demand_is_one() -> None:
    flat = CumulativeDemand(np.array([[3.0, 3.0], [5.0, 5.0]]))
    decision = order_up_to_decision(flat, service_level=0.5, lead_time_days=1, review_period_days=1, on_hand=0.0)
    assert decision.fill_rate == 1.0


def test_newsvendor_by_hand() -> None:
    decision = newsvendor_decision(UNIFORM, **NEWSVENDOR, lead_time_days=0, review_period_days=1, on_hand=0.0)
    assert decision.underage_cost == 4.0
    assert decision.overage_cost == 5.0
    assert decision.critical_ratio == pytest.approx(4 / 9)
    assert decision.stock_level == 5.0  # F(4) = 0.4 < 4/9 <= F(5) = 0.5
    assert decision.order_quantity == 5.0
    # Sales E[min(D, 5)] = 4, leftover E[(5 - D)+] = 1: 10 x 4 + (2 - 1) x 1 - 6 x 5.
    assert decision.expected_profit == pytest.approx(11.0)


def test_newsvendor_level_maximises_expected_profit() -> None:
    demand = _poisson_paths(n_paths=5_000)
    costs = {"unit_cost": 3.0, "price": 5.0, "salvage_value": 0.5, "holding_cost": 0.25}
    decision = newsvendor_decision(demand, **costs, lead_time_days=2, review_period_days=5, on_hand=0.0)
    cycle = demand.through(7)

    def profit(level: float) -> float:
        leftover = np.maximum(level - cycle, 0.0)
        return float(np.mean(5.0 * np.minimum(cycle, level) + (0.5 - 0.25) * leftover - 3.0 * level))

    levels = np.arange(0.0, cycle.max() + 2)
    assert levels[np.argmax([profit(y) for y in levels])] == decision.stock_level
    assert decision.expected_profit == pytest.approx(profit(decision.stock_level))
    assert np.mean(cycle <= decision.stock_level) >= decision.critical_ratio > np.mean(cycle < decision.stock_level)


def test_newsvendor_treats_stock_held_as_sunk() -> None:
    partly = newsvendor_decision(UNIFORM, **NEWSVENDOR, lead_time_days=0, review_period_days=1, on_hand=3.0)
    assert partly.order_quantity == 2.0
    assert partly.expected_profit == pytest.approx(40.0 + 1.0 - 6.0 * 2)
    overstocked = newsvendor_decision(UNIFORM, **NEWSVENDOR, lead_time_days=0, review_period_days=1, on_hand=8.0)
    assert overstocked.order_quantity == 0.0
    assert overstocked.expected_leftover == pytest.approx((7 + 6 + 5 + 4 + 3 + 2 + 1) / 10)


def test_samples_are_copied_and_read_only() -> None:
    samples = np.array([[1.0, 2.0]])
    demand = CumulativeDemand(samples)
    samples[0, 1] = 99.0
    assert demand.through(2)[0] == 2.0
    with pytest.raises(ValueError, match="read-only"):
        demand.samples[0, 0] = 5.0


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.array([1.0, 2.0]), r"samples must have shape"),
        (np.ones((2, 3, 4)), r"samples must have shape"),
        (np.ones((0, 3)), r"samples must have shape"),
        (np.array([[1.0, 0.5]]), r"samples must be non-decreasing"),
        (np.array([[-1.0, 0.0]]), r"samples must be >= 0"),
        (np.array([[1.0, np.nan]]), r"samples must be finite"),
    ],
)
def test_invalid_samples_are_refused(samples: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CumulativeDemand(samples)


def test_invalid_daily_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="daily"):
        CumulativeDemand.from_daily(np.array([[1.0, -1.0, 3.0]]))
    with pytest.raises(ValueError, match="daily"):
        CumulativeDemand.from_daily(np.ones(3))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lead_time_days": 1, "review_period_days": 2}, "lead_time_days"),  # L + R = 3 > H = 2
        ({"lead_time_days": -1}, "lead_time_days"),
        ({"lead_time_days": 0.5}, "lead_time_days"),
        ({"review_period_days": 0}, "review_period_days"),
        ({"service_level": 0.0}, "service_level"),
        ({"service_level": 1.0}, "service_level"),
        ({"service_level": -0.2}, "service_level"),
        ({"service_level": 1.5}, "service_level"),
        ({"service_level": math.nan}, "service_level"),
        ({"on_hand": -1.0}, "on_hand"),
        ({"on_order": -1.0}, "on_order"),
        ({"on_hand": math.inf}, "on_hand"),
    ],
)
def test_invalid_order_up_to_inputs_name_the_field(change: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"service_level": 0.9, "lead_time_days": 1, "review_period_days": 1, "on_hand": 0.0}
    with pytest.raises(ValueError, match=field):
        order_up_to_decision(SMALL, **{**arguments, **change})


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"unit_cost": -1.0}, "unit_cost"),
        ({"price": -1.0}, "price"),
        ({"salvage_value": -1.0}, "salvage_value"),
        ({"holding_cost": -0.5}, "holding_cost"),
        ({"price": 5.0}, "price"),  # below the unit cost
        ({"price": 6.0}, "price"),  # equal: no margin
        ({"salvage_value": 7.0}, "salvage_value"),  # above the unit cost
        ({"review_period_days": 2}, "review_period_days"),  # L + R = 2 > H = 1
        ({"on_hand": -2.0}, "on_hand"),
    ],
)
def test_invalid_newsvendor_inputs_name_the_field(change: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {**NEWSVENDOR, "lead_time_days": 0, "review_period_days": 1, "on_hand": 0.0}
    with pytest.raises(ValueError, match=field):
        newsvendor_decision(UNIFORM, **{**arguments, **change})


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ((-1.0, 1.0, 1, 1, 0.9), "mean_daily"),
        ((1.0, -1.0, 1, 1, 0.9), "sigma_daily"),
        ((1.0, 1.0, -1, 1, 0.9), "lead_time_days"),
        ((1.0, 1.0, 1, 0, 0.9), "review_period_days"),
        ((1.0, 1.0, 1, 1, 1.0), "service_level"),
    ],
)
def test_invalid_normal_inputs_name_the_field(arguments: tuple[float, float, int, int, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        normal_order_up_to(*arguments)


@settings(max_examples=100, deadline=None)
@given(
    daily=arrays(
        np.int64, st.tuples(st.integers(1, 40), st.integers(1, 10)), elements=st.integers(0, 50), fill=st.nothing()
    ),
    data=st.data(),
)
def test_level_rises_with_the_service_level_and_order_falls_with_stock(daily: np.ndarray, data: st.DataObject) -> None:
    demand = CumulativeDemand.from_daily(daily)
    review = data.draw(st.integers(1, demand.horizon_days), label="review_period_days")
    lead = data.draw(st.integers(0, demand.horizon_days - review), label="lead_time_days")
    low, high = sorted(data.draw(st.lists(st.floats(0.001, 0.999), min_size=2, max_size=2), label="service_levels"))
    less, more = sorted(data.draw(st.lists(st.floats(0, 600), min_size=2, max_size=2), label="on_hand"))
    common: dict[str, Any] = {"lead_time_days": lead, "review_period_days": review}

    at_low = order_up_to_decision(demand, service_level=low, on_hand=less, **common)
    at_high = order_up_to_decision(demand, service_level=high, on_hand=less, **common)
    assert at_low.order_up_to <= at_high.order_up_to
    with_more = order_up_to_decision(demand, service_level=low, on_hand=more, **common)
    assert 0.0 <= with_more.order_quantity <= at_low.order_quantity
