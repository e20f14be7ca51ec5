"""Last year's comparable days: a forecast of the total that knows where the retail calendar's peaks fall.

A network that has seen one Black Friday forecasts the next at about half its sales, and AutoETS has no yearly season
at all: on the default world both miss the total of November and December by 13-24%. A planner's answer is last year's
comparable days scaled by the growth since: Black Friday week is compared by its offset from Thanksgiving, Easter by
its offset from Easter, December by its date (Christmas is a date; a weekday correction from recent weeks makes up
for the shifted weekdays), any other day with the same weekday 52 weeks before. It needs a year of history plus the
growth window; with less, there is no forecast and the caller falls back.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from shelfwise.retail_calendar import easter_sunday, thanksgiving

#: Days before the forecast whose growth over their comparable days scales last year.
GROWTH_DAYS = 28
#: Days before the forecast whose median per weekday corrects December's date-aligned days.
WEEKDAY_DAYS = 56
_BLACK_FRIDAY_WEEK = range(-7, 8)  # days from Thanksgiving
_EASTER = range(-7, 2)  # days from Easter Sunday


def comparable_day(day: dt.date) -> dt.date:
    """The day last year that `day` is compared with."""
    from_thanksgiving = (day - thanksgiving(day.year)).days
    if from_thanksgiving in _BLACK_FRIDAY_WEEK:
        return thanksgiving(day.year - 1) + dt.timedelta(days=from_thanksgiving)
    from_easter = (day - easter_sunday(day.year)).days
    if from_easter in _EASTER:
        return easter_sunday(day.year - 1) + dt.timedelta(days=from_easter)
    if day.month == 12:
        return day.replace(year=day.year - 1)
    return day - dt.timedelta(days=364)


def weekday_profile(values: np.ndarray, first_day: dt.date) -> np.ndarray:
    """(7,) median of `values` (daily, from `first_day`) per weekday, Monday first, scaled to mean 1; medians, so
    one Black Friday does not make every Friday busy."""
    weekdays = (first_day.weekday() + np.arange(values.size)) % 7
    medians = np.array([np.median(values[weekdays == w]) for w in range(7)])
    profile: np.ndarray = medians / medians.mean()
    return profile


def comparable_days_forecast(total: np.ndarray, start: dt.date, horizon: int) -> np.ndarray | None:
    """(horizon,) daily mean forecast of the days after `total` (daily values from `start`): last year's comparable
    days times the growth of the last `GROWTH_DAYS` over theirs, December's weekdays corrected; None without enough
    history."""
    end = start + dt.timedelta(days=total.size)

    def value(day: dt.date) -> float | None:
        index = (day - start).days
        return float(total[index]) if 0 <= index < total.size and np.isfinite(total[index]) else None

    recent = [end - dt.timedelta(days=d) for d in range(GROWTH_DAYS, 0, -1)]
    before = [value(comparable_day(day)) for day in recent]
    if total.size < WEEKDAY_DAYS or any(v is None for v in before):
        return None
    then = float(sum(v for v in before if v is not None))
    if then <= 0:
        return None
    growth = float(np.nansum(total[-GROWTH_DAYS:])) / then
    profile = weekday_profile(total[-WEEKDAY_DAYS:], end - dt.timedelta(days=WEEKDAY_DAYS))
    if not np.all(profile > 0):  # a weekday without sales: no correction rather than a division by zero
        profile = np.ones(7)
    forecast = np.zeros(horizon)
    for h in range(horizon):
        day = end + dt.timedelta(days=h)
        last_year = comparable_day(day)
        compared = value(last_year)
        if compared is None:
            return None
        forecast[h] = compared * growth * profile[day.weekday()] / profile[last_year.weekday()]
    return forecast
