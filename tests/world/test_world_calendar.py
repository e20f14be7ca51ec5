"""The retail calendar: movable feasts on their real dates, month chunks that tile the history."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pytest

from shelfwise.retail_calendar import black_friday, cyber_monday, easter_sunday
from shelfwise.world.calendar import (
    REGIONS,
    Calendar,
    holiday_effects,
    regional_holiday,
    weekly_profile,
    yearly_profile,
)


@pytest.mark.parametrize(
    ("year", "easter"),
    [(2000, dt.date(2000, 4, 23)), (2008, dt.date(2008, 3, 23)), (2011, dt.date(2011, 4, 24)),
     (2019, dt.date(2019, 4, 21)), (2023, dt.date(2023, 4, 9)), (2024, dt.date(2024, 3, 31)),
     (2038, dt.date(2038, 4, 25))],
)  # fmt: skip
def test_easter_falls_on_its_published_date(year: int, easter: dt.date) -> None:
    assert easter_sunday(year) == easter


def test_black_friday_follows_the_fourth_thursday_and_cyber_monday_the_weekend() -> None:
    assert black_friday(2023) == dt.date(2023, 11, 24)
    assert black_friday(2024) == dt.date(2024, 11, 29)
    assert cyber_monday(2024) == dt.date(2024, 12, 2)
    assert all(black_friday(y).weekday() == 4 and cyber_monday(y).weekday() == 0 for y in range(2000, 2040))


def test_month_chunks_tile_the_history() -> None:
    cal = Calendar(dt.date(2023, 1, 1), dt.date(2024, 12, 31))
    chunks = cal.month_chunks()
    assert len(chunks) == 24
    assert chunks[0] == (0, 31)
    assert chunks[1] == (31, 59)
    assert chunks[-1][1] == cal.n_days == 731
    assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))


def test_regional_holidays_lift_only_their_region() -> None:
    cal = Calendar(dt.date(2023, 1, 1), dt.date(2024, 12, 31))
    effects = holiday_effects(cal, REGIONS)
    for r, region in enumerate(REGIONS):
        _, day = regional_holiday(region, 2024)
        i = cal.index(day)
        assert effects.regional[r, i] > 1.3
        assert np.all(np.delete(effects.regional[:, i], r) == 1.0)


def test_unknown_region_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"unknown region 'atlantis'.*north"):
        regional_holiday("atlantis", 2024)


def test_profiles_average_to_one() -> None:
    assert weekly_profile(0, 1.3).mean() == pytest.approx(1.0)
    doy = np.arange(1, 366)
    assert yearly_profile(doy, 1.3, 185).mean() == pytest.approx(1.0, abs=0.01)
    assert yearly_profile(doy, 1.3, 185).argmax() + 1 == 185
