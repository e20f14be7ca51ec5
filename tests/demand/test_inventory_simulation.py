"""The lost-sales replay of a periodic review policy and the textbook order-up-to level."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shelfwise.demand.inventory_simulation import simulate_policy, textbook_order_up_to

FREE: dict[str, float] = {"holding_cost": 0.0, "lost_sale_penalty": 0.0}


def test_a_level_covering_lead_time_and_review_loses_nothing_on_constant_demand() -> None:
    daily, lead, review = 5.0, 2, 7
    demand = np.full(70, daily)
    level = daily * (lead + review)
    result = simulate_policy(
        demand, level, review_period_days=review, lead_time_days=lead, initial_on_hand=level, **FREE
    )
    assert result.lost_sales == 0.0
    assert result.fill_rate == 1.0
    assert result.cycle_service_level == 1.0
    assert result.cycles == 10  # arrivals on days 2, 9, ..., 65
    assert result.orders == 9  # the first review finds the position at the level already

    short = simulate_policy(
        demand, level - 1, review_period_days=review, lead_time_days=lead, initial_on_hand=level, **FREE
    )
    assert short.lost_sales > 0
    assert short.cycle_service_level < 1.0


def test_a_level_of_zero_loses_every_unit() -> None:
    demand = np.random.default_rng(0).integers(1, 10, size=40).astype(float)
    result = simulate_policy(
        demand,
        0.0,
        review_period_days=7,
        lead_time_days=3,
        initial_on_hand=0.0,
        holding_cost=0.1,
        lost_sale_penalty=2.0,
        order_cost=50.0,
    )
    assert result.lost_sales == demand.sum()
    assert result.fill_rate == 0.0
    assert result.cycle_service_level == 0.0
    assert result.orders == 0
    assert result.total_cost == pytest.approx(2.0 * demand.sum())


def test_an_order_arrives_exactly_lead_time_days_later() -> None:
    # Ordered on day 0, due on day 3: day 2's unit is lost, day 3's four are served and one unit stays to the end.
    # Arriving a day early would serve day 2, a day late would lose day 3.
    demand = np.zeros(10)
    demand[2], demand[3] = 1.0, 4.0
    result = simulate_policy(
        demand,
        5.0,
        review_period_days=10,
        lead_time_days=3,
        initial_on_hand=0.0,
        holding_cost=0.5,
        lost_sale_penalty=2.0,
        order_cost=10.0,
    )
    assert result.orders == 1
    assert result.units_received == 5.0
    assert result.lost_sales == 1.0
    assert result.units_served == 4.0
    assert result.ending_on_hand == 1.0
    assert result.average_on_hand == pytest.approx(0.7)  # one unit at the end of days 3..9
    assert result.total_cost == pytest.approx(0.5 * 7 + 2.0 * 1 + 10.0)
    # Day 2 comes before the first arrival: no review cycle covers it.
    assert (result.cycles, result.cycle_service_level) == (1, 1.0)


def test_with_no_lead_time_an_order_arrives_before_the_days_demand() -> None:
    demand = np.array([5.0, 0.0, 0.0])
    result = simulate_policy(demand, 5.0, review_period_days=3, lead_time_days=0, initial_on_hand=0.0, **FREE)
    assert result.lost_sales == 0.0
    assert result.units_served == 5.0


def test_an_order_due_after_the_window_is_placed_but_not_received() -> None:
    demand = np.array([0.0, 0.0, 0.0, 5.0, 0.0])
    result = simulate_policy(demand, 5.0, review_period_days=2, lead_time_days=3, initial_on_hand=0.0, **FREE)
    assert result.orders == 2  # days 0 and 4; day 2 finds the first order still on its way
    assert result.units_received == 5.0
    assert result.ending_on_hand == 0.0


def test_one_level_per_review() -> None:
    demand = np.full(14, 1.0)
    result = simulate_policy(
        demand, np.array([7.0, 0.0]), review_period_days=7, lead_time_days=0, initial_on_hand=0.0, **FREE
    )
    assert (result.units_served, result.lost_sales, result.orders) == (7.0, 7.0, 1)
    with pytest.raises(ValueError, match="order_up_to"):
        simulate_policy(demand, np.array([7.0]), review_period_days=7, lead_time_days=0, initial_on_hand=0, **FREE)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"demand": np.array([1.0, -1.0, 1.0, 1.0])}, "demand"),
        ({"demand": np.ones((2, 2))}, "demand"),
        ({"order_up_to": -1.0}, "order_up_to"),
        ({"lead_time_days": 4}, "lead_time_days"),  # no arrival inside a 4-day window
        ({"lead_time_days": -1}, "lead_time_days"),
        ({"review_period_days": 0}, "review_period_days"),
        ({"initial_on_hand": -1.0}, "initial_on_hand"),
        ({"holding_cost": -1.0}, "holding_cost"),
        ({"lost_sale_penalty": math.nan}, "lost_sale_penalty"),
        ({"order_cost": -5.0}, "order_cost"),
    ],
)
def test_invalid_simulation_inputs_name_the_field(change: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {
        "demand": np.ones(4),
        "order_up_to": 3.0,
        "review_period_days": 2,
        "lead_time_days": 1,
        "initial_on_hand": 0.0,
        "holding_cost": 0.1,
        "lost_sale_penalty": 1.0,
    }
    with pytest.raises(ValueError, match=field):
        simulate_policy(**{**arguments, **change})


@settings(max_examples=150, deadline=None)
@given(
    demand=arrays(np.int64, st.integers(1, 60), elements=st.integers(0, 20), fill=st.nothing()),
    data=st.data(),
)
def test_stock_balances_on_random_inputs(demand: np.ndarray, data: st.DataObject) -> None:
    review = data.draw(st.integers(1, 10), label="review_period_days")
    lead = data.draw(st.integers(0, demand.size - 1), label="lead_time_days")
    reviews = -(-demand.size // review)
    levels = data.draw(arrays(np.int64, reviews, elements=st.integers(0, 100)), label="order_up_to")
    initial = data.draw(st.integers(0, 100), label="initial_on_hand")
    result = simulate_policy(
        demand, levels, review_period_days=review, lead_time_days=lead, initial_on_hand=initial, **FREE
    )
    assert result.initial_on_hand + result.units_received - result.units_served - result.ending_on_hand == 0
    assert result.units_served + result.lost_sales == demand.sum()
    assert result.ending_on_hand >= 0
    assert 0.0 <= result.fill_rate <= 1.0
    assert 0.0 <= result.cycle_service_level <= 1.0


def test_textbook_level_of_a_steady_history_is_the_mean_demand() -> None:
    assert textbook_order_up_to(np.full(35, 10.0), 2, 7, 0.95) == pytest.approx(90.0)


def test_textbook_level_by_hand() -> None:
    # The last 28 days average 10 (the whole history would give 8); the 28 weekly errors are seven 10s and
    # twenty-one 0s, with a sample variance of (7 x 7.5² + 21 x 2.5²) / 27 = 525 / 27.
    history = np.concatenate([np.zeros(7), np.full(28, 10.0)])
    expected = 10.0 * 9 + NormalDist().inv_cdf(0.95) * math.sqrt(525 / 27) * 3
    assert textbook_order_up_to(history, 2, 7, 0.95) == pytest.approx(expected)


def test_textbook_level_needs_four_seasons_of_history() -> None:
    with pytest.raises(ValueError, match="history"):
        textbook_order_up_to(np.ones(27), 2, 7, 0.95)
    with pytest.raises(ValueError, match="season"):
        textbook_order_up_to(np.ones(40), 2, 7, 0.95, season=0)
    with pytest.raises(ValueError, match="service_level"):
        textbook_order_up_to(np.ones(40), 2, 7, 1.0)
