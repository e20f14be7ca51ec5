"""Calendar covariates known in advance: retail events and their lead-up days, for any date, past or future.

Day of week, month and day of year are the forecaster's own time features; these are the events that move on the
calendar (Easter, Black Friday) or whose build-up a weekly or yearly cycle cannot express (the Christmas run-up).
Each covariate is 0 outside its event, so a model learns its effect only from the days it applies to.

Regional holidays differ by series: a store's region's holidays, from the retailer's calendar (the raw table
`regional_holidays`), give `REGIONAL_COVARIATES`; a location whose region has none (the online store) keeps zeros.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shelfwise.retail_calendar import black_friday, easter_sunday, thanksgiving

_DAY = dt.timedelta(days=1)


def _black_friday_days(year: int) -> dict[dt.date, dict[str, float]]:
    tg = thanksgiving(year)
    days: dict[dt.date, dict[str, float]] = {}
    for offset in (-3, -2, -1):
        days[tg + offset * _DAY] = {"black_friday_lead_up": 1.0}
    days[tg] = {"thanksgiving": 1.0}
    days[black_friday(year)] = {"black_friday": 1.0}
    for offset in (2, 3):
        days[tg + offset * _DAY] = {"black_friday_weekend": 1.0}
    days[tg + 4 * _DAY] = {"cyber_monday": 1.0}
    return days


def _christmas_days(year: int) -> dict[dt.date, dict[str, float]]:
    # The run-up is a ramp: the 23rd is busier than the 1st, by an amount the model learns.
    days: dict[dt.date, dict[str, float]] = {dt.date(year, 12, d): {"christmas_run_up": d / 23} for d in range(1, 24)}
    days[dt.date(year, 12, 24)] = {"christmas_eve": 1.0}
    days[dt.date(year, 12, 25)] = {"christmas_day": 1.0}
    for d in range(26, 32):
        days[dt.date(year, 12, d)] = {"boxing_week": 1.0}
    days[dt.date(year, 1, 1)] = {"new_years_day": 1.0}
    for d in range(2, 32):
        days[dt.date(year, 1, d)] = {"january": 1 - (d - 2) / 30}
    return days


def _easter_days(year: int) -> dict[dt.date, dict[str, float]]:
    easter = easter_sunday(year)
    days: dict[dt.date, dict[str, float]] = {easter + o * _DAY: {"easter_lead_up": 1.0} for o in range(-6, -2)}
    days[easter - 2 * _DAY] = {"good_friday": 1.0}
    days[easter - _DAY] = {"holy_saturday": 1.0}
    days[easter] = {"easter_sunday": 1.0}
    days[easter + _DAY] = {"easter_monday": 1.0}
    return days


_EVENT_BUILDERS: tuple[Callable[[int], dict[dt.date, dict[str, float]]], ...] = (
    _black_friday_days,
    _christmas_days,
    _easter_days,
)

#: The covariates, in the row order of `calendar_covariates`.
COVARIATES: tuple[str, ...] = (
    "black_friday_lead_up",
    "thanksgiving",
    "black_friday",
    "black_friday_weekend",
    "cyber_monday",
    "christmas_run_up",
    "christmas_eve",
    "christmas_day",
    "boxing_week",
    "new_years_day",
    "january",
    "easter_lead_up",
    "good_friday",
    "holy_saturday",
    "easter_sunday",
    "easter_monday",
)


def calendar_covariates(start: dt.date, n_days: int) -> np.ndarray:
    """The covariates of `n_days` consecutive days from `start`: shape (len(COVARIATES), n_days), float32."""
    if n_days < 0:
        raise ValueError(f"n_days must be >= 0, got {n_days}")
    out = np.zeros((len(COVARIATES), n_days), dtype=np.float32)
    if n_days == 0:
        return out
    end = start + (n_days - 1) * _DAY
    row = {name: i for i, name in enumerate(COVARIATES)}
    for year in range(start.year, end.year + 1):
        for build in _EVENT_BUILDERS:
            for day, values in build(year).items():
                index = (day - start).days
                if 0 <= index < n_days:
                    for name, value in values.items():
                        out[row[name], index] = value
    return out


def covariate_frame(start: dt.date, n_days: int) -> pd.DataFrame:
    """The covariates as a frame indexed by date (for reports and inspection)."""
    index = pd.date_range(start, periods=n_days, freq="D")
    return pd.DataFrame(calendar_covariates(start, n_days).T, index=index, columns=list(COVARIATES))


#: The covariates of a series' own region, after `COVARIATES` in the dynamic features.
REGIONAL_COVARIATES: tuple[str, ...] = ("regional_holiday_eve", "regional_holiday")
ALL_COVARIATES: tuple[str, ...] = (*COVARIATES, *REGIONAL_COVARIATES)


@dataclass(frozen=True)
class RegionalHolidays:
    """The public holidays of each region, as the retailer's calendar lists them."""

    dates: dict[str, tuple[dt.date, ...]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, dt.date]]) -> RegionalHolidays:
        by_region: dict[str, set[dt.date]] = {}
        for region, date in rows:
            by_region.setdefault(str(region), set()).add(date)
        return cls({region: tuple(sorted(days)) for region, days in sorted(by_region.items())})

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> RegionalHolidays:
        """From a table with columns `region, date`; a row missing either is an error naming the column."""
        for column in ("region", "date"):
            if column not in frame.columns:
                raise ValueError(f"regional holidays lack column {column!r}")
            if frame[column].isna().any():
                raise ValueError(f"regional holidays have rows without a {column}")
        dates = pd.to_datetime(frame["date"]).dt.date
        return cls.from_rows(zip(frame["region"].astype(str), dates, strict=True))

    def to_frame(self) -> pd.DataFrame:
        rows = [(region, day) for region, days in self.dates.items() for day in days]
        return pd.DataFrame(rows, columns=["region", "date"]).astype({"region": str})

    def covariates(self, region: str, start: dt.date, n_days: int) -> np.ndarray:
        """`REGIONAL_COVARIATES` of one region over `n_days` from `start`: shape (2, n_days), float32."""
        out = np.zeros((len(REGIONAL_COVARIATES), n_days), dtype=np.float32)
        for day in self.dates.get(region, ()):
            index = (day - start).days
            for row, at in ((0, index - 1), (1, index)):
                if 0 <= at < n_days:
                    out[row, at] = 1.0
        return out
