"""Rolling-origin backtest: every candidate forecaster scored on the same windows, at every level of the hierarchy.

DeepAR is trained once, on the history before the first window, and then forecasts every window from the history
before that window, as it would in production between two trainings; nothing it learned reaches into a window.
The statistical models refit on each window's history. The store x SKU level is scored on a fixed random sample of
the series (AutoETS and NPTS cost a fraction of a second per series); the aggregate levels on every series.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shelfwise.demand import models
from shelfwise.demand.aggregation import (
    aggregate_panel,
    fit_spread,
    reconcile_by_location,
    schaake_shuffle,
    schaake_template,
    sum_by_group,
    widen,
)
from shelfwise.demand.metrics import SEASON, Scores, score
from shelfwise.demand.pipeline import CANDIDATE_NAMES
from shelfwise.demand.series import DemandPanel

#: Aggregation levels, bottom first; each is the static columns a level groups by (none: the total).
LEVELS: dict[str, tuple[str, ...]] = {
    "store x sku": ("store_id", "sku"),
    "store": ("store_id",),
    "region": ("region",),
    "category": ("category",),
    "department": ("department",),
    "total": (),
}
BOTTOM = "store x sku"
CANDIDATES: tuple[str, ...] = tuple(CANDIDATE_NAMES)
BASELINE = "seasonal_naive"
#: DeepAR's paths summed as drawn, independently per series: scored at the aggregate levels to show what the
#: Schaake shuffle (`shelfwise.demand.aggregation`) fixes.
INDEPENDENT_SUM = "deepar (independent sum)"
#: DeepAR's paths before the spread factor: scored at every level to show what the calibration changes.
UNCALIBRATED = "deepar (uncalibrated)"
#: Windows before the scored ones, where DeepAR's errors only fit the spread factors of the first scored window.
CALIBRATION_WINDOWS = 1
#: DeepAR's paths reconciled location by location to last year's comparable days (`aggregation.reconcile_by_location`).
RECONCILED = "deepar (reconciled to comparable days)"
#: DeepAR's two ways to sums: plain sums (bottom-up) and reconciled to the comparable days.
VARIANTS: tuple[str, str] = ("deepar", RECONCILED)
#: How far a sum's 80% interval coverage may stray from 0.80 and still count as calibrated (the issue's 75-85%).
CALIBRATION_TOLERANCE = 0.05


@dataclass(frozen=True)
class BacktestSettings:
    horizon: int = models.HORIZON
    windows: int = 2
    n_paths: int = 100
    #: store x SKU series scored by every candidate; the aggregates use every series.
    sample_series: int = 300
    seed: int = 0
    deepar: models.DeepARSettings = field(default_factory=models.DeepARSettings)


@dataclass(frozen=True)
class WindowScores:
    cutoff: dt.date
    #: scores[against][level][model]; `against` is "sales" (censored days left out) or "true demand".
    scores: dict[str, dict[str, dict[str, Scores]]]
    #: spread[variant][level]: the factor DeepAR's paths were widened by (fitted on the windows before this one).
    spread: dict[str, dict[str, float]]


@dataclass(frozen=True)
class SampledWindow:
    """The sampled series in one window: every candidate's paths (and `RECONCILED`), what happened, and the sales
    before it."""

    cutoff: dt.date
    keys: pd.DataFrame
    paths: dict[str, np.ndarray]
    sales: np.ndarray
    true_demand: np.ndarray | None
    histories: list[np.ndarray]


@dataclass(frozen=True)
class BacktestResult:
    windows: list[WindowScores]
    seconds: dict[str, float]
    series: int
    sampled: list[SampledWindow]
    #: spread[variant][level] fitted on every window: what the batch forecast widens DeepAR's paths by.
    spread: dict[str, dict[str, float]]

    def mean_over_levels(self, model: str, metric: str = "wql", against: str = "sales") -> float:
        """A metric averaged over the windows and the levels, each level weighing the same."""
        return float(np.mean([self.mean(against, level, model, metric) for level in LEVELS]))

    def miscalibration(self, model: str) -> float:
        """The largest distance of a sum's 80% interval coverage from 0.80, over the aggregate levels (against
        sales). The store x SKU level is left out: both variants share its discreteness (below)."""
        gaps = [abs(self.mean("sales", level, model, "coverage_80") - 0.8) for level in LEVELS if level != BOTTOM]
        return float(np.nanmax(gaps)) if np.isfinite(gaps).any() else 0.0

    def reconcile(self) -> bool:
        """Whether to serve DeepAR reconciled to the comparable days rather than as plain sums: sharpness subject to
        calibration (Gneiting, Balabdaoui and Raftery, 2007). Of the variants whose sums cover within
        `CALIBRATION_TOLERANCE` of 0.80 at every level, the one with the lower wQL over the levels; if neither does,
        the better calibrated. A lower wQL alone can come from intervals too narrow for the peaks."""
        calibrated = [v for v in VARIANTS if self.miscalibration(v) <= CALIBRATION_TOLERANCE]
        if calibrated:
            return min(calibrated, key=self.mean_over_levels) == RECONCILED
        return min(VARIANTS, key=self.miscalibration) == RECONCILED

    def serving(self, forecaster: str) -> tuple[dict[str, float], bool]:
        """(spread factors, reconcile to the total) for a batch forecast with `forecaster`: only DeepAR itself is
        served reconciled, and then with the reconciled variant's factors; an ensemble's sums take the factors of
        DeepAR's plain sums (`serving_spread`)."""
        reconcile = forecaster == "deepar" and self.reconcile()
        return serving_spread(forecaster, self.spread[RECONCILED if reconcile else "deepar"]), reconcile

    @property
    def last_window(self) -> SampledWindow:
        return self.sampled[-1]

    def mean(self, against: str, level: str, model: str, metric: str) -> float:
        """A metric averaged over the windows."""
        return float(np.mean([getattr(w.scores[against][level][model], metric) for w in self.windows]))


def window_cutoffs(end: dt.date, horizon: int, windows: int) -> list[dt.date]:
    """The first days of `windows` consecutive windows of `horizon` days that end on `end` (exclusive)."""
    return [end - dt.timedelta(days=horizon * k) for k in range(windows, 0, -1)]


def _groups(keys: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    if not columns:
        return np.zeros(len(keys), dtype=np.int64)
    return keys.groupby(list(columns), sort=True).ngroup().to_numpy()


def training_days(n_days: int, windows: int, horizon: int = models.HORIZON) -> int:
    """Days of history the backtest's DeepAR learns from: all before the calibration window and the scored ones."""
    return n_days - (windows + CALIBRATION_WINDOWS) * horizon


def run_backtest(
    panel: DemandPanel,
    settings: BacktestSettings,
    work_dir: Path,
    truth: np.ndarray | None = None,
    progress: Callable[[str], None] = lambda _: None,
    trained: tuple[models.DeepAREnsemble, models.StaticCodes] | None = None,
) -> BacktestResult:
    """Score the candidates on the last `settings.windows` windows of the panel.

    `truth` (series, days), aligned with `panel.target`, is the uncensored demand where it is known (the synthetic
    world): the candidates are then scored against it as well. `trained` is a DeepAR predictor (and its static
    codes) already trained on the history before the calibration window (`training_days`, the pipeline's training
    step); without it, DeepAR is trained here. DeepAR's spread factors for a window are fitted on its errors in
    the windows before it, the calibration window included; `BacktestResult.spread` on every window, for serving.
    """
    horizon = settings.horizon
    cutoffs = window_cutoffs(panel.end, horizon, settings.windows + CALIBRATION_WINDOWS)
    index = [(c - panel.start).days for c in cutoffs]
    seconds: dict[str, float] = {}
    # A series takes part once it has four weeks of history before the first window.
    active = panel.start_index <= index[0] - 4 * SEASON
    panel = panel.select(active)
    truth = truth[active] if truth is not None else None
    rng = np.random.default_rng(settings.seed)
    sample = np.sort(rng.choice(len(panel.keys), size=min(settings.sample_series, len(panel.keys)), replace=False))

    if trained is None:
        progress(f"training DeepAR on {len(panel.keys):,} series before {cutoffs[0]}")
        started = time.perf_counter()
        predictor, codes = models.train_deepar(panel.head(index[0]), settings.deepar, work_dir)
        seconds["deepar training"] = time.perf_counter() - started
    else:
        predictor, codes = trained

    windows, sampled = [], []
    errors: dict[str, list[dict[str, _LevelForecast]]] = {variant: [] for variant in VARIANTS}
    for number, (cutoff, at) in enumerate(zip(cutoffs, index, strict=True)):
        history = panel.head(at)
        calibrating = number < CALIBRATION_WINDOWS
        paths, timing = _window_paths(history, sample, predictor, codes, settings, progress, cutoff, calibrating)
        # A series whose selling life ended before the window is not forecast (its SKU is known to be off sale);
        # only the paths of series still on sale on the window's eve count in the sums.
        on_sale = np.isfinite(history.units[:, -1])
        paths = {name: p * on_sale[:, None, None] if p.shape[0] == len(on_sale) else p for name, p in paths.items()}
        for name, spent in timing.items():
            seconds[name] = seconds.get(name, 0.0) + spent
        # (bottom level, aggregates): a censored day is left out of a series' score but its sales count in totals.
        window = slice(at, at + horizon)
        # One template per window: the DeepAR and seasonal naive sums take the same historical dependence.
        template = schaake_template(history.units, settings.n_paths, horizon, seed=settings.seed)
        deepar = _deepar_levels(
            history, sample, paths["deepar"], template, panel.target[:, window], panel.units[:, window], settings.seed
        )
        spread = {variant: fit_spreads(errors[variant]) for variant in VARIANTS}
        for variant in VARIANTS:
            errors[variant].append(deepar[variant])
        if calibrating:
            continue
        actuals = {"sales": (panel.target[:, window], panel.units[:, window])}
        if truth is not None:
            actuals["true demand"] = (truth[:, window], truth[:, window])
        levels = _level_paths(history, sample, paths, deepar, spread, template, settings)
        scores = {
            against: _level_scores(levels, sample, bottom, totals) for against, (bottom, totals) in actuals.items()
        }
        windows.append(WindowScores(cutoff, scores, spread))
        units = history.select(sample)
        sampled.append(
            SampledWindow(
                cutoff=cutoff,
                keys=units.keys,
                paths={
                    **{name: p if p.shape[0] == len(sample) else p[sample] for name, p in paths.items()},
                    **{variant: widen(deepar[variant][BOTTOM].paths, spread[variant][BOTTOM]) for variant in VARIANTS},
                },
                sales=panel.units[sample, window],
                true_demand=None if truth is None else truth[sample, window],
                histories=[u[s:] for u, s in zip(np.nan_to_num(units.units), units.start_index, strict=True)],
            )
        )
    spread = {variant: fit_spreads(errors[variant]) for variant in VARIANTS}
    return BacktestResult(windows, seconds, len(panel.keys), sampled, spread)


def serving_spread(forecaster: str, spread: dict[str, float]) -> dict[str, float]:
    """The spread factors (of one DeepAR variant) a batch forecast with `forecaster` applies: all of them for
    DeepAR, fitted on its own paths; the sums' for an ensemble with DeepAR; none for the other forecasters (no factor
    was fitted for them, their sums stay as summed)."""
    if forecaster == "deepar":
        return dict(spread)
    if forecaster.startswith("deepar"):
        return {level: factor for level, factor in spread.items() if level != BOTTOM}
    return {}


@dataclass(frozen=True)
class _LevelForecast:
    """DeepAR's paths at one level in one window (the sample's at the bottom, sums above) and what happened."""

    paths: np.ndarray
    actual: np.ndarray


def _deepar_levels(
    history: DemandPanel,
    sample: np.ndarray,
    deepar: np.ndarray,
    template: np.ndarray,
    target: np.ndarray,
    units: np.ndarray,
    seed: int,
) -> dict[str, dict[str, _LevelForecast]]:
    """DeepAR at every level, per variant: the sample at the bottom (censored days missing), sums above."""
    shuffled = schaake_shuffle(deepar, template, seed)
    variants = {"deepar": shuffled, RECONCILED: reconcile_by_location(history, shuffled, seed)}
    out: dict[str, dict[str, _LevelForecast]] = {}
    for variant, paths in variants.items():
        # The Schaake order is the same for every series, so the sample's marginals are its paths as drawn.
        out[variant] = {BOTTOM: _LevelForecast(paths[sample], target[sample])}
        for level, columns in LEVELS.items():
            if level != BOTTOM:
                group = _groups(history.keys, columns)
                out[variant][level] = _LevelForecast(sum_by_group(group, paths), sum_by_group(group, units))
    return out


def fit_spreads(errors: list[dict[str, _LevelForecast]]) -> dict[str, float]:
    """Per level, the spread factor that fits DeepAR's errors in all of `errors`' windows best (1 without any)."""
    if not errors:
        return dict.fromkeys(LEVELS, 1.0)
    return {
        level: fit_spread(
            np.concatenate([e[level].paths for e in errors]), np.concatenate([e[level].actual for e in errors])
        )
        for level in LEVELS
    }


def _window_paths(
    history: DemandPanel,
    sample: np.ndarray,
    predictor: models.DeepAREnsemble,
    codes: models.StaticCodes,
    settings: BacktestSettings,
    progress: Callable[[str], None],
    cutoff: dt.date,
    calibrating: bool,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Bottom-level paths: DeepAR and seasonal naive for every series, the slow baselines for the sample; DeepAR
    alone in a calibration window."""
    n, seed = settings.n_paths, settings.seed
    timing: dict[str, float] = {}

    def timed(name: str, run: Callable[[], np.ndarray]) -> np.ndarray:
        progress(f"{cutoff}: {name}" + (" (calibration window)" if calibrating else ""))
        started = time.perf_counter()
        out = run()
        timing[f"{name} predict"] = time.perf_counter() - started
        return out

    paths = {"deepar": timed("deepar", lambda: models.deepar_paths(predictor, codes, history, n, seed))}
    if calibrating:
        return paths, timing
    sampled = history.select(sample)
    paths["seasonal_naive"] = timed("seasonal_naive", lambda: models.seasonal_naive_paths(history, n_paths=n))
    paths["autoets"] = timed("autoets", lambda: models.autoets_paths(sampled, n_paths=n, seed=seed))
    paths["npts"] = timed("npts", lambda: models.npts_paths(sampled, n_paths=n, seed=seed))
    return paths, timing


@dataclass(frozen=True)
class _Level:
    """Every candidate's paths at one level of one window, what scales its errors, and its groups (None at the
    bottom, which is the sample)."""

    paths: dict[str, np.ndarray]
    scale: np.ndarray
    group: np.ndarray | None


def _level_paths(
    history: DemandPanel,
    sample: np.ndarray,
    paths: dict[str, np.ndarray],
    deepar: dict[str, dict[str, _LevelForecast]],
    spread: dict[str, dict[str, float]],
    template: np.ndarray,
    settings: BacktestSettings,
) -> dict[str, _Level]:
    """Each candidate at each level, once per window whatever it is scored against. DeepAR: its paths at each level
    (`deepar`, both variants) widened by that level's spread factor; seasonal naive summed bottom-up after the
    Schaake shuffle; AutoETS and NPTS fitted on the aggregated history itself."""
    out: dict[str, _Level] = {}
    naive = schaake_shuffle(paths["seasonal_naive"], template, settings.seed)
    for level, columns in LEVELS.items():
        group: np.ndarray | None = None
        if level == BOTTOM:
            scale = history.target[sample]
            level_paths = {name: p if p.shape[0] == len(sample) else p[sample] for name, p in paths.items()}
        else:
            group = _groups(history.keys, columns)
            aggregated = aggregate_panel(history, group)
            scale = aggregated.target
            level_paths = {
                "seasonal_naive": sum_by_group(group, naive),
                "autoets": models.autoets_paths(aggregated, n_paths=settings.n_paths, seed=settings.seed).astype(float),
                "npts": models.npts_paths(aggregated, n_paths=settings.n_paths, seed=settings.seed).astype(float),
                INDEPENDENT_SUM: sum_by_group(group, paths["deepar"]),
            }
        for variant in VARIANTS:
            level_paths[variant] = widen(deepar[variant][level].paths, spread[variant][level])
        level_paths[UNCALIBRATED] = deepar["deepar"][level].paths
        level_paths["deepar+autoets"] = models.vincentize(level_paths["deepar"], level_paths["autoets"])
        out[level] = _Level(level_paths, scale, group)
    return out


def _level_scores(
    levels: dict[str, _Level], sample: np.ndarray, actual: np.ndarray, totals: np.ndarray
) -> dict[str, dict[str, Scores]]:
    """Scores per level and candidate against `actual` (the sample's, at the bottom) and `totals` (summed above)."""
    out: dict[str, dict[str, Scores]] = {}
    for level, forecast in levels.items():
        level_actual = actual[sample] if forecast.group is None else sum_by_group(forecast.group, totals)
        out[level] = {name: score(level_actual, p, forecast.scale) for name, p in forecast.paths.items()}
    return out
