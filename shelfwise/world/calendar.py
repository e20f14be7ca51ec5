"""The world's calendar: the holiday effects on demand, and weekly and yearly seasonality.

Holiday effects are multiplicative curves per channel (store, online). A category scales each national curve by
its own sensitivity (an exponent), so toys feel Christmas and pantry staples barely do; closures and regional
holidays act on every category alike.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

import numpy as np

from shelfwise.retail_calendar import easter_sunday, thanksgiving
from shelfwise.world.arrays import FloatArray, IntArray

STORE, ONLINE = 0, 1
CHANNELS = ("store", "online")
#: National events whose curves categories respond to with their own sensitivity.
EVENTS = ("black_friday", "christmas", "easter", "january")
REGIONS = ("north", "south", "east", "west", "central")

#: Day-of-week demand shape (Monday first) of each channel before a category's strength is applied.
_WEEKLY_STORE = np.array([0.80, 0.78, 0.84, 0.92, 1.12, 1.52, 1.02])
_WEEKLY_ONLINE = np.array([1.16, 1.10, 1.04, 0.98, 0.86, 0.80, 1.06])


@dataclass(frozen=True)
class Calendar:
    """The simulated days, as day indices from `start`."""

    start: dt.date
    end: dt.date

    @property
    def n_days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def dates(self) -> np.ndarray:
        return np.arange(np.datetime64(self.start, "D"), np.datetime64(self.end, "D") + 1)

    @property
    def weekday(self) -> IntArray:
        """0 = Monday."""
        return ((self.dates.astype(np.int64) + 3) % 7).astype(np.int64)

    @property
    def day_of_year(self) -> IntArray:
        years = self.dates.astype("datetime64[Y]")
        doy: IntArray = (self.dates - years.astype("datetime64[D]")).astype(np.int64) + 1
        return doy

    def index(self, day: dt.date) -> int:
        return (day - self.start).days

    def date(self, index: int) -> dt.date:
        return self.start + dt.timedelta(days=index)

    def month_chunks(self) -> list[tuple[int, int]]:
        """[start, stop) day indices of each calendar month."""
        months = self.dates.astype("datetime64[M]")
        cuts = np.flatnonzero(months[1:] != months[:-1]) + 1
        bounds = [0, *cuts.tolist(), self.n_days]
        return list(itertools.pairwise(bounds))


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def regional_holiday(region: str, year: int) -> tuple[str, dt.date]:
    """The one public holiday of a region (name, date); shops in that region are busier that day."""
    if region == "north":
        return "North Heritage Day", dt.date(year, 3, 17)
    if region == "south":
        return "Carnival Tuesday", easter_sunday(year) - dt.timedelta(days=47)
    if region == "east":
        return "Harvest Festival", dt.date(year, 8, 15)
    if region == "west":
        return "Founders Day", _nth_weekday(year, 10, 0, 2)
    if region == "central":
        return "Midsummer Day", dt.date(year, 6, 24)
    raise ValueError(f"unknown region {region!r}; valid regions: {', '.join(REGIONS)}")


@dataclass(frozen=True)
class HolidayDay:
    """One day on which a holiday effect applies (a row of `truth/holidays.parquet`)."""

    date: dt.date
    event: str
    name: str
    region: str | None
    store_multiplier: float
    online_multiplier: float


@dataclass(frozen=True)
class HolidayEffects:
    """Multiplicative holiday curves over the calendar's days."""

    log_curves: FloatArray  # (event, channel, day): log multiplier before a category's sensitivity
    closure: FloatArray  # (channel, day): opening-hours factor, 0 = closed
    regional: FloatArray  # (region, day): multiplier on physical stores of the region
    days: tuple[HolidayDay, ...]


class _Builder:
    def __init__(self, cal: Calendar, regions: tuple[str, ...]) -> None:
        self.cal = cal
        self.regions = regions
        self.log_curves = np.zeros((len(EVENTS), 2, cal.n_days))
        self.closure = np.ones((2, cal.n_days))
        self.regional = np.ones((len(regions), cal.n_days))
        self.days: list[HolidayDay] = []

    def event(self, event: str, name: str, day: dt.date, store: float, online: float) -> None:
        i = self.cal.index(day)
        if 0 <= i < self.cal.n_days:
            self.log_curves[EVENTS.index(event), :, i] = np.log([store, online])
            self.days.append(HolidayDay(day, event, name, None, store, online))

    def close(self, name: str, day: dt.date, store: float, online: float) -> None:
        i = self.cal.index(day)
        if 0 <= i < self.cal.n_days:
            self.closure[:, i] = (store, online)
            self.days.append(HolidayDay(day, "closure", name, None, store, online))

    def region(self, region: str, name: str, day: dt.date, lift: float) -> None:
        i = self.cal.index(day)
        if 0 <= i < self.cal.n_days:
            self.regional[self.regions.index(region), i] = lift
            self.days.append(HolidayDay(day, "regional", name, region, lift, 1.0))


def _add_year(b: _Builder, year: int) -> None:
    day = dt.timedelta(days=1)
    tg = thanksgiving(year)
    # Black Friday week: early deals, closed-ish Thanksgiving, the Friday spike, Cyber Monday mostly online.
    for offset, store, online in (
        (-3, 1.4, 1.5),
        (-2, 1.4, 1.5),
        (-1, 1.5, 1.6),
        (0, 1.0, 2.0),
        (1, 4.0, 3.0),
        (2, 2.2, 1.8),
        (3, 1.6, 1.9),
        (4, 1.15, 4.5),
        (5, 1.05, 1.6),
    ):
        name = {0: "Thanksgiving", 1: "Black Friday", 4: "Cyber Monday"}.get(offset, "Black Friday week")
        b.event("black_friday", name, tg + offset * day, store, online)
    b.close("Thanksgiving", tg, 0.5, 1.0)
    # Christmas run-up: stores climb to the 23rd; online peaks earlier (shipping cut-off) and fades.
    for d in range(1, 24):
        store = 1.15 + (2.3 - 1.15) * (d - 1) / 22
        online = 1.2 + 0.8 * min(d, 17) / 17 - (0.6 if d > 19 else 0.0)
        b.event("christmas", "Christmas season", dt.date(year, 12, d), store, online)
    b.event("christmas", "Christmas Eve", dt.date(year, 12, 24), 1.6, 0.6)
    b.close("Christmas Eve", dt.date(year, 12, 24), 0.7, 1.0)
    b.close("Christmas Day", dt.date(year, 12, 25), 0.0, 0.5)
    for d in range(26, 32):
        b.event("christmas", "Boxing Day sales" if d == 26 else "Christmas season", dt.date(year, 12, d), 1.3, 1.3)
    # January drop after the spending spree, recovering over the month.
    b.close("New Year's Day", dt.date(year, 1, 1), 0.3, 0.8)
    for d in range(2, 32):
        level = 0.62 + 0.33 * (d - 2) / 29
        b.event("january", "January drop", dt.date(year, 1, d), level, level)
    # Easter: the week before, Good Friday and Saturday peaks, stores shut on Sunday.
    easter = easter_sunday(year)
    for offset, store, online, name in (
        (-6, 1.1, 1.1, "Holy week"),
        (-5, 1.1, 1.1, "Holy week"),
        (-4, 1.15, 1.1, "Holy week"),
        (-3, 1.25, 1.1, "Maundy Thursday"),
        (-2, 1.5, 1.0, "Good Friday"),
        (-1, 2.0, 1.0, "Holy Saturday"),
        (0, 1.0, 0.8, "Easter Sunday"),
        (1, 1.2, 1.1, "Easter Monday"),
    ):
        b.event("easter", name, easter + offset * day, store, online)
    b.close("Easter Sunday", easter, 0.0, 1.0)
    for region in b.regions:
        name, date = regional_holiday(region, year)
        b.region(region, f"Eve of {name}", date - day, 1.15)
        b.region(region, name, date, 1.6)


def holiday_effects(cal: Calendar, regions: tuple[str, ...]) -> HolidayEffects:
    """Every holiday curve over the calendar, for the given regions."""
    builder = _Builder(cal, regions)
    for year in range(cal.start.year, cal.end.year + 1):
        _add_year(builder, year)
    days = tuple(sorted(builder.days, key=lambda h: (h.date, h.event, h.region or "")))
    return HolidayEffects(builder.log_curves, builder.closure, builder.regional, days)


def weekly_profile(channel: int, strength: float) -> FloatArray:
    """Day-of-week multipliers (Monday first, mean 1); strength 0 is flat, 1 the channel's typical shape."""
    shape = (_WEEKLY_STORE if channel == STORE else _WEEKLY_ONLINE) ** strength
    result: FloatArray = shape / shape.mean()
    return result


def yearly_profile(day_of_year: IntArray, amplitude: float, peak_day: float) -> FloatArray:
    """A smooth annual cycle peaking on `peak_day`, mean 1 over the year (von Mises shape)."""
    angle = 2 * np.pi * (day_of_year - peak_day) / 365.25
    result: FloatArray = np.exp(amplitude * np.cos(angle)) / np.i0(amplitude)
    return result
