"""Sums of store x SKU forecasts: the Schaake shuffle keeps each series' forecast and restores shared shocks; the
spread factor, fitted on past errors, makes intervals as wide as those errors were."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.demand.aggregation import (
    SPREAD_GRID,
    fit_spread,
    reconcile_to_total,
    schaake_shuffle,
    schaake_template,
    sum_by_group,
    widen,
)
from shelfwise.demand.backtest import BOTTOM, LEVELS, serving_spread
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


def test_widening_keeps_the_mean_and_scales_the_spread() -> None:
    rng = np.random.default_rng(2)
    paths = rng.normal(100, 5, size=(3, 400, 28))
    wide = widen(paths, 2.0)
    assert np.allclose(wide.mean(axis=1), paths.mean(axis=1))
    assert np.allclose(wide.std(axis=1), 2 * paths.std(axis=1))
    # Far below the mean the floor holds: no negative demand.
    assert widen(paths, 50.0).min() == 0.0


def _overconfident(spread_truth: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A forecast with the right mean whose paths are `spread_truth` times too narrow, and what happened."""
    rng = np.random.default_rng(seed)
    mean = rng.uniform(200, 400, size=(40, 1))
    paths = mean[:, :, None] + rng.normal(0, 10, size=(40, 300, 28))
    actual = mean + rng.normal(0, 10 * spread_truth, size=(40, 28))
    return paths, actual


def test_the_fitted_spread_recovers_how_much_too_narrow_the_paths_were() -> None:
    for truth in (0.5, 1.0, 3.0):
        paths, actual = _overconfident(truth, seed=3)
        assert abs(fit_spread(paths, actual) / truth - 1) < 0.15


def test_a_spread_fitted_on_one_window_calibrates_the_next() -> None:
    past_paths, past_actual = _overconfident(3.0, seed=4)
    paths, actual = _overconfident(3.0, seed=5)
    factor = fit_spread(past_paths, past_actual)
    before = score(actual, paths, np.tile(actual, 3)).coverage_80
    after = score(actual, widen(paths, factor), np.tile(actual, 3)).coverage_80
    assert before < 0.4
    assert 0.75 <= after <= 0.85


def test_censored_days_do_not_count_in_the_fit_and_nothing_known_keeps_the_paths() -> None:
    paths, actual = _overconfident(3.0, seed=6)
    observed = np.ones(actual.shape, dtype=bool)
    observed[:, ::2] = False
    with_gaps = np.where(observed, actual, paths.mean(axis=1))  # the hidden days look exactly like the forecast
    assert fit_spread(paths, with_gaps, observed) == fit_spread(paths[:, :, 1::2], actual[:, 1::2])
    assert fit_spread(paths, np.full(actual.shape, np.nan)) == 1.0
    assert 1.0 in SPREAD_GRID


def test_serving_takes_deepars_factors_only_where_they_were_fitted() -> None:
    spread = dict.fromkeys(LEVELS, 2.0)
    assert serving_spread("deepar", spread) == spread
    ensemble = serving_spread("deepar+autoets", spread)
    assert BOTTOM not in ensemble
    assert set(ensemble) == set(LEVELS) - {BOTTOM}
    assert serving_spread("autoets", spread) == {}


def test_reconciling_to_the_total_gives_the_sum_the_totals_distribution_and_keeps_each_series_share() -> None:
    rng = np.random.default_rng(7)
    paths = rng.poisson(rng.uniform(1, 6, size=(30, 1, 1)), size=(30, 200, 28)).astype(float)
    total = rng.normal(paths.sum(axis=0).mean() * 1.25, 15, size=(1, 200, 28))
    reconciled = reconcile_to_total(paths, total)
    assert np.allclose(np.sort(reconciled.sum(axis=0), axis=0), np.sort(total[0], axis=0))
    share = paths / paths.sum(axis=0, keepdims=True)
    assert np.allclose(reconciled / reconciled.sum(axis=0, keepdims=True), share)


def test_series_forecast_too_low_everywhere_are_lifted_by_a_right_total() -> None:
    # Every series' forecast is 20% short, which no series alone can tell; a right forecast of the total fixes all.
    rng = np.random.default_rng(8)
    means = rng.uniform(2, 8, size=(40, 1, 1))
    truth = rng.poisson(means[:, :, 0], size=(40, 28)).astype(float)
    short = rng.poisson(0.8 * means, size=(40, 300, 28)).astype(float)
    right_total = rng.poisson(means.sum(), size=(1, 300, 28)).astype(float)
    reconciled = reconcile_to_total(short, right_total)
    history = np.tile(truth, 4)
    assert score(truth, reconciled, history).bias == pytest.approx(0, abs=0.05)
    assert score(truth, short, history).bias < -0.15
    assert score(truth, reconciled, history).wql < score(truth, short, history).wql
