"""The demand features as a panel of daily series: one row per location x SKU, one column per day.

Days outside a series' selling life are NaN. `target`, what forecasters learn from, is also NaN on censored days (a
stockout hid the demand): forecasters treat NaN as missing, never as zero demand. `units` keeps what was sold on
them, which is what the stores' totals add up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shelfwise.demand.calendar import RegionalHolidays

KEY: tuple[str, str] = ("store_id", "sku")
#: Static attributes, in the order the forecasters read them as categorical features.
STATIC_ATTRIBUTES: tuple[str, ...] = ("store_id", "region", "format", "department", "category", "price_tier")


@dataclass(frozen=True)
class DemandPanel:
    """Daily series of one or more locations x SKUs over a common calendar."""

    keys: pd.DataFrame
    """One row per series: `store_id, sku` and the static attributes, in row order of `target`."""
    start: dt.date
    units: np.ndarray
    """(series, days) float32: units sold, NaN outside the series' selling life."""
    censored: np.ndarray
    """(series, days) bool: a stockout day."""
    start_index: np.ndarray
    """(series,) the first day of each series' selling life."""
    launch_index: np.ndarray
    """(series,) the SKU's launch day relative to `start` (negative when it launched earlier): for its age."""
    holidays: RegionalHolidays = field(default_factory=RegionalHolidays)
    """The regions' public holidays, past and coming: covariates of each series by its `region`."""

    @property
    def n_days(self) -> int:
        return int(self.units.shape[1])

    @property
    def target(self) -> np.ndarray:
        """Units sold, NaN on censored days too: what demand models learn from."""
        return np.where(self.censored, np.float32(np.nan), self.units)

    @property
    def end(self) -> dt.date:
        """The day after the last day of the panel."""
        return self.start + dt.timedelta(days=self.n_days)

    def head(self, n_days: int) -> DemandPanel:
        """The panel cut to its first `n_days` days (a backtest's history)."""
        return DemandPanel(
            self.keys,
            self.start,
            self.units[:, :n_days],
            self.censored[:, :n_days],
            self.start_index,
            self.launch_index,
            self.holidays,
        )

    def select(self, rows: np.ndarray) -> DemandPanel:
        """A subset of the series (boolean mask or indices)."""
        keys = self.keys[rows] if rows.dtype == bool else self.keys.iloc[rows]
        return DemandPanel(
            keys.reset_index(drop=True),
            self.start,
            self.units[rows],
            self.censored[rows],
            self.start_index[rows],
            self.launch_index[rows],
            self.holidays,
        )


def build_panel(daily: pd.DataFrame, static: pd.DataFrame, holidays: RegionalHolidays | None = None) -> DemandPanel:
    """The panel of the `demand_features` outputs (see `shelfwise.demand`), series ordered by (store_id, sku)."""
    missing = [c for c in (*KEY, "date", "units", "censored") if c not in daily.columns]
    if missing:
        raise ValueError(f"daily demand lacks column(s) {', '.join(missing)}")
    dates = pd.to_datetime(daily["date"]).dt.normalize()
    start = dates.min()
    day = ((dates - start) / pd.Timedelta(days=1)).astype(np.int64).to_numpy()
    n_days = int(day.max()) + 1

    keys = static.sort_values(list(KEY)).reset_index(drop=True)
    row_of = pd.Series(np.arange(len(keys)), index=pd.MultiIndex.from_frame(keys[list(KEY)]))
    rows = row_of.reindex(pd.MultiIndex.from_frame(daily[list(KEY)])).to_numpy()
    if np.isnan(rows.astype(float)).any():
        raise ValueError("daily demand has location x SKU pairs that the static table lacks")
    rows = rows.astype(np.int64)

    units = np.full((len(keys), n_days), np.nan, dtype=np.float32)
    units[rows, day] = daily["units"].to_numpy(dtype=np.float32)
    censored = np.zeros((len(keys), n_days), dtype=bool)
    censored[rows, day] = daily["censored"].to_numpy(dtype=bool)
    start_index = np.full(len(keys), n_days, dtype=np.int64)
    np.minimum.at(start_index, rows, day)
    launch = pd.to_datetime(keys["launch_date"]) if "launch_date" in keys else pd.Series(start, index=keys.index)
    launch_index = ((launch - start) / pd.Timedelta(days=1)).astype(np.int64).to_numpy()
    return DemandPanel(keys, start.date(), units, censored, start_index, launch_index, holidays or RegionalHolidays())


PANEL_ARRAYS = "panel.npz"
PANEL_KEYS = "keys.parquet"
PANEL_HOLIDAYS = "holidays.parquet"


def save_panel(panel: DemandPanel, folder: Path) -> None:
    """The panel as files: its arrays (`panel.npz`), its series' keys and attributes (`keys.parquet`) and the
    regional holidays (`holidays.parquet`)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        folder / PANEL_ARRAYS,
        units=panel.units,
        censored=panel.censored,
        start_index=panel.start_index,
        launch_index=panel.launch_index,
        start=np.array(panel.start.isoformat()),
    )
    panel.keys.to_parquet(folder / PANEL_KEYS, index=False)
    panel.holidays.to_frame().to_parquet(folder / PANEL_HOLIDAYS, index=False)


def load_panel(folder: Path) -> DemandPanel:
    holidays_file = folder / PANEL_HOLIDAYS
    holidays = RegionalHolidays.from_frame(pd.read_parquet(holidays_file)) if holidays_file.is_file() else None
    with np.load(folder / PANEL_ARRAYS) as arrays:
        return DemandPanel(
            keys=pd.read_parquet(folder / PANEL_KEYS),
            start=dt.date.fromisoformat(str(arrays["start"])),
            units=arrays["units"],
            censored=arrays["censored"],
            start_index=arrays["start_index"],
            launch_index=arrays["launch_index"],
            holidays=holidays or RegionalHolidays(),
        )
