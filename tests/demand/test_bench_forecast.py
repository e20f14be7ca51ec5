"""`shelfwise bench forecast`'s peak weeks and regional holidays: scored on their own days (and, for a regional
holiday, at its region's stores) only, for every candidate."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from shelfwise.bench.forecast import event_weeks
from shelfwise.demand.backtest import CANDIDATES, RECONCILED, BacktestResult, SampledWindow
from shelfwise.demand.calendar import RegionalHolidays


def test_peak_weeks_are_scored_on_their_own_days() -> None:
    rng = np.random.default_rng(0)
    cutoff = dt.date(2024, 11, 6)  # Thanksgiving week (Nov 25 .. Dec 2) inside; Christmas week is not
    sales = rng.poisson(5, size=(4, 28)).astype(float)
    paths = {model: rng.poisson(5, size=(4, 50, 28)).astype(float) for model in CANDIDATES if "+" not in model}
    paths[RECONCILED] = rng.poisson(5, size=(4, 50, 28)).astype(float)
    # DeepAR knew the future exactly in the peak week only.
    peak = slice((dt.date(2024, 11, 25) - cutoff).days, (dt.date(2024, 12, 2) - cutoff).days + 1)
    paths["deepar"][:, :, peak] = sales[:, None, peak]
    keys = pd.DataFrame({"store_id": ["S"] * 4, "sku": list("abcd"), "region": "north"})
    window = SampledWindow(cutoff, keys, paths, sales, None, [])
    weeks = event_weeks(BacktestResult([], {}, 4, [window], {}), RegionalHolidays())
    assert list(weeks) == ["Black Friday week"]
    assert weeks["Black Friday week"]["deepar"] == pytest.approx(0.0)
    assert weeks["Black Friday week"]["seasonal_naive"] > 0.1
    assert set(weeks["Black Friday week"]) == {*CANDIDATES, RECONCILED}


def test_a_regional_holiday_is_scored_at_its_regions_stores_on_the_day_and_its_eve() -> None:
    rng = np.random.default_rng(1)
    cutoff = dt.date(2024, 10, 9)
    sales = rng.poisson(5, size=(4, 28)).astype(float)
    paths = {m: rng.poisson(5, size=(4, 50, 28)).astype(float) for m in (*CANDIDATES, RECONCILED) if "+" not in m}
    keys = pd.DataFrame(
        {"store_id": ["W1", "W2", "N1", "N2"], "sku": "a", "region": ["west", "west", "north", "north"]}
    )
    holiday = dt.date(2024, 10, 14)
    days = [(holiday - cutoff).days - 1, (holiday - cutoff).days]
    # Exact on the west stores' eve and holiday only; everywhere else as wrong as the others.
    paths["deepar"][:2, :, days] = sales[:2, None, days]
    window = SampledWindow(cutoff, keys, paths, sales, None, [])
    weeks = event_weeks(BacktestResult([], {}, 4, [window], {}), RegionalHolidays.from_rows([("west", holiday)]))
    assert list(weeks) == ["regional holidays and eves"]
    assert weeks["regional holidays and eves"]["deepar"] == pytest.approx(0.0)
    assert weeks["regional holidays and eves"]["autoets"] > 0.1
