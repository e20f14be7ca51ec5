"""Last year's comparable days: Black Friday week by Thanksgiving, Easter by Easter, December by date, else 52 weeks
back; the forecast of the total built on them, and the fallback without a year of history."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shelfwise.demand.aggregation import total_forecast
from shelfwise.demand.comparable_days import comparable_day, comparable_days_forecast
from shelfwise.demand.series import DemandPanel
from shelfwise.retail_calendar import black_friday, cyber_monday, easter_sunday

START = dt.date(2023, 1, 1)
WEEKLY = np.array([0.8, 0.8, 0.9, 0.9, 1.1, 1.5, 1.0])


def test_peaks_are_compared_with_last_years_same_peak_and_other_days_with_the_same_weekday() -> None:
    assert comparable_day(black_friday(2024)) == black_friday(2023)
    assert comparable_day(cyber_monday(2024)) == cyber_monday(2023)  # 2024-12-02, compared by Thanksgiving first
    assert comparable_day(easter_sunday(2024) - dt.timedelta(days=2)) == easter_sunday(2023) - dt.timedelta(days=2)
    assert comparable_day(dt.date(2024, 12, 24)) == dt.date(2023, 12, 24)
    ordinary = dt.date(2024, 7, 1)
    assert comparable_day(ordinary) == ordinary - dt.timedelta(days=364)
    assert comparable_day(ordinary).weekday() == ordinary.weekday()


def _retail_total(days: int, growth_per_year: float = 0.2) -> np.ndarray:
    """A total with weekdays, growth, a Black Friday four times a normal day and a Christmas Eve peak."""
    dates = [START + dt.timedelta(days=d) for d in range(days)]
    total = np.array([1000 * WEEKLY[d.weekday()] * (1 + growth_per_year) ** ((d - START).days / 365) for d in dates])
    for i, d in enumerate(dates):
        if d == black_friday(d.year):
            total[i] *= 4
        if d.month == 12 and d.day == 24:
            total[i] *= 2.5
    return total


def test_the_forecast_finds_black_friday_and_christmas_eve_and_the_growth_since_last_year() -> None:
    total = _retail_total(800)
    cutoff = (dt.date(2024, 11, 20) - START).days  # the forecast starts nine days before Black Friday
    forecast = comparable_days_forecast(total[:cutoff], START, 28)
    assert forecast is not None
    actual = total[cutoff : cutoff + 28]
    assert np.argmax(forecast) == np.argmax(actual) == (black_friday(2024) - dt.date(2024, 11, 20)).days
    np.testing.assert_allclose(forecast, actual, rtol=0.03)
    december = (dt.date(2024, 12, 10) - START).days
    forecast = comparable_days_forecast(total[:december], START, 28)
    assert forecast is not None
    # Christmas Eve falls on a Sunday in 2023 and a Tuesday in 2024: the weekday correction moves it.
    np.testing.assert_allclose(forecast, total[december : december + 28], rtol=0.03)


def test_less_than_a_year_of_history_gives_no_forecast() -> None:
    total = _retail_total(380)
    assert comparable_days_forecast(total, START, 28) is None
    assert comparable_days_forecast(_retail_total(400), START, 28) is not None


def _panel(units: np.ndarray) -> DemandPanel:
    import pandas as pd

    n = units.shape[0]
    starts = np.zeros(n, dtype=np.int64)
    return DemandPanel(
        pd.DataFrame({"series": range(n)}), START, units, np.zeros(units.shape, dtype=bool), starts, starts
    )


def test_the_total_moves_summed_paths_to_the_comparable_days_and_keeps_their_spread() -> None:
    total = _retail_total(731)
    cutoff = (dt.date(2024, 11, 20) - START).days
    history = _panel(np.tile(total[:cutoff] / 4, (4, 1)).astype(np.float32))
    rng = np.random.default_rng(0)
    low = rng.normal(0.5 * total[cutoff : cutoff + 28] / 4, 10, size=(4, 100, 28))  # series forecast half as high
    moved = total_forecast(history, low)
    np.testing.assert_allclose(moved.mean(axis=1)[0], total[cutoff : cutoff + 28], rtol=0.03)
    relative = low.sum(axis=0).std(axis=0) / low.sum(axis=0).mean(axis=0)
    np.testing.assert_allclose(moved[0].std(axis=0) / moved[0].mean(axis=0), relative, rtol=1e-6)


def test_without_a_year_of_history_the_total_is_the_mean_of_the_sums_and_autoets() -> None:
    total = _retail_total(200)
    history = _panel(np.tile(total / 4, (4, 1)).astype(np.float32))
    paths = np.random.default_rng(0).normal(250, 10, size=(4, 50, 28))
    result = total_forecast(history, paths)
    assert result.shape == (1, 50, 28)
    # Vincentized: sorted along the paths, and not the sums moved to any comparable day.
    assert np.all(np.diff(result[0], axis=0) >= 0)
    assert result.mean() == pytest.approx(np.mean([paths.sum(axis=0).mean(), total[-28:].mean()]), rel=0.15)


def test_each_location_is_reconciled_to_its_own_peaks_where_the_total_would_blur_them() -> None:
    import pandas as pd

    from shelfwise.demand.aggregation import reconcile_by_location, reconcile_to_total

    days = 731
    store, online = _retail_total(days), _retail_total(days)
    for year in (2023, 2024):  # Black Friday is a store day, Cyber Monday an online one
        online[(black_friday(year) - START).days] /= 4
        online[(cyber_monday(year) - START).days] *= 4
    cutoff = (dt.date(2024, 11, 20) - START).days
    units = np.stack([store / 2, store / 2, online / 2, online / 2])[:, :cutoff].astype(np.float32)
    keys = pd.DataFrame({"store_id": ["S1", "S1", "online", "online"], "sku": ["a", "b", "a", "b"]})
    starts = np.zeros(4, dtype=np.int64)
    history = DemandPanel(keys, START, units, np.zeros(units.shape, dtype=bool), starts, starts)
    flat = np.random.default_rng(0).normal(1000 / 2 * 1.2, 20, size=(4, 100, 28)).clip(0)  # no peak at all
    by_location = reconcile_by_location(history, flat)
    first = dt.date(2024, 11, 20)
    friday, monday = (black_friday(2024) - first).days, (cyber_monday(2024) - first).days
    expected_store, expected_online = store[cutoff : cutoff + 28], online[cutoff : cutoff + 28]
    np.testing.assert_allclose(by_location[:2].sum(axis=0).mean(axis=0), expected_store, rtol=0.05)
    np.testing.assert_allclose(by_location[2:].sum(axis=0).mean(axis=0), expected_online, rtol=0.05)
    # The total alone gets the sum right but gives the stores a share of Cyber Monday's online peak.
    to_total = reconcile_to_total(flat, total_forecast(history, flat))
    stores_monday = to_total[:2].sum(axis=0).mean(axis=0)[monday]
    assert stores_monday > 1.5 * expected_store[monday]
    assert by_location[:2].sum(axis=0).mean(axis=0)[friday] > 3 * by_location[2:].sum(axis=0).mean(axis=0)[friday]


def test_a_location_open_less_than_a_year_is_reconciled_with_the_others_to_their_total() -> None:
    import pandas as pd

    from shelfwise.demand.aggregation import reconcile_by_location, reconcile_to_total

    total = _retail_total(731)
    cutoff = (dt.date(2024, 11, 20) - START).days
    opened = cutoff - 380  # a year ago it was open for only part of the four weeks growth is measured on
    units = np.stack([total / 2, total / 2, total / 2])[:, :cutoff].astype(np.float32)
    units[2, :opened] = np.nan  # a new store: the days before it opened are no comparable days
    keys = pd.DataFrame({"store_id": ["S1", "S1", "new"], "sku": ["a", "b", "a"]})
    starts = np.array([0, 0, opened])
    history = DemandPanel(keys, START, units, np.zeros(units.shape, dtype=bool), starts, starts)
    flat = np.random.default_rng(0).normal(600, 20, size=(3, 100, 28)).clip(0)
    reconciled = reconcile_by_location(history, flat)
    np.testing.assert_allclose(reconciled[:2].sum(axis=0).mean(axis=0), total[cutoff : cutoff + 28], rtol=0.05)
    alone = reconcile_to_total(flat[2:], total_forecast(history.select(np.array([2])), flat[2:]))
    np.testing.assert_allclose(reconciled[2:], alone)
    # Its few comparable days do not pass for a year's growth: the forecast stays near its own level.
    assert reconciled[2].mean() < 1.3 * np.mean(total[cutoff : cutoff + 28] / 2)
