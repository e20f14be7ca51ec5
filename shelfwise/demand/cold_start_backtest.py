"""The cold-start model measured on launches: at each of the last windows of 28 days, the series that launched in
the four weeks before the window (the batch forecast's cold starts: 1 to 27 days of sales) and those launching inside
it (no sales yet; their launch date is the catalogue's) are forecast from the history before the window by the
attribute model (`shelfwise.demand.cold_start`), the category average and optionally another forecaster (DeepAR),
and scored on the window against what happened (`shelfwise.demand.metrics`).

Nothing of a window reaches its forecasts: the models are fitted on the history before it, and a series launching
inside it is known by its attributes and launch date only. The series' own days before their launch and after the
panel's end are left out of the scores (they are NaN in the actuals). A series launches when it starts selling at
its location: a new SKU, or any SKU at a store that opened.
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shelfwise.demand.backtest import window_cutoffs
from shelfwise.demand.batch_forecast import COLD_START_DAYS
from shelfwise.demand.cold_start import AttributeEstimator, ColdStartSettings, category_average_paths
from shelfwise.demand.metrics import Scores, score
from shelfwise.demand.models import HORIZON
from shelfwise.demand.series import DemandPanel

ATTRIBUTE_MODEL = "attribute model"
CATEGORY_AVERAGE = "category average"
BEFORE = "launched 1-27 days before"
INSIDE = "launching in the window"
ALL = "all launches"
GROUPS: tuple[str, ...] = (BEFORE, INSIDE, ALL)

#: Paths of the history before a window for the launch series given (a subset of that history's series).
Forecaster = Callable[[DemandPanel, DemandPanel], np.ndarray]


@dataclass(frozen=True)
class LaunchBacktest:
    cutoffs: list[dt.date]
    #: scores[against][group][model]; `against` is "true demand" (when known) and "sales" (censored days left out).
    scores: dict[str, dict[str, dict[str, Scores]]]
    #: Launch series (one per window they are scored in) and distinct SKUs per group.
    series: dict[str, int]
    skus: dict[str, int]
    seconds: dict[str, float]


def launch_rows(panel: DemandPanel, at: int, horizon: int = HORIZON) -> dict[str, np.ndarray]:
    """Rows of the series launched in the `COLD_START_DAYS - 1` days before day `at` and of those launching in the
    `horizon` days from it."""
    start = panel.start_index
    return {
        BEFORE: np.flatnonzero((start > at - COLD_START_DAYS) & (start < at)),
        INSIDE: np.flatnonzero((start >= at) & (start < at + horizon)),
    }


def run_launch_backtest(
    panel: DemandPanel,
    truth: np.ndarray | None = None,
    windows: int = 8,
    n_paths: int = 200,
    seed: int = 0,
    settings: ColdStartSettings | None = None,
    others: dict[str, Forecaster] | None = None,
) -> LaunchBacktest:
    """Score the attribute model, the category average and `others` on the launches of the last `windows` windows.

    `truth` (series, days), aligned with `panel`, is the uncensored demand where known (the synthetic world).
    """
    cutoffs = window_cutoffs(panel.end, HORIZON, windows)
    estimator = AttributeEstimator(settings or ColdStartSettings())
    seconds = {"fit": 0.0, "predict": 0.0}
    parts: list[_Window] = []
    for cutoff in cutoffs:
        at = (cutoff - panel.start).days
        history = panel.head(at)
        rows = launch_rows(panel, at)
        chosen = np.concatenate([rows[BEFORE], rows[INSIDE]])
        if chosen.size == 0:
            continue
        series = history.select(chosen)
        started = time.perf_counter()
        predictor = estimator.train(history)
        seconds["fit"] += time.perf_counter() - started
        started = time.perf_counter()
        paths = {ATTRIBUTE_MODEL: predictor.predict(series, HORIZON, n_paths, seed)}
        seconds["predict"] += time.perf_counter() - started
        paths[CATEGORY_AVERAGE] = category_average_paths(history, series, n_paths, seed, HORIZON, settings)
        for name, forecaster in (others or {}).items():
            started = time.perf_counter()
            paths[name] = forecaster(history, series)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
        window = slice(at, at + HORIZON)
        actual = {"sales": panel.target[chosen, window]}
        if truth is not None:
            actual["true demand"] = truth[chosen, window]
        parts.append(
            _Window(
                group=np.repeat([BEFORE, INSIDE], [len(rows[BEFORE]), len(rows[INSIDE])]),
                sku=series.keys["sku"].astype(str).to_numpy(),
                actual=actual,
                # Left-padded to the panel's width, so that every window's histories stack.
                history=np.pad(series.target, ((0, 0), (panel.n_days - at, 0)), constant_values=np.nan),
                paths=paths,
            )
        )
    if not parts:
        raise ValueError(f"no series launch in the {windows} windows from {cutoffs[0]} or the 4 weeks before")
    return _scored(parts, cutoffs, seconds)


@dataclass(frozen=True)
class _Window:
    group: np.ndarray
    sku: np.ndarray
    actual: dict[str, np.ndarray]
    history: np.ndarray
    paths: dict[str, np.ndarray]


def _scored(parts: list[_Window], cutoffs: list[dt.date], seconds: dict[str, float]) -> LaunchBacktest:
    """Every window's launches scored together, per group and model."""
    group = np.concatenate([p.group for p in parts])
    skus = np.concatenate([p.sku for p in parts])
    history = np.concatenate([p.history for p in parts])
    paths = {m: np.concatenate([p.paths[m] for p in parts]) for m in parts[0].paths}
    members = {name: np.ones(len(group), dtype=bool) if name == ALL else group == name for name in GROUPS}
    scores: dict[str, dict[str, dict[str, Scores]]] = {}
    for against in parts[0].actual:
        actual = np.concatenate([p.actual[against] for p in parts])
        with warnings.catch_warnings():
            # A series launching inside its window has no history, hence no scale: left out of MASE and RMSSE.
            warnings.simplefilter("ignore", RuntimeWarning)
            scores[against] = {
                name: {m: score(actual[rows], p[rows], history[rows]) for m, p in paths.items()}
                for name, rows in members.items()
                if rows.any()
            }
    return LaunchBacktest(
        cutoffs,
        dict(sorted(scores.items(), key=lambda item: item[0] != "true demand")),
        {name: int(rows.sum()) for name, rows in members.items()},
        {name: len(set(skus[rows])) for name, rows in members.items()},
        seconds,
    )
