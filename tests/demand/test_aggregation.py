"""Sums of store x SKU forecasts: the Schaake shuffle keeps each series' forecast and restores shared shocks."""

from __future__ import annotations

import numpy as np

from shelfwise.demand.aggregation import schaake_shuffle, schaake_template, sum_by_group
from shelfwise.demand.metrics import score


def test_the_shuffle_keeps_every_series_daily_distribution() -> None:
    rng = np.random.default_rng(0)
    paths = rng.poisson(3, size=(5, 100, 28)).astype(float)
    template = rng.normal(size=paths.shape)
    shuffled = schaake_shuffle(paths, template)
    assert np.array_equal(np.sort(shuffled, axis=1), np.sort(paths, axis=1))


def test_shared_shocks_in_history_widen_the_sum_to_its_true_spread() -> None:
    # 50 series driven by one common daily shock: their total swings far more than independent draws suggest.
    rng = np.random.default_rng(1)
    n_series, days, horizon, n_paths = 50, 500, 28, 200

    def world(n_days: int) -> np.ndarray:
        common = rng.normal(0, 1, size=n_days)
        return np.maximum(10 + 3 * common[None, :] + rng.normal(0, 1, size=(n_series, n_days)), 0)

    history = world(days)
    future = world(horizon)
    # Each series' forecast is its correct marginal (mean 10, sd sqrt(10)), drawn independently of the others.
    paths = np.maximum(10 + rng.normal(0, np.sqrt(10), size=(n_series, n_paths, horizon)), 0)
    total = sum_by_group(np.zeros(n_series, dtype=np.int64), future)
    history_total = sum_by_group(np.zeros(n_series, dtype=np.int64), history)

    independent = score(total, sum_by_group(np.zeros(n_series, dtype=np.int64), paths), history_total)
    template = schaake_template(history, n_paths, horizon)
    shuffled = schaake_shuffle(paths, template)
    reordered = score(total, sum_by_group(np.zeros(n_series, dtype=np.int64), shuffled), history_total)
    assert independent.coverage_80 < 0.5
    assert reordered.coverage_80 > independent.coverage_80 + 0.25


def test_missing_history_does_not_break_the_template() -> None:
    history = np.full((2, 60), np.nan)
    history[0] = np.arange(60)
    template = schaake_template(history, n_paths=10, horizon=7)
    assert template.shape == (2, 10, 7)
    assert np.isfinite(template).all()
