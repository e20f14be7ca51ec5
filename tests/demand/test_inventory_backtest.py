"""The forecast policy against the textbook one, replayed on what happened."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.demand.inventory_backtest import compare_policies, forecast_levels


def test_levels_are_quantiles_of_the_demand_each_review_must_cover() -> None:
    rng = np.random.default_rng(0)
    paths = rng.poisson(4, size=(5000, 28)).astype(float)
    levels = forecast_levels(paths, 0.9, lead_time=2, review=7, reviews=3)
    cover = paths[:, 7:16].sum(axis=1)  # review 1: days 7..15
    assert levels[1] == np.quantile(cover, 0.9, method="inverted_cdf")
    # Well below nine daily 90% quantiles added up.
    assert levels[1] < 9 * np.quantile(paths, 0.9)


def test_a_forecast_that_knew_the_future_serves_everything_with_less_stock_than_the_textbook() -> None:
    rng = np.random.default_rng(1)
    n = 20
    history = [rng.poisson(5, size=120).astype(float) for _ in range(n)]
    truth = rng.poisson(5, size=(n, 28)).astype(float)
    clairvoyant = np.repeat(truth[:, None, :], 10, axis=1)
    outcomes = {(o.policy, o.service_level): o for o in compare_policies(clairvoyant, truth, history, (0.95,))}
    forecast, textbook = outcomes[("forecast", 0.95)], outcomes[("textbook", 0.95)]
    assert forecast.fill_rate == pytest.approx(1.0)
    assert forecast.lost_sales == 0
    assert forecast.average_on_hand < textbook.average_on_hand


def test_a_horizon_too_short_for_one_review_is_refused() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        compare_policies(np.ones((1, 5, 6)), np.ones((1, 6)), [np.ones(60)], lead_time=2, review=7)


def test_the_textbook_stock_for_an_achieved_service_is_interpolated_between_its_targets() -> None:
    from shelfwise.bench.inventory import frontier_line, textbook_stock_at
    from shelfwise.demand.inventory_backtest import PolicyOutcome

    def outcome(policy: str, target: float, service: float, stock: float) -> PolicyOutcome:
        return PolicyOutcome(policy, target, 10, service, service, stock, 0.0, 0.0)

    outcomes = [
        outcome("textbook", 0.90, 0.80, 100.0),
        outcome("textbook", 0.95, 0.90, 200.0),
        outcome("forecast", 0.90, 0.85, 120.0),
        outcome("forecast", 0.95, 0.99, 400.0),
    ]
    assert textbook_stock_at(outcomes, "cycle_service_level", 0.85) == pytest.approx(150.0)
    assert textbook_stock_at(outcomes, "fill_rate", 0.99) is None  # beyond what the textbook achieved
    assert "cycle service 0.850 with x0.80 the textbook's stock" in frontier_line(outcomes)
